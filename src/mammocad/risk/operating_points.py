"""Suspicion operating points chosen on labelled studies (docs/calibration.md).

``intermediate`` is the threshold that keeps at least the sensitivity target (90 % by default),
``high`` the one that keeps at least the specificity target. Both are chosen on the calibrated
probabilities **as rounded for output**, because :class:`SuspicionThresholds` compares the
rounded number: the category then always agrees with the number shown, and the sensitivity and
specificity reported here are the ones users get. Thresholds are therefore on the 2-decimal
grid.

Fitting-time code: it uses :mod:`mammocad.eval.study_metrics` and is not imported by the
analysis line (``mammocad.risk`` does not export it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mammocad.eval.study_metrics import (
    ThresholdMetrics,
    metrics_at_threshold,
    threshold_for_sensitivity,
)
from mammocad.risk.aggregate import OUTPUT_DECIMALS, SuspicionThresholds

_STEP = 10.0**-OUTPUT_DECIMALS
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class OperatingPoints:
    """The stored thresholds and what they achieve on the data they were chosen on.

    ``notes`` says when a target could not be met or when the two thresholds were reordered.
    """

    sensitivity_target: float
    specificity_target: float
    intermediate: ThresholdMetrics
    high: ThresholdMetrics
    notes: tuple[str, ...] = ()

    @property
    def thresholds(self) -> SuspicionThresholds:
        return SuspicionThresholds(
            intermediate=self.intermediate.threshold, high=self.high.threshold, from_bundle=True
        )

    def to_dict(self) -> dict[str, Any]:
        def point(metrics: ThresholdMetrics, kind: str, target: float) -> dict[str, Any]:
            return {
                "threshold": metrics.threshold,
                "target": f"{kind} >= {target:g}",
                "sensitivity": metrics.sensitivity,
                "specificity": metrics.specificity,
            }

        return {
            "intermediate": point(self.intermediate, "sensitivity", self.sensitivity_target),
            "high": point(self.high, "specificity", self.specificity_target),
            "notes": list(self.notes),
        }


def on_display_grid(threshold: float) -> float:
    """The smallest 2-decimal value ≥ ``threshold``, capped at 1.0.

    :func:`threshold_for_specificity` may return a value just above a shown probability
    (``nextafter``); on rounded data the next grid step calls exactly the same studies positive.
    """
    nearest = round(threshold, OUTPUT_DECIMALS)
    grid = nearest if nearest >= threshold else round(nearest + _STEP, OUTPUT_DECIMALS)
    return min(1.0, max(0.0, grid))


def _specificity_threshold(shown: FloatArray, label: IntArray, target: float) -> float:
    """The grid step just above the benign score that ``target`` of the benign studies must
    stay below: the benign ``target`` quantile.

    Not :func:`~mammocad.eval.study_metrics.threshold_for_specificity`, which returns the
    next OBSERVED score; that can be a malignant study far above the benign ones, and every
    threshold in between looks the same on the fitting data but not on the next studies.
    """
    benign = np.sort(shown[label == 0])
    needed = math.ceil(target * len(benign) - 1e-9)  # 1e-9: 0.9 · 30 is 27.000000000000004
    if needed <= 0:
        return 0.0
    return on_display_grid(float(np.nextafter(benign[needed - 1], np.inf)))


def choose_operating_points(
    shown: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    sensitivity_target: float = 0.9,
    specificity_target: float = 0.9,
) -> OperatingPoints:
    """Thresholds for ``intermediate`` (≥ sensitivity target) and ``high`` (≥ specificity
    target) on ``shown``, the calibrated probabilities rounded to 2 decimals.

    ``intermediate`` is the lowest malignant score that keeps the sensitivity target (the most
    specific such threshold); ``high`` the grid step above the benign target quantile (the most
    sensitive threshold that keeps the specificity target).

    When the sensitivity threshold lies above the specificity one (classes well separated),
    the two are swapped: the lower becomes ``intermediate`` and the higher ``high``, so that
    ``high ≥ intermediate`` and both categories still meet both targets; a note says so.
    """
    score = np.asarray(np.round(np.asarray(shown, dtype=np.float64), OUTPUT_DECIMALS), np.float64)
    label = np.asarray(labels, dtype=np.int64)
    if label.min() == label.max():
        raise ValueError("operating points need malignant and benign studies")
    at_sensitivity = on_display_grid(threshold_for_sensitivity(score, label, sensitivity_target))
    at_specificity = _specificity_threshold(score, label, specificity_target)
    notes = []
    if at_sensitivity > at_specificity:
        notes.append(
            f"the {sensitivity_target:.0%}-sensitivity threshold ({at_sensitivity:.2f}) is above "
            f"the {specificity_target:.0%}-specificity one ({at_specificity:.2f}): swapped so "
            "that high ≥ intermediate (both thresholds meet both targets)"
        )
        at_sensitivity, at_specificity = at_specificity, at_sensitivity
    intermediate = metrics_at_threshold(score, label, at_sensitivity)
    high = metrics_at_threshold(score, label, at_specificity)
    if high.specificity < specificity_target - 1e-9:
        notes.append(
            f"specificity {high.specificity:.1%} < {specificity_target:.0%} even at 1.00: too "
            "many benign studies show 1.00"
        )
    return OperatingPoints(
        sensitivity_target=sensitivity_target,
        specificity_target=specificity_target,
        intermediate=intermediate,
        high=high,
        notes=tuple(notes),
    )
