"""The second-stage lesion classifier: windows, patches, training, bundle, inference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mammocad.detect.config import DEFAULT_CLASSES
from mammocad.detect.containers import Detections, DetectionTarget
from mammocad.detect.predict import Detector
from mammocad.errors import ModelBundleError
from mammocad.fuse.bundle import copy_bundle
from mammocad.malignancy.apply import rescore
from mammocad.malignancy.bundle import copy_classifier, load_classifier, save_classifier
from mammocad.malignancy.model import ClassifierConfig, LesionClassifier, crop_windows
from mammocad.malignancy.patches import (
    BACKGROUND,
    HARD_NEGATIVE,
    hard_negative_boxes,
    jittered_boxes,
    sample_patches,
)
from mammocad.malignancy.train import ClassifierTraining, train_classifier, validation_metrics
from mammocad.train import make_toy_samples
from mammocad.train.data import DetectionSample

SMALL = ClassifierConfig(crop_size=32, widths=(16, 32, 32), norm_groups=8)
CLASSES = ("mass", "calcification", "nipple")


def test_window_is_centred_on_the_box_with_context() -> None:
    image = torch.zeros(1, 2, 100, 100)
    image[:, :, 40:60, 40:60] = 1.0  # a 20-px bright square
    box = torch.tensor([[40.0, 40.0, 60.0, 60.0]])
    config = ClassifierConfig(crop_size=32, context=2.0, widths=(16, 32), norm_groups=8)
    (window,) = crop_windows(image, [box], config)
    # the window spans 40 px around the centre: the square fills its middle half
    assert window.shape == (2, 32, 32)
    assert float(window[0, 12:20, 12:20].min()) == pytest.approx(1.0)
    assert float(window[0, :4, :4].max()) == pytest.approx(0.0)
    # a 2-px box is read through a window of min_side × context = 32 px (34–66), of which the
    # square covers 20 px each way
    tiny = torch.tensor([[49.0, 49.0, 51.0, 51.0]])
    (small_window,) = crop_windows(image, [tiny], config)
    assert float(small_window[0].mean()) == pytest.approx((20 / 32) ** 2, abs=0.03)


def test_config_is_checked_and_round_trips() -> None:
    with pytest.raises(ValueError, match="divisible"):
        ClassifierConfig(crop_size=40, widths=(16, 32, 32, 32))
    with pytest.raises(ValueError, match="context"):
        ClassifierConfig(context=0.5)
    assert ClassifierConfig.from_dict(SMALL.to_dict()) == SMALL
    logits = LesionClassifier(SMALL)(torch.rand(3, 2, 32, 32))
    assert logits.shape == (3,)


def _sample() -> DetectionSample:
    image = torch.zeros(2, 200, 160)
    image[:, 20:190, 10:150] = 0.4  # tissue
    target = DetectionTarget(
        boxes=torch.tensor([[40.0, 40.0, 70.0, 70.0], [100.0, 120.0, 110.0, 130.0],
                            [5.0, 90.0, 15.0, 100.0], [120.0, 40.0, 140.0, 60.0]]),
        labels=torch.tensor([0, 1, 2, 0]),
        malignant=torch.tensor([1, 0, -1, -1]),  # nipple, and a mass of unknown malignancy
        annotated=torch.ones(3, dtype=torch.bool),
    )  # fmt: skip
    return DetectionSample(image_id="s1", image=image, target=target, source="test")


def test_patches_hold_known_lesions_and_tissue_away_from_every_box() -> None:
    sample = _sample()
    patches = sample_patches(
        [sample], classes=CLASSES, landmark=2, config=SMALL, background_per_image=5, seed=1
    )
    lesions = [p for p in patches if p.kind != BACKGROUND]
    assert [(p.kind, p.malignant) for p in lesions] == [("mass", 1), ("calcification", 0)]
    for patch in lesions:
        x0, y0, x1, y1 = patch.box
        assert 0 <= x0 < x1 <= patch.patch.shape[2] and 0 <= y0 < y1 <= patch.patch.shape[1]
    background = [p for p in patches if p.kind == BACKGROUND]
    assert len(background) == 5 and all(p.malignant == 0 for p in background)
    for patch in background:
        assert patch.patch.dtype == torch.float16
    # jitter moves boxes, but not without a generator
    (fixed,) = jittered_boxes(lesions[:1], None)
    assert fixed[0].tolist() == pytest.approx(list(lesions[0].box))
    (moved,) = jittered_boxes(lesions[:1], np.random.default_rng(0))
    assert moved[0].tolist() != pytest.approx(list(lesions[0].box))


def _detections(boxes: list[list[float]], labels: list[int], scores: list[float]) -> Detections:
    count = len(boxes)
    return Detections(
        boxes=torch.tensor(boxes),
        labels=torch.tensor(labels),
        scores=torch.tensor(scores),
        malignancy=torch.full((count,), 0.5),
        nipple_box=torch.zeros((0, 4)),
        nipple_score=torch.zeros(0),
    )


def test_hard_negatives_are_the_best_false_positives_of_annotated_classes() -> None:
    sample = _sample()  # lesions at (40,40,70,70) and (100,120,110,130); nipple at (5,90,15,100)
    found = _detections(
        [[45.0, 45.0, 60.0, 60.0],  # on the malignant mass: a true positive
         [4.0, 88.0, 16.0, 102.0],  # a "mass" on the nipple: a false positive
         [20.0, 150.0, 40.0, 170.0],  # free tissue, but its class is not annotated here
         [80.0, 30.0, 95.0, 45.0],  # free tissue
         [120.0, 150.0, 140.0, 170.0],  # free tissue, lowest score
         [69.0, 69.0, 90.0, 90.0]],  # touches the mass box: not counted as a false positive
        [0, 0, 1, 1, 0, 0],
        [0.9, 0.8, 0.7, 0.6, 0.2, 0.95],
    )  # fmt: skip
    every_class = DetectionTarget(
        boxes=sample.target.boxes,
        labels=sample.target.labels,
        malignant=sample.target.malignant,
        annotated=torch.tensor([True, True, True]),
    )
    partial = DetectionSample(
        image_id="s1",
        image=sample.image,
        target=DetectionTarget(
            boxes=sample.target.boxes[[0, 2, 3]],  # the calcification class is not annotated
            labels=sample.target.labels[[0, 2, 3]],
            malignant=sample.target.malignant[[0, 2, 3]],
            annotated=torch.tensor([True, False, True]),
        ),
    )
    full = DetectionSample(image_id="s1", image=sample.image, target=every_class)
    chosen = hard_negative_boxes(full, found, count=3, landmark=2)
    assert [b.tolist() for b in chosen] == [
        [4.0, 88.0, 16.0, 102.0], [20.0, 150.0, 40.0, 170.0], [80.0, 30.0, 95.0, 45.0],
    ]  # fmt: skip
    chosen = hard_negative_boxes(partial, found, count=5, landmark=2)
    assert [b.tolist() for b in chosen] == [[4.0, 88.0, 16.0, 102.0], [120.0, 150.0, 140.0, 170.0]]
    patches = sample_patches(
        [full], classes=CLASSES, landmark=2, config=SMALL, background_per_image=0,
        detect=lambda _: found, hard_negatives_per_image=2,
    )  # fmt: skip
    hard = [p for p in patches if p.kind == HARD_NEGATIVE]
    assert len(hard) == 2 and all(p.malignant == 0 for p in hard)
    assert all(p.patch.shape[1] > 0 and p.patch.shape[2] > 0 for p in hard)


def _toy_patches(count: int, seed: int) -> list:
    samples = make_toy_samples(count, size=(192, 160), seed=seed, empty_fraction=0.0)
    return sample_patches(
        samples,
        classes=DEFAULT_CLASSES,
        landmark=DEFAULT_CLASSES.index("nipple"),
        config=SMALL,
        background_per_image=1,
        seed=seed,
    )


def test_training_separates_toy_malignant_from_benign_lesions() -> None:
    train = _toy_patches(40, seed=1)
    val = _toy_patches(16, seed=2)
    assert {p.malignant for p in train} == {0, 1}
    untrained = validation_metrics(LesionClassifier(SMALL), val)
    result = train_classifier(
        train, val, config=SMALL, training=ClassifierTraining(epochs=6, batch_size=32)
    )
    assert result.metrics["val/auc"] > 0.85
    assert result.metrics["val/auc"] > untrained["val/auc"] + 0.1
    assert len(result.history) == 6 and 1 <= result.best_epoch <= 6


def test_one_class_training_data_is_refused() -> None:
    patches = [p for p in _toy_patches(4, seed=3) if p.malignant == 0]
    with pytest.raises(ValueError, match="one class"):
        train_classifier(patches, [], config=SMALL, training=ClassifierTraining(epochs=1))


def test_bundle_round_trip_and_inference(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path / "with-classifier")
    torch.manual_seed(0)
    model = LesionClassifier(SMALL)
    save_classifier(model, bundle, training_data={"train": "toy"}, metrics={"val/auc": 0.9})
    loaded = load_classifier(bundle)
    assert loaded is not None
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert "## Malignancy classifier" in (bundle / "MODEL_CARD.md").read_text()
    assert load_classifier(tiny_bundle) is None

    # the detector reports the classifier's probabilities instead of its head's
    detector = Detector.from_bundle(bundle, num_threads=1)
    assert detector.lesion_classifier is not None
    image = torch.rand(2, 64, 64)
    found = Detections(
        boxes=torch.tensor([[10.0, 10.0, 30.0, 30.0], [30.0, 30.0, 50.0, 60.0]]),
        labels=torch.tensor([0, 1]),
        scores=torch.tensor([0.9, 0.5]),
        malignancy=torch.tensor([0.5, 0.5]),
        nipple_box=torch.zeros((0, 4)),
        nipple_score=torch.zeros(0),
    )
    rescored = rescore(loaded.model, image, found)
    expected = torch.sigmoid(loaded.model(crop_windows(image[None], [found.boxes], SMALL)))
    assert torch.allclose(rescored.malignancy, expected.detach())
    assert torch.equal(rescored.scores, found.scores)

    # fusion/risk copies keep it; another bundle can take it over
    assert load_classifier(copy_bundle(bundle, tmp_path / "copy")) is not None
    other = copy_bundle(tiny_bundle, tmp_path / "other")
    assert copy_classifier(bundle, other) is not None
    assert load_classifier(other) is not None


def test_a_damaged_classifier_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path / "damaged")
    save_classifier(LesionClassifier(SMALL), bundle)
    with (bundle / "malignancy.pt").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(ModelBundleError, match="sha256"):
        load_classifier(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["malignancy"]["preprocessing_input_size"] = [10, 10]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelBundleError, match="inputs"):
        load_classifier(bundle)
    shutil.rmtree(bundle)


def test_cli_trains_and_writes_a_bundle_the_detector_uses(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from mammocad.cli import app

    out = tmp_path / "run"
    args = ["train", "malignancy", "--model", str(tiny_bundle), "--out", str(out),
            "--data", "phantom:n=3,seed=11,size=small", "--val", "phantom:n=2,seed=12,size=small",
            "--epochs", "2", "--crop-size", "32", "--hard-negatives", "2",
            "--no-mlflow"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best epoch" in result.output
    bundle = out / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["malignancy"]["training_data"]["train_patches"] > 0
    assert manifest["malignancy"]["training_data"]["hard_negatives_per_image"] == 2
    assert "of the detector's false positives" in result.output
    assert manifest["sha256"] == json.loads((tiny_bundle / "manifest.json").read_text())["sha256"]
    assert Detector.from_bundle(bundle, num_threads=1).lesion_classifier is not None
    # a second run reuses the cached patches
    again = CliRunner().invoke(app, [*args[:-1], "--no-mlflow"])
    assert again.exit_code == 0, again.output
    assert len(list((out / "patches").glob("*.pt"))) == 2
