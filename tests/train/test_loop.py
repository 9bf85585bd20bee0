"""The training loop: loss falls, a run ends with a bundle and tracking, resume replays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mammocad.detect import DetectorConfig, build_detector
from mammocad.detect.bundle import load_bundle
from mammocad.train import (
    BundleSpec,
    DetectionSample,
    TrackingConfig,
    TrainConfig,
    make_toy_samples,
    train_detector,
)
from mammocad.train.optim import build_optimizer

SIZE = (128, 104)
BUNDLE = BundleSpec(name="toy-detector", version="0.0.1", preprocessing={"input_size": list(SIZE)})


def test_loss_falls_on_blobs_and_dots(tiny_config: DetectorConfig) -> None:
    torch.manual_seed(0)
    model = build_detector(tiny_config).train()
    optimizer = build_optimizer(model, TrainConfig(learning_rate=1e-3))
    samples = make_toy_samples(2, size=SIZE, seed=5, empty_fraction=0.0)
    images = [s.image for s in samples]
    targets = [s.target for s in samples]
    losses = []
    for _ in range(10):
        loss = model(images, targets).total_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_training_run_writes_bundle_eval_and_tracking(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    tracking = pytest.importorskip("mlflow.tracking", reason="tracking needs MLflow")
    store = tmp_path / "mlruns"
    config = replace(quick_train, tracking=TrackingConfig(tracking_uri=str(store)))
    result = train_detector(
        detector_config=tiny_config,
        train_config=config,
        train_data=make_toy_samples(8, size=SIZE, seed=1),
        val_data=make_toy_samples(4, size=SIZE, seed=2),
        output_dir=tmp_path / "run",
        bundle=BUNDLE,
    )
    assert result.epochs == 2 and result.steps == 4 and len(result.history) == 2
    assert all(torch.isfinite(torch.tensor(h["train/loss"])) for h in result.history)
    assert "val/any_lesion/mean_sens" in result.history[-1]
    assert result.checkpoint.is_file()
    assert (tmp_path / "run" / "eval" / "froc.csv").is_file()
    assert (tmp_path / "run" / "eval" / "froc.png").is_file()
    loaded = load_bundle(result.bundle_dir)
    assert loaded.manifest.name == "toy-detector" and loaded.manifest.detector == tiny_config
    assert "froc/any_lesion/sens@1fp" in loaded.manifest.metrics
    client = tracking.MlflowClient(tracking_uri=store.resolve().as_uri())
    assert result.run_id is not None
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["detector.backbone"] == "resnet18"
    assert [m.step for m in client.get_metric_history(result.run_id, "train/loss")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"bundle", "eval"} <= artifacts


class SimulatedCrashError(Exception):
    pass


class StopsInEpochTwo:
    """The training set, except that it breaks on the first read of the second epoch."""

    def __init__(self, samples: list[DetectionSample]) -> None:
        self.samples = samples
        self.reads = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> DetectionSample:
        self.reads += 1
        if self.reads > len(self.samples):
            raise SimulatedCrashError
        return self.samples[index]


def test_resume_continues_exactly_where_it_stopped(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    # lesion-centred windows too: the resumed run must draw the same windows
    quick_train = replace(quick_train, crop_size=(96, 96))
    samples = make_toy_samples(8, size=SIZE, seed=3)
    common = {"detector_config": tiny_config, "val_data": None, "bundle": BUNDLE}
    straight = train_detector(
        train_config=quick_train, train_data=samples, output_dir=tmp_path / "a", **common
    )
    with pytest.raises(SimulatedCrashError):
        train_detector(
            train_config=quick_train,
            train_data=StopsInEpochTwo(samples),
            output_dir=tmp_path / "b",
            **common,
        )
    resumed = train_detector(
        train_config=replace(quick_train, resume=True),
        train_data=samples,
        output_dir=tmp_path / "b",
        **common,
    )
    assert resumed.epochs == 2 and resumed.steps == straight.steps
    assert len(resumed.history) == 1  # only epoch 2 ran in the resumed call
    assert resumed.history[0] == straight.history[1]
    ours = torch.load(straight.checkpoint, weights_only=True)
    theirs = torch.load(resumed.checkpoint, weights_only=True)
    for key, value in ours["model"].items():
        assert torch.equal(theirs["model"][key], value), key
    assert theirs["optimizer"]["state"].keys() == ours["optimizer"]["state"].keys()
    assert theirs["scheduler"]["last_epoch"] == ours["scheduler"]["last_epoch"]
