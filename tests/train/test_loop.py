"""The training loop: loss falls, a run ends with a bundle and tracking, resume replays."""

from __future__ import annotations

import logging
import shutil
import signal
import time
from collections.abc import Callable
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
    TrainResult,
    make_toy_samples,
    train_detector,
)
from mammocad.train.optim import build_optimizer
from mammocad.train.validate import summary_metrics

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


class FailsAtRead:
    """The training set, except that read number ``at`` (1-based, over the whole run) calls
    ``fail`` first: raise, or send this process a signal."""

    def __init__(self, samples: list[DetectionSample], *, at: int, fail: Callable[[], None]):
        self.samples = samples
        self.at = at
        self.fail = fail
        self.reads = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> DetectionSample:
        self.reads += 1
        if self.reads == self.at:
            self.fail()
        return self.samples[index]


def test_a_tracking_store_lost_mid_run_costs_the_tracking_not_the_run(
    tiny_config: DetectorConfig,
    quick_train: TrainConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("mlflow.tracking", reason="tracking needs MLflow")
    store = tmp_path / "mlruns"
    config = replace(quick_train, tracking=TrackingConfig(tracking_uri=str(store)))
    # the store goes away during the first epoch (a server restarted, a disk unmounted):
    # the epoch's metrics, the bundle artifact and the run's end can no longer be logged
    samples = make_toy_samples(8, size=SIZE, seed=1)
    vanishing = FailsAtRead(samples, at=2, fail=lambda: shutil.rmtree(store))
    with caplog.at_level(logging.WARNING, logger="mammocad.train.tracking"):
        result = train_detector(
            detector_config=tiny_config,
            train_config=config,
            train_data=vanishing,
            val_data=None,
            output_dir=tmp_path / "run",
            bundle=BUNDLE,
        )
    assert (result.epochs, result.steps) == (2, 4)
    assert load_bundle(result.bundle_dir).manifest.name == "toy-detector"
    assert "training goes on without it" in caplog.text


def _crash() -> None:
    raise SimulatedCrashError


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
            # breaks on the first read of the second epoch
            train_data=FailsAtRead(samples, at=len(samples) + 1, fail=_crash),
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


def _assert_same_run(ours: TrainResult, theirs: TrainResult) -> None:
    mine = torch.load(ours.checkpoint, weights_only=True)
    other = torch.load(theirs.checkpoint, weights_only=True)
    for key, value in mine["model"].items():
        assert torch.equal(other["model"][key], value), key
    for index, state in mine["optimizer"]["state"].items():
        assert torch.equal(other["optimizer"]["state"][index]["exp_avg"], state["exp_avg"])
    assert other["scheduler"]["last_epoch"] == mine["scheduler"]["last_epoch"]
    assert (other["epoch"], other["step"], other["in_epoch"]) == (mine["epoch"], mine["step"], None)


@pytest.mark.parametrize(
    ("stop", "raised", "every"),
    [
        # killed without warning: the periodic mid-epoch checkpoint (here after every step)
        (_crash, SimulatedCrashError, 0.0),
        # Ctrl-C: the step finishes and the checkpoint is written on the way out, no periodic ones
        (lambda: signal.raise_signal(signal.SIGINT), KeyboardInterrupt, None),
    ],
    ids=["crash", "ctrl-c"],
)
def test_resume_within_an_epoch_replays_the_uninterrupted_run(
    tiny_config: DetectorConfig,
    quick_train: TrainConfig,
    tmp_path: Path,
    stop: Callable[[], None],
    raised: type[BaseException],
    every: float | None,
) -> None:
    # 8 samples in batches of 2: four steps an epoch; the stop comes with the 5th read, the
    # first of epoch 1's third batch
    config = replace(quick_train, batch_size=2, crop_size=(96, 96), checkpoint_every_s=every)
    samples = make_toy_samples(8, size=SIZE, seed=3)
    common = {"detector_config": tiny_config, "val_data": None, "bundle": BUNDLE}
    straight = train_detector(
        train_config=config, train_data=samples, output_dir=tmp_path / "a", **common
    )
    with pytest.raises(raised):
        train_detector(
            train_config=config,
            train_data=FailsAtRead(samples, at=5, fail=stop),
            output_dir=tmp_path / "b",
            **common,
        )
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    if raised is KeyboardInterrupt:  # the batch being read when Ctrl-C came still trains
        assert (saved["epoch"], saved["step"], saved["in_epoch"]["batch"]) == (0, 3, 3)
    else:
        assert (saved["epoch"], saved["step"], saved["in_epoch"]["batch"]) == (0, 2, 2)
    resumed = train_detector(
        train_config=replace(config, resume=True),
        train_data=samples,
        output_dir=tmp_path / "b",
        **common,
    )
    assert (resumed.epochs, resumed.steps) == (2, 8) == (straight.epochs, straight.steps)
    # the interrupted epoch's mean losses include the steps taken before the stop
    assert resumed.history == straight.history
    _assert_same_run(straight, resumed)


def test_time_budget_is_the_runs_across_resumes(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    config = replace(quick_train, batch_size=2, time_limit_s=2.0)
    samples = make_toy_samples(8, size=SIZE, seed=3)
    common = {"detector_config": tiny_config, "val_data": None, "bundle": BUNDLE}
    slow_first_read = FailsAtRead(samples, at=1, fail=lambda: time.sleep(2.5))
    spent = train_detector(
        train_config=config, train_data=slow_first_read, output_dir=tmp_path / "a", **common
    )
    # the budget runs out during the first step: the epoch is left unfinished, not skipped
    assert (spent.epochs, spent.steps, len(spent.history)) == (0, 1, 1)
    saved = torch.load(spent.checkpoint, weights_only=True)
    assert saved["in_epoch"]["batch"] == 1 and saved["elapsed_s"] >= 2.5
    assert spent.bundle_dir.is_dir()
    again = train_detector(
        train_config=replace(config, resume=True),
        train_data=samples,
        output_dir=tmp_path / "a",
        **common,
    )
    assert (again.steps, again.history) == (1, [])  # nothing left of the budget
    longer = train_detector(
        train_config=replace(config, resume=True, time_limit_s=3600.0),
        train_data=samples,
        output_dir=tmp_path / "a",
        **common,
    )
    assert (longer.epochs, longer.steps) == (2, 8)  # the rest of epoch 0, then epoch 1


def test_select_by_writes_the_bundle_from_the_best_validated_epoch(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    metric = "val/any_lesion/mean_sens"
    config = replace(quick_train, epochs=4, select_by=metric)
    result = train_detector(
        detector_config=tiny_config,
        train_config=config,
        train_data=make_toy_samples(8, size=SIZE, seed=1),
        val_data=make_toy_samples(4, size=SIZE, seed=2),
        output_dir=tmp_path / "run",
        bundle=BUNDLE,
    )
    values = [epoch[metric] for epoch in result.history]
    best = values.index(max(values))  # the first of equals
    assert result.selected == {"metric": metric, "value": values[best], "epoch": best + 1}
    # the final validation measured the selected weights, and the bundle holds them
    assert result.report is not None
    assert summary_metrics(result.report)[metric] == values[best]
    chosen = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    bundled = load_bundle(result.bundle_dir)
    assert bundled.manifest.training_data["selected"] == result.selected
    for key, value in bundled.model.state_dict().items():
        torch.testing.assert_close(value, chosen["model"][key], atol=2e-3, rtol=2e-3)
    # last.pt keeps the last step's weights, for a resume
    last = torch.load(result.checkpoint, weights_only=True)
    assert last["epoch"] == 4 and last["extra"]["best"] == result.selected


def test_select_by_needs_a_known_validation_metric(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    common = {
        "detector_config": tiny_config,
        "train_data": make_toy_samples(4, size=SIZE, seed=1),
        "output_dir": tmp_path / "run",
        "bundle": BUNDLE,
    }
    with pytest.raises(ValueError, match="needs validation data"):
        train_detector(
            train_config=replace(quick_train, select_by="val/mass/mean_sens"),
            val_data=None,
            **common,
        )
    with pytest.raises(ValueError, match="val/any_lesion/mean_sens"):  # the message lists them
        train_detector(
            train_config=replace(quick_train, select_by="val/mass/sens_at_3fp"),
            val_data=make_toy_samples(2, size=SIZE, seed=2),
            **common,
        )
    with pytest.raises(ValueError, match="validation metric"):
        replace(quick_train, select_by="train/loss")


def test_a_best_pt_of_an_earlier_run_is_not_taken(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    from mammocad.train.checkpoint import save_weights

    stale = {"metric": "val/any_lesion/mean_sens", "value": 1.0, "epoch": 7}
    save_weights(tmp_path / "run" / "checkpoints" / "best.pt", build_detector(tiny_config), stale)
    samples = make_toy_samples(8, size=SIZE, seed=1)
    # the budget runs out in the first epoch: no epoch of this run is validated
    config = replace(quick_train, select_by=stale["metric"], batch_size=2, time_limit_s=2.0)
    result = train_detector(
        detector_config=tiny_config,
        train_config=config,
        train_data=FailsAtRead(samples, at=1, fail=lambda: time.sleep(2.5)),
        val_data=make_toy_samples(2, size=SIZE, seed=2),
        output_dir=tmp_path / "run",
        bundle=BUNDLE,
    )
    assert result.selected is None
    assert "selected" not in load_bundle(result.bundle_dir).manifest.training_data


def _sigint() -> None:
    signal.raise_signal(signal.SIGINT)


def test_a_stop_in_an_epochs_last_batch_leaves_its_validation_to_the_resume(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    # Ctrl-C during the last batch completes the epoch but skips its validation: before, the
    # resume went on with the next epoch, so that epoch was never validated, logged or
    # selectable, and the bundle could hold other weights than the uninterrupted run's
    metric = "val/any_lesion/mean_sens"
    config = replace(quick_train, froc_bootstrap=0, select_by=metric)
    samples = make_toy_samples(8, size=SIZE, seed=3)
    common = {
        "detector_config": tiny_config,
        "val_data": make_toy_samples(4, size=SIZE, seed=2),
        "bundle": BUNDLE,
    }
    straight = train_detector(
        train_config=config, train_data=samples, output_dir=tmp_path / "a", **common
    )
    assert all(metric in epoch for epoch in straight.history)
    # batches of 4: the 5th read is the first of each epoch's last batch; stopped there in
    # epoch 1, then (in the first resume, after it validated epoch 1) in epoch 2, the last
    last = tmp_path / "b" / "checkpoints" / "last.pt"
    resume = replace(config, resume=True)
    for run_config, pending in [(config, 0), (resume, 1)]:
        with pytest.raises(KeyboardInterrupt):
            train_detector(
                train_config=run_config,
                train_data=FailsAtRead(samples, at=5, fail=_sigint),
                output_dir=tmp_path / "b",
                **common,
            )
        saved = torch.load(last, weights_only=True)
        assert (saved["epoch"], saved["in_epoch"]) == (pending + 1, None)
        assert saved["extra"]["validation_pending"]["epoch"] == pending
    resumed = train_detector(
        train_config=resume, train_data=samples, output_dir=tmp_path / "b", **common
    )
    # the last epoch was validated (and logged) by the resume, as by the uninterrupted run
    assert resumed.history == straight.history[1:]
    assert resumed.selected == straight.selected is not None
    _assert_same_run(straight, resumed)
    ours = torch.load(straight.checkpoint, weights_only=True)
    theirs = torch.load(resumed.checkpoint, weights_only=True)
    assert theirs["extra"] == ours["extra"]  # the same best, nothing left pending
    for folder in (straight.bundle_dir, resumed.bundle_dir):
        assert load_bundle(folder).manifest.training_data["selected"] == straight.selected
    mine = torch.load(straight.bundle_dir / "weights.pt", weights_only=True)
    other = torch.load(resumed.bundle_dir / "weights.pt", weights_only=True)
    for key, value in mine.items():
        assert torch.equal(other[key], value), key


def test_resume_with_another_select_by_is_refused(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    # best.pt and the best recorded in last.pt were chosen by the first metric; before, the
    # resume compared the new metric's values with the old metric's best
    from mammocad.train.detector import check_resumable

    first = replace(quick_train, epochs=1, froc_bootstrap=0, select_by="val/any_lesion/mean_sens")
    common = {
        "detector_config": tiny_config,
        "train_data": make_toy_samples(4, size=SIZE, seed=1),
        "val_data": make_toy_samples(2, size=SIZE, seed=2),
        "output_dir": tmp_path / "run",
        "bundle": BUNDLE,
    }
    result = train_detector(train_config=first, **common)
    refused = "select_by val/any_lesion/mean_sens \\(now val/malignant/mean_sens\\)"
    other = replace(first, resume=True, select_by="val/malignant/mean_sens")
    with pytest.raises(ValueError, match=refused):
        check_resumable(result.checkpoint, tiny_config, other)
    with pytest.raises(ValueError, match=refused):
        train_detector(train_config=other, **common)
    # a checkpoint written before select_by was recorded: its best names the metric
    saved = torch.load(result.checkpoint, weights_only=True)
    del saved["extra"]["training"]["select_by"]
    torch.save(saved, result.checkpoint)
    with pytest.raises(ValueError, match=refused):
        check_resumable(result.checkpoint, tiny_config, other)
    with pytest.raises(ValueError, match=refused):
        train_detector(train_config=other, **common)
    with pytest.raises(ValueError, match="select_by val/any_lesion/mean_sens \\(now None\\)"):
        train_detector(train_config=replace(other, select_by=None), **common)
    same = train_detector(train_config=replace(first, resume=True), **common)
    assert same.selected == result.selected


def test_a_stop_during_validation_still_logs_the_validated_epoch(
    tiny_config: DetectorConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    # Ctrl-C while the epoch's validation ran: the validation finishes and the checkpoint
    # holds the complete epoch, so the resume starts with the next one; its metrics were
    # never sent to MLflow
    mlflow_tracking = pytest.importorskip("mlflow.tracking", reason="tracking needs MLflow")
    store = tmp_path / "mlruns"
    config = replace(
        quick_train,
        froc_bootstrap=0,
        tracking=TrackingConfig(tracking_uri=str(store)),
    )
    val = make_toy_samples(2, size=SIZE, seed=2)
    with pytest.raises(KeyboardInterrupt):
        train_detector(
            detector_config=tiny_config,
            train_config=config,
            train_data=make_toy_samples(4, size=SIZE, seed=1),
            val_data=FailsAtRead(val, at=1, fail=_sigint),
            output_dir=tmp_path / "run",
            bundle=BUNDLE,
        )
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["in_epoch"]) == (1, None)
    client = mlflow_tracking.MlflowClient(tracking_uri=str(store))
    history = client.get_metric_history(saved["run_id"], "val/any_lesion/mean_sens")
    assert [point.step for point in history] == [1]
