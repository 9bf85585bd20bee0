"""Per-image FROC files and the FROC pooled over cross-validation folds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mammocad.commands.evaluate import run_eval_pool
from mammocad.eval.froc import ImagePredictions, ImageTruth, evaluate_froc
from mammocad.eval.froc_pool import (
    IMAGES_FILE,
    FrocImages,
    compare_froc,
    load_froc_images,
    malignant_ranking_of,
    pool_froc,
    save_froc_images,
    strongest_detection,
)

CLASSES = ("mass", "calcification")


def _fold(prefix: str, n: int, rng: np.random.Generator) -> FrocImages:
    """``n`` images with one mass each and a few scored boxes, some on the mass."""
    predictions, truths = [], []
    for _ in range(n):
        x, y = rng.uniform(50, 400, size=2)
        truth = np.array([[x, y, x + 40, y + 40]])
        boxes = np.vstack([truth + rng.normal(0, 3, size=(1, 4)), rng.uniform(0, 500, (3, 4))])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 5)
        predictions.append(
            ImagePredictions(
                boxes=boxes,
                scores=rng.uniform(0, 1, size=4),
                labels=["mass", "mass", "calcification", "mass"],
                malignancy=rng.uniform(0, 1, size=4),
            )
        )
        truths.append(
            ImageTruth(
                boxes=truth, labels=["mass"], malignant=[int(rng.integers(2))], annotated=None
            )
        )
    ids = [f"{prefix}{i}" for i in range(n)]
    return FrocImages(classes=CLASSES, image_ids=ids, predictions=predictions, truths=truths)


def test_saved_images_give_the_same_froc(tmp_path: Path) -> None:
    images = _fold("a", 12, np.random.default_rng(0))
    loaded = load_froc_images(save_froc_images(images, tmp_path / "images.json"))
    assert loaded.image_ids == images.image_ids and loaded.classes == CLASSES
    before = evaluate_froc(images.predictions, images.truths, classes=CLASSES)
    after = evaluate_froc(loaded.predictions, loaded.truths, classes=CLASSES)
    for name, curve in before.curves.items():
        np.testing.assert_allclose(after.curves[name].sensitivity_at, curve.sensitivity_at)
        np.testing.assert_allclose(after.curves[name].fp_per_image, curve.fp_per_image)


def test_pooling_counts_every_fold_once() -> None:
    rng = np.random.default_rng(1)
    folds = [_fold("a", 10, rng), _fold("b", 14, rng)]
    pooled = pool_froc(folds, bootstrap=0)
    assert pooled.curves["mass"].n_truths == 24 and pooled.curves["mass"].n_images == 24
    single = pool_froc(folds[:1], bootstrap=0)
    assert single.curves["mass"].n_truths == 10
    with pytest.raises(ValueError, match="image a0 is in two"):
        pool_froc([folds[0], folds[0]], bootstrap=0)
    other = FrocImages(classes=("mass",), image_ids=["c"], predictions=[], truths=[])
    with pytest.raises(ValueError, match="different lesion classes"):
        pool_froc([folds[0], other], bootstrap=0)


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "froc.json"
    path.write_text('{"metrics": {}}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a per-image FROC file"):
        load_froc_images(path)


def test_paired_comparison_sees_the_better_model() -> None:
    a = _fold("a", 30, np.random.default_rng(2))
    same = compare_froc(a, a, bootstrap=200)
    for diff in same.values():
        assert (
            np.all(diff.difference == 0) and np.all(diff.ci_low == 0) and np.all(diff.ci_high == 0)
        )
    # B puts its top score on every mass: at least as sensitive everywhere, better at low FP
    boosted = [
        ImagePredictions(
            boxes=np.asarray(p.boxes),
            scores=np.r_[1.0, np.asarray(p.scores)[1:]],
            labels=p.labels,
            malignancy=p.malignancy,
        )
        for p in a.predictions
    ]
    b = FrocImages(
        classes=CLASSES,
        image_ids=a.image_ids[::-1],  # matched by id, not by position
        predictions=boosted[::-1],
        truths=a.truths[::-1],
    )
    mass = compare_froc(a, b, bootstrap=200)["mass"]
    assert np.all(mass.difference >= 0) and mass.difference[0] > 0
    assert mass.ci_low[0] > 0  # paired: the gain is certain on these images
    with pytest.raises(ValueError, match="same images"):
        compare_froc(a, _fold("z", 30, np.random.default_rng(2)), bootstrap=0)


def test_strongest_detection_ranks_images_not_lesions() -> None:
    images = FrocImages(
        classes=CLASSES,
        image_ids=["with", "without", "empty"],
        predictions=[
            ImagePredictions(boxes=np.zeros((2, 4)), scores=[0.2, 0.7], labels=["mass"] * 2),
            ImagePredictions(boxes=np.zeros((1, 4)), scores=[0.9], labels=["mass"]),
            ImagePredictions(boxes=np.zeros((0, 4)), scores=[], labels=[]),
        ],
        truths=[
            ImageTruth(boxes=[[0, 0, 5, 5]], labels=["mass"]),
            ImageTruth(boxes=np.zeros((0, 4)), labels=[]),
            ImageTruth(boxes=np.zeros((0, 4)), labels=[]),
        ],
    )
    scores, has_lesion = strongest_detection(images)
    np.testing.assert_allclose(scores, [0.7, 0.9, 0.0])
    assert has_lesion.tolist() == [True, False, False]


def _ranked(images: FrocImages) -> FrocImages:
    """``images`` as a bundle with a lesion ranker evaluates them: the ranker's probability on
    every box of every image, a scale of its own."""
    predictions = [
        replace(p, malignant_lesion=1 - np.asarray(p.malignancy)) for p in images.predictions
    ]
    return replace(images, predictions=predictions)


def test_folds_ranked_on_two_scales_are_not_pooled(tmp_path: Path) -> None:
    """A fold evaluated with its lesion ranker and one without (``--no-ranker``, or a bundle
    without one) were pooled into a malignant curve sorting one fold's ranker probabilities
    against the other's score × malignancy."""
    rng = np.random.default_rng(3)
    a, b = _fold("a", 6, rng), _fold("b", 6, rng)
    pool_froc([a, b], bootstrap=0)
    pool_froc([_ranked(a), _ranked(b)], bootstrap=0)
    with pytest.raises(ValueError, match=r"evaluation 1 by lesion ranker; evaluation 2 by score"):
        pool_froc([_ranked(a), b], bootstrap=0)
    # the file records it; one written before it did is known from its predictions, which
    # are what the pooled curve ranks by
    runs = [tmp_path / "fold-a", tmp_path / "fold-b"]
    for run, images in zip(runs, [_ranked(a), b], strict=True):
        path = save_froc_images(images, run / IMAGES_FILE)
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document.pop("malignant_ranking") == malignant_ranking_of(images)
        path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="ranked the malignant curve differently") as refused:
        run_eval_pool(runs=runs, out_dir=tmp_path / "pooled", bootstrap=0)
    message = str(refused.value)
    assert f"{runs[0]} by lesion ranker; {runs[1]} by score × malignancy" in message
    assert "--no-ranker" in message
    assert not (tmp_path / "pooled").exists()
