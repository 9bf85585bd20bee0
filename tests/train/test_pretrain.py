"""Patch pre-training of the detector backbone: window targets, learning, the file round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mammocad.detect import DetectorConfig
from mammocad.detect.bundle import load_bundle
from mammocad.detect.containers import DetectionTarget
from mammocad.detect.model import build_detector
from mammocad.train import BundleSpec, TrainConfig, make_toy_samples
from mammocad.train.checkpoint import seed_everything
from mammocad.train.data import DetectionSample
from mammocad.train.detector import train_detector
from mammocad.train.pretrain import (
    PatchClassifier,
    PatchDraws,
    PatchSettings,
    PretrainResult,
    backbone_body,
    load_backbone,
    pretrain_backbone,
    validate_patches,
    window_target,
)

CLASSES = DetectorConfig().classes
MASS, CALC = CLASSES.index("mass"), CLASSES.index("calcification")


def _sample(boxes: list[list[float]], labels: list[int], annotated: list[str]) -> DetectionSample:
    return DetectionSample(
        image_id="x",
        image=torch.full((2, 256, 256), 0.5),
        target=DetectionTarget(
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
            malignant=torch.full((len(labels),), -1, dtype=torch.int64),
            annotated=torch.tensor([name in annotated for name in CLASSES]),
        ),
    )


def test_a_box_centred_in_the_window_is_a_positive_and_one_at_its_edge_is_left_out() -> None:
    settings = PatchSettings(size=128, centre=0.5)
    # window (0, 0)–(128, 128): its middle half is 32–96
    sample = _sample(
        [[50, 50, 70, 70], [110, 10, 126, 26]], [MASS, CALC], ["mass", "calcification", "nipple"]
    )
    target, known = window_target(sample, top=0, left=0, settings=settings)
    assert target[MASS] == 1 and known[MASS]
    assert target[CALC] == 0 and not known[CALC]  # inside, outside the middle: neither
    assert not known[CLASSES.index("asymmetry")]  # the source does not annotate it
    assert known[CLASSES.index("nipple")] and target[CLASSES.index("nipple")] == 0
    # the same window moved away from both boxes: both known negatives
    target, known = window_target(sample, top=128, left=128, settings=settings)
    assert target.sum() == 0 and known[MASS] and known[CALC]


def test_draws_are_reproducible_and_aim_at_lesions() -> None:
    samples = make_toy_samples(6, seed=1, empty_fraction=0.0)
    settings = PatchSettings(size=64, lesion_fraction=1.0, landmark=CLASSES.index("nipple"))
    draws = PatchDraws(samples, settings, length=40, seed=5)
    first, again = draws[3], draws[3]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (2, 64, 64)
    lesion = [CLASSES.index(name) for name in ("mass", "calcification")]
    hits = sum(bool(draws[i][1][lesion].any()) for i in range(len(draws)))
    assert hits >= 30  # aimed at a lesion every time; near an edge it may miss the middle


def test_windows_smaller_images_are_padded() -> None:
    sample = _sample([[10, 10, 20, 20]], [MASS], ["mass"])
    sample = replace(sample, image=sample.image[:, :40, :50])
    window, _, _ = PatchDraws([sample], PatchSettings(size=64), length=1, seed=0)[0]
    assert window.shape == (2, 64, 64)


@pytest.fixture
def small_config() -> DetectorConfig:
    return DetectorConfig(input_size=(256, 208), fpn_channels=32, norm_groups=8)


def test_pretraining_learns_the_toy_lesions_and_starts_a_detector(
    small_config: DetectorConfig, tmp_path: Path
) -> None:
    train = make_toy_samples(24, seed=2)
    val = make_toy_samples(12, seed=3)
    settings = PatchSettings(size=64, landmark=small_config.landmark_index)
    config = TrainConfig(
        batch_size=32, learning_rate=2e-3, warmup_steps=5, seed=0, device="cpu", progress=False
    )
    result = pretrain_backbone(
        detector_config=small_config,
        train_config=config,
        steps=60,
        settings=settings,
        train_samples=train,
        val_samples=val,
        output_dir=tmp_path / "pre",
        val_windows=300,
    )
    assert result.steps == 60
    assert result.losses[-1] < result.losses[0]
    # random features already tell bright blobs apart somewhat: compare with the same
    # network untrained (same seed), on the same validation windows
    seed_everything(0)
    untrained = validate_patches(
        PatchClassifier(small_config), val, settings, small_config.classes, count=300,
        device=torch.device("cpu"),
    )  # fmt: skip
    assert set(result.validation_auc) == set(untrained) == {"mass", "calcification", "nipple"}
    gain = np.mean([result.validation_auc[k] - untrained[k] for k in untrained])
    assert gain > 0.1, (result.validation_auc, untrained)

    state = load_backbone(result.path, small_config)
    detector = build_detector(small_config)
    backbone_body(detector).load_state_dict(state)  # strict: every key matches
    with pytest.raises(ValueError, match="pre-trained for"):
        load_backbone(result.path, replace(small_config, norm_groups=16))
    with pytest.raises(ValueError, match="not a pre-trained backbone"):
        torch.save({"format": "other"}, tmp_path / "other.pt")
        load_backbone(tmp_path / "other.pt", small_config)

    # the detector run starts from it: after one tiny epoch the body is still near it,
    # far nearer than a fresh initialisation is
    trained = train_detector(
        detector_config=small_config,
        train_config=replace(config, batch_size=4, epochs=1, learning_rate=1e-5, augment=False),
        train_data=train[:4],
        val_data=None,
        output_dir=tmp_path / "det",
        bundle=BundleSpec(name="mammocad-detector", version="0.0.0-test", preprocessing={}),
        init_backbone=state,
    )
    body = backbone_body(load_bundle(trained.bundle_dir).model).state_dict()
    key = "layer1.0.conv1.weight"
    assert torch.allclose(body[key].float(), state[key], atol=1e-2)
    assert not torch.allclose(backbone_body(build_detector(small_config)).state_dict()[key],
                              state[key], atol=1e-2)  # fmt: skip


def test_pretraining_resumes_where_it_stopped(small_config: DetectorConfig, tmp_path: Path) -> None:
    train = make_toy_samples(8, seed=4)
    config = TrainConfig(batch_size=8, warmup_steps=1, device="cpu", progress=False)

    def run(steps: int, *, resume: bool) -> PretrainResult:
        return pretrain_backbone(
            detector_config=small_config,
            train_config=replace(config, resume=resume),
            steps=steps,
            settings=PatchSettings(size=64),
            train_samples=train,
            val_samples=[],
            output_dir=tmp_path,
            log_every=2,
        )

    run(4, resume=False)
    resumed = run(6, resume=True)
    assert resumed.steps == 6
    assert len(resumed.losses) == 3  # two spans from the first call, one from the second


def test_ctrl_c_checkpoints_the_step_and_resume_goes_on(
    small_config: DetectorConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    import mammocad.train.pretrain as pretrain

    calls = []
    real_loss = pretrain.masked_bce

    def interrupted_at_step_three(*args: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # arrives in the middle of the step
        return real_loss(*args)

    monkeypatch.setattr(pretrain, "masked_bce", interrupted_at_step_three)
    config = TrainConfig(batch_size=8, warmup_steps=1, device="cpu", progress=False)
    common = {
        "detector_config": small_config,
        "steps": 6,
        "settings": PatchSettings(size=64),
        "train_samples": make_toy_samples(8, seed=4),
        "val_samples": [],
        "output_dir": tmp_path,
        "log_every": 5,
    }
    with pytest.raises(KeyboardInterrupt):
        pretrain_backbone(train_config=config, **common)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 3  # the interrupted step finished and was saved, not lost
    resumed = pretrain_backbone(train_config=replace(config, resume=True), **common)
    assert resumed.steps == 6 and len(calls) == 6
