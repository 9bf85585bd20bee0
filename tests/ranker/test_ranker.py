"""The lesion ranker: its features, that it learns what the product score misses, its bundle
file, the Detector and FROC using it, and `train ranker`."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.detect.bundle import read_manifest
from mammocad.errors import ModelBundleError
from mammocad.eval.froc import MALIGNANT, ImagePredictions, ImageTruth, evaluate_froc
from mammocad.eval.froc_pool import FrocImages, save_froc_images
from mammocad.ranker import (
    RANKER_FILE,
    candidate_features,
    feature_names,
    fit_ranker,
    load_ranker,
    save_ranker,
)

CLASSES = ("mass", "calcification")
SIZE = (256, 208)


def test_features_describe_the_box_and_its_standing_in_the_image() -> None:
    rows = candidate_features(
        [[0, 0, 20, 10], [104, 128, 124, 168]],
        [0.2, 0.8],
        ["calcification", "mass"],
        [0.9, 0.3],
        classes=CLASSES,
        input_size=SIZE,
    )
    named = [dict(zip(feature_names(CLASSES), row, strict=True)) for row in rows]
    assert named[0]["rank"] == 1 and named[1]["rank"] == 0
    assert named[0]["score_to_max"] == pytest.approx(0.25) and named[1]["score_to_max"] == 1
    assert named[1]["malignancy_to_max"] == pytest.approx(-0.6)
    assert named[1]["x_centre"] == pytest.approx(114 / 208)
    assert named[1]["y_centre"] == pytest.approx(148 / 256)
    assert named[0]["aspect"] == 2 and named[1]["log_area"] == pytest.approx(np.log1p(800))
    assert (named[0]["label_calcification"], named[0]["label_mass"]) == (1, 0)
    empty = candidate_features([], [], [], [], classes=CLASSES, input_size=SIZE)
    assert empty.shape == (0, len(feature_names(CLASSES)))


def _images(n: int, seed: int) -> FrocImages:
    """Each image: one small malignant lesion the detector finds with a low score, and two
    large false positives it scores higher — score × malignancy ranks them first."""
    rng = np.random.default_rng(seed)
    predictions, truths = [], []
    for _ in range(n):
        x, y = rng.uniform(20, 150, 2)
        lesion = [x, y, x + 12, y + 12]
        fp = [[rng.uniform(0, 100), rng.uniform(0, 150)] for _ in range(2)]
        boxes = [lesion, *([a, b, a + 90, b + 90] for a, b in fp)]
        predictions.append(
            ImagePredictions(
                boxes=np.array(boxes),
                scores=np.array([0.3, *rng.uniform(0.5, 0.9, 2)]),
                labels=["mass"] * 3,
                malignancy=np.array([0.5, *rng.uniform(0.5, 0.9, 2)]),
            )
        )
        truths.append(ImageTruth(boxes=[lesion], labels=["mass"], malignant=[1]))
    return FrocImages(
        classes=CLASSES,
        image_ids=[f"i{k}" for k in range(n)],
        predictions=predictions,
        truths=truths,
    )


def _sensitivity_at_quarter_fp(images: FrocImages) -> float:
    report = evaluate_froc(images.predictions, images.truths, classes=images.classes)
    return float(report.curves[MALIGNANT].sensitivity_at[1])


def test_the_ranker_learns_what_score_times_malignancy_misses() -> None:
    ranker, rows = fit_ranker([_images(120, seed=1)], classes=CLASSES, input_size=SIZE)
    # every lesion box is positive; now and then a large box hits the lesion too
    assert (len(rows.y), rows.images) == (360, 120) and 120 <= int(rows.y.sum()) < 130
    test = _images(60, seed=2)
    ranked = replace(
        test,
        predictions=[
            replace(
                p, malignant_lesion=ranker.probabilities(p.boxes, p.scores, p.labels, p.malignancy)
            )
            for p in test.predictions
        ],
    )
    assert _sensitivity_at_quarter_fp(test) < 0.1
    assert _sensitivity_at_quarter_fp(ranked) > 0.9


def test_too_few_malignant_boxes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        fit_ranker([_images(5, seed=1)], classes=CLASSES, input_size=SIZE)


@pytest.fixture
def ranked_bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ranked"
    shutil.copytree(tiny_bundle, folder)
    manifest = read_manifest(folder)
    classes = manifest.detector.lesion_classes
    images = _images(60, seed=3)
    images = replace(images, classes=classes)
    ranker, _ = fit_ranker([images], classes=classes, input_size=manifest.detector.input_size)
    save_ranker(ranker, folder, training_data={"test": True})
    return folder


def test_bundle_round_trip_and_tampering(ranked_bundle: Path) -> None:
    loaded = load_ranker(ranked_bundle)
    assert loaded is not None
    section = read_manifest(ranked_bundle).ranker
    assert section["file"] == RANKER_FILE and section["training_data"] == {"test": True}
    assert "## Lesion ranker" in (ranked_bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    path = ranked_bundle / RANKER_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("0", "1", 1), encoding="utf-8")
    with pytest.raises(ModelBundleError, match="sha256"):
        load_ranker(ranked_bundle)


def test_a_bundle_without_a_ranker_has_none(tiny_bundle: Path) -> None:
    assert load_ranker(tiny_bundle) is None


def _evaluation(folder: Path, bundle: Path, images: FrocImages) -> Path:
    manifest = read_manifest(bundle)
    save_froc_images(images, folder / "images.json")
    summary = {
        "model": {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256},
        "data": ["phantom:n=1"],
    }
    (folder / "froc.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_train_ranker_writes_a_ranked_copy_and_refuses_other_bundles_detections(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    classes = read_manifest(tiny_bundle).detector.lesion_classes
    train = _evaluation(tmp_path / "train", tiny_bundle, replace(_images(60, 5), classes=classes))
    test = _evaluation(tmp_path / "test", tiny_bundle, replace(_images(30, 6), classes=classes))
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["train", "ranker", str(train), "--model", str(tiny_bundle), "--out", str(out)]
    result = runner.invoke(app, [*args, "--test", str(test), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.version.startswith("0.0.1+rank.")
    gain = manifest.ranker["metrics"]["test_malignant_sens@0.25fp_gain"]["value"]
    assert gain > 0.5
    assert load_ranker(out) is not None and load_ranker(tiny_bundle) is None  # source untouched
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "new folder" in again.output
    summary = json.loads((train / "froc.json").read_text(encoding="utf-8"))
    summary["model"]["sha256"] = "0" * 64
    (train / "froc.json").write_text(json.dumps(summary), encoding="utf-8")
    other = runner.invoke(app, [*args[:-1], str(tmp_path / "out2")])
    assert other.exit_code == 2 and "not of tiny-test" in other.output
