"""Per-breast features of the risk model: what the pipeline knows at aggregate time.

One row of :data:`FEATURES` per breast (``float64``), in this order:

* ``n_findings`` — number of findings on the breast's processed images: the detections from
  the risk model's finding score, under its cap (``risk.finding_score`` /
  ``findings_per_image`` in the manifest; by default the reported findings, docs/risk.md
  "Two thresholds");
* ``max_contribution`` / ``sum_contribution`` — max and sum over those findings of
  ``score · malignancy`` (each clipped to [0, 1]; the noisy-OR's terms); 0 without findings;
* ``max_malignancy`` / ``max_score`` — largest malignancy probability / detection score;
* ``breast_probability`` — today's aggregate of the breast: the fused probability where the
  bundle has cross-view fusion weights (:mod:`mammocad.fuse`), else the noisy-OR
  (:func:`mammocad.risk.aggregate.noisy_or`);
* ``n_linked_pairs`` — CC–MLO pairs of findings linked by :mod:`mammocad.fuse.link`;
* ``both_views`` — 1 when a CC-like and an MLO-like image of the breast were processed;
* ``min_quality`` / ``mean_quality`` — of the quality gate's scores (in [0, 1]) of those
  images, the CC-like and MLO-like ones where the breast has any (the training studies have
  no other views); NaN when unknown (gradient boosting routes missing values itself);
* ``max_score_<class>`` — largest detection score of each lesion class in
  :data:`FINDING_CLASSES`; 0 without one;
* ``max_candidate_contribution`` / ``candidate_probability`` — the max and the noisy-OR of
  ``score · malignancy`` over the **candidates**: every detection down to the risk model's
  candidate score (recorded in the bundle, 0.01 for the shipped one), the reported findings
  included. The lesion classifier separates malignant from benign boxes far better than the
  detector's score separates lesions from tissue, so a malignant lesion the detector scores
  below the finding threshold still shows here: on 800 phantom breasts the maximum alone has
  breast AUC 0.74, the noisy-OR of the reported findings 0.65 (docs/risk.md);
* ``two_view_contribution`` — the strongest lesion the CC and the MLO view show together: the
  largest geometric mean of ``score · malignancy`` over pairs of candidates, one per view,
  that the linking rule allows to be one lesion (:mod:`mammocad.fuse.agreement`); 0 with one
  view or no such pair. The cross-view evidence of the risk model, beside ``n_linked_pairs``.

Findings with a malignancy refined by fusion enter with the refined value, as at inference.
Risk models trained before a feature existed list the features they use; the columns are
chosen by name (:func:`columns`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mammocad.fuse.geometry import CC_LIKE, MLO_LIKE
from mammocad.risk.aggregate import contribution, noisy_or
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
    "max_candidate_contribution",
    "candidate_probability",
    "two_view_contribution",
)

#: features along which the risk may only rise (more or stronger evidence of a lesion, a
#: lesion seen in both views); the risk model is fitted with these constraints, which a
#: radiologist expects and which keep a few hundred breasts from teaching it noise
EVIDENCE = frozenset(FEATURES) - {"both_views", "min_quality", "mean_quality"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastInputs:
    """What one breast offers the risk model. ``fused_probability`` ``None``: no fusion
    weights (the noisy-OR of ``findings`` stands in); ``quality`` one score per processed
    image, empty when unknown; ``candidates`` every detection down to the candidate score,
    ``findings`` included (empty: the same as ``findings``); ``two_view_contribution`` from
    :func:`mammocad.fuse.agreement.two_view_contribution` over the candidates."""

    findings: tuple[Finding, ...]
    candidates: tuple[Finding, ...] = ()
    fused_probability: float | None = None
    n_linked_pairs: int = 0
    views: tuple[ViewPosition, ...] = ()
    quality: tuple[float, ...] = ()
    two_view_contribution: float = 0.0


def _clip(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def _max(values: Iterable[float]) -> float:
    return max(values, default=0.0)


def feature_row(inputs: BreastInputs) -> list[float]:
    """The :data:`FEATURES` of one breast."""
    found = inputs.findings
    contributions = [contribution(f) for f in found]
    candidates = inputs.candidates or found
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
        _max(contribution(f) for f in candidates),
        noisy_or(candidates),
        _clip(inputs.two_view_contribution),
    ]


#: the features that read candidates below the finding threshold
CANDIDATE_FEATURES = frozenset({"max_candidate_contribution", "candidate_probability"})

#: the features that compare the two views of a breast; without them the risk model sees
#: each view on its own (the single-view arm of the fusion ablation, docs/fusion.md)
CROSS_VIEW_FEATURES = frozenset({"n_linked_pairs", "two_view_contribution"})


def leading_candidate(inputs: BreastInputs) -> Finding | None:
    """The candidate with the largest ``score · malignancy`` — the box behind
    ``max_candidate_contribution``, the strongest single piece of evidence the risk model
    reads — ``None`` without candidates. It may be no reported finding (below the finding
    threshold, or past the image's limit of findings), so the result and the overlay show it
    apart from the findings: a breast is never "high" because of
    a box the reader cannot see."""
    return max(inputs.candidates or inputs.findings, key=contribution, default=None)


def columns(names: Sequence[str]) -> list[int]:
    """Indices in :data:`FEATURES` of ``names`` (a risk model's own feature list).

    Raises:
        ValueError: a name this version does not compute.
    """
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(f"features {unknown} are not computed by this mammocad version")
    return [FEATURES.index(name) for name in names]


def feature_matrix(rows: Sequence[BreastInputs]) -> npt.NDArray[np.float64]:
    """``float64[len(rows), len(FEATURES)]``."""
    matrix = np.array([feature_row(row) for row in rows], dtype=np.float64)
    return matrix.reshape(len(rows), len(FEATURES))
