"""Review: a bootstrap draw of images with no lesion of a curve has no sensitivity.

mini-MIAS fold 0 has 48 scored films and only a few lesions of some classes; drawing 48 films
with replacement misses all three calcification films about one time in twenty
((45/48)^48 ≈ 0.045). Such a draw used to score sensitivity 0 (an undefined 0/0 read as
"nothing found"), which dragged the lower end of a 95 % interval to 0 for a detector that finds
every lesion with no false positive, and pulled paired differences towards 0.
"""

from __future__ import annotations

import numpy as np

from mammocad.eval.froc import (
    ImagePredictions,
    ImageTruth,
    evaluate_froc,
    paired_froc_difference,
)

BOX = [10.0, 10.0, 30.0, 30.0]
N_IMAGES = 48
LESION_IMAGES = (0, 17, 33)


def _images(find: bool) -> tuple[list[ImagePredictions], list[ImageTruth]]:
    """Three calcification films among 48; with ``find`` each is found, nothing else boxed."""
    predictions, truths = [], []
    for i in range(N_IMAGES):
        lesion = i in LESION_IMAGES
        truths.append(
            ImageTruth(
                boxes=[BOX] if lesion else np.zeros((0, 4)),
                labels=["calcification"] if lesion else [],
                malignant=[1] if lesion else [],
            )
        )
        found = lesion and find
        predictions.append(
            ImagePredictions(
                boxes=[BOX] if found else np.zeros((0, 4)),
                scores=[0.9] if found else [],
                labels=["calcification"] if found else [],
                malignancy=[0.8] if found else [],
            )
        )
    return predictions, truths


def test_perfect_detection_has_an_interval_of_one() -> None:
    predictions, truths = _images(find=True)
    report = evaluate_froc(predictions, truths, classes=["calcification"], bootstrap=1000)
    for curve in report.curves.values():
        np.testing.assert_array_equal(curve.sensitivity_at, 1.0)
        # every draw holding a lesion finds it with no false positive
        np.testing.assert_array_equal(curve.ci_low, 1.0)
        np.testing.assert_array_equal(curve.ci_high, 1.0)


def test_paired_difference_leaves_out_draws_without_a_lesion() -> None:
    missed, truths = _images(find=False)
    found, _ = _images(find=True)
    differences = paired_froc_difference(
        missed, found, truths, classes=["calcification"], bootstrap=1000
    )
    for difference in differences.values():
        np.testing.assert_array_equal(difference.difference, 1.0)
        # B finds every lesion A misses on every draw that has one: the gain is certain
        np.testing.assert_array_equal(difference.ci_low, 1.0)
