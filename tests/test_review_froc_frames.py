"""Review: two bundles' evaluations are in their own model-input frames.

``images.json`` holds every image's truths and detections in the input frame of the bundle
that was evaluated (its preprocessing crops and scales the image to its ``input_size``). Two
bundles trained with different ``--input-size`` therefore put the same lesion at different
pixels. ``compare_froc`` (and ``benchmarks/froc_paired.py``) judged B's detections against A's
truths, so a B exactly as good as A came out far worse.
"""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.eval.froc import ImagePredictions, ImageTruth
from mammocad.eval.froc_pool import FrocImages, compare_froc

CLASSES = ("mass", "calcification")


def _evaluation(scale: float, n: int = 12) -> FrocImages:
    """``n`` images, one mass each found by the top box, one false positive each; every
    coordinate times ``scale`` (the same images through another input size)."""
    rng = np.random.default_rng(5)
    predictions, truths = [], []
    for _ in range(n):
        x, y = rng.uniform(100, 600, size=2)
        truth = np.array([[x, y, x + 60, y + 60]])
        boxes = np.array([[x + 4, y + 2, x + 62, y + 58], [x + 300, y + 300, x + 340, y + 340]])
        predictions.append(
            ImagePredictions(
                boxes=boxes * scale,
                scores=[0.9, 0.4],
                labels=["mass", "mass"],
                malignancy=[0.7, 0.2],
            )
        )
        truths.append(ImageTruth(boxes=truth * scale, labels=["mass"], malignant=[1]))
    ids = [f"img{i}" for i in range(n)]
    return FrocImages(classes=CLASSES, image_ids=ids, predictions=predictions, truths=truths)


def test_each_model_is_judged_in_its_own_frame() -> None:
    a = _evaluation(scale=1.0)  # e.g. a 1024x832 bundle
    b = _evaluation(scale=0.5)  # the same detections by a 512x416 bundle
    for difference in compare_froc(a, b, bootstrap=50).values():
        np.testing.assert_array_equal(difference.difference, 0.0)
        np.testing.assert_array_equal(difference.ci_low, 0.0)
        np.testing.assert_array_equal(difference.ci_high, 0.0)


def test_evaluations_of_other_lesions_are_refused() -> None:
    a = _evaluation(scale=1.0)
    other = ImageTruth(boxes=np.zeros((0, 4)), labels=[], malignant=[])
    b = FrocImages(
        classes=a.classes,
        image_ids=a.image_ids,
        predictions=a.predictions,
        truths=[other, *a.truths[1:]],
    )
    with pytest.raises(ValueError, match="lesions"):
        compare_froc(a, b, bootstrap=0)
