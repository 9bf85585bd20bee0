"""Per-breast features of the risk model: what the pipeline knows at aggregate time.

One row of :data:`FEATURES` per breast (``float64``), in this order:

* ``n_findings`` — number of reported findings (score ≥ the bundle's finding threshold) on the
  breast's processed images;
* ``max_contribution`` / ``sum_contribution`` — max and sum over those findings of
  ``score · malignancy`` (each clipped to [0, 1]; the noisy-OR's terms); 0 without findings;
* ``max_malignancy`` / ``max_score`` — largest malignancy probability / detection score;
* ``breast_probability`` — today's aggregate of the breast: the fused probability where the
  bundle has cross-view fusion weights (:mod:`mammocad.fuse`), else the noisy-OR
  (:func:`mammocad.risk.aggregate.noisy_or`);
* ``n_linked_pairs`` — CC–MLO pairs of findings linked by :mod:`mammocad.fuse.link`;
* ``both_views`` — 1 when a CC-like and an MLO-like image of the breast were processed;
* ``min_quality`` / ``mean_quality`` — of the quality gate's scores (in [0, 1]) of those
  images; NaN when unknown (gradient boosting routes missing values itself);
* ``max_score_<class>`` — largest detection score of each lesion class in
  :data:`FINDING_CLASSES`; 0 without one.

Findings with a malignancy refined by fusion enter with the refined value, as at inference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mammocad.fuse.geometry import CC_LIKE, MLO_LIKE
from mammocad.risk.aggregate import noisy_or
from mammocad.structures import Finding, FindingLabel, ViewPosition

FINDING_CLASSES = (
    FindingLabel.MASS,
    FindingLabel.CALCIFICATION,
    FindingLabel.ARCHITECTURAL_DISTORTION,
    FindingLabel.ASYMMETRY,
)
FEATURES = (
    "n_findings",
    "max_contribution",
    "sum_contribution",
    "max_malignancy",
    "max_score",
    "breast_probability",
    "n_linked_pairs",
    "both_views",
    "min_quality",
    "mean_quality",
    *(f"max_score_{label.value}" for label in FINDING_CLASSES),
)

#: features along which the risk may only rise (more or stronger evidence of a lesion, a
#: lesion seen in both views); the risk model is fitted with these constraints, which a
#: radiologist expects and which keep a few hundred breasts from teaching it noise
EVIDENCE = frozenset(FEATURES) - {"both_views", "min_quality", "mean_quality"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastInputs:
    """What one breast offers the risk model. ``fused_probability`` ``None``: no fusion
    weights (the noisy-OR of ``findings`` stands in); ``quality`` one score per processed
    image, empty when unknown."""

    findings: tuple[Finding, ...]
    fused_probability: float | None = None
    n_linked_pairs: int = 0
    views: tuple[ViewPosition, ...] = ()
    quality: tuple[float, ...] = ()


def _clip(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def _max(values: Iterable[float]) -> float:
    return max(values, default=0.0)


def feature_row(inputs: BreastInputs) -> list[float]:
    """The :data:`FEATURES` of one breast."""
    found = inputs.findings
    contributions = [_clip(f.score) * _clip(f.malignancy_probability) for f in found]
    views = set(inputs.views)
    probability = inputs.fused_probability
    quality = inputs.quality
    return [
        float(len(found)),
        _max(contributions),
        float(sum(contributions)),
        _max(_clip(f.malignancy_probability) for f in found),
        _max(_clip(f.score) for f in found),
        noisy_or(found) if probability is None else _clip(probability),
        float(inputs.n_linked_pairs),
        float(bool(views & CC_LIKE) and bool(views & MLO_LIKE)),
        min(quality) if quality else math.nan,
        float(np.mean(quality)) if quality else math.nan,
        *(_max(_clip(f.score) for f in found if f.label is label) for label in FINDING_CLASSES),
    ]


def feature_matrix(rows: Sequence[BreastInputs]) -> npt.NDArray[np.float64]:
    """``float64[len(rows), len(FEATURES)]``."""
    matrix = np.array([feature_row(row) for row in rows], dtype=np.float64)
    return matrix.reshape(len(rows), len(FEATURES))
