"""Study- (or breast-) level metrics of the risk model: ROC-AUC with a patient-level bootstrap,
sensitivity and specificity at thresholds, operating points, calibration and the effect of
showing probabilities rounded to two decimals.

Conventions (the same in every function):

* ``scores`` ``float[N]`` are probabilities of malignancy in ``[0, 1]``; ``labels`` ``int[N]``
  are 1 (positive) or 0; a study is called positive when ``score >= threshold``.
* Confidence intervals of the AUC are percentile **cluster bootstrap** intervals: patients are
  resampled with replacement and each drawn patient brings all of its rows (studies, breasts),
  because rows of one patient are correlated and an ordinary bootstrap would make the interval
  too narrow. Resamples holding one class only have no AUC; they are skipped and counted.
* Sensitivity and specificity carry Wilson score intervals (Wilson, JASA 1927), which stay
  inside ``[0, 1]`` and behave at proportions near 0 or 1; they treat rows as independent.
* A metric that the data cannot define (an AUC without positives, a sensitivity without
  positives) is NaN rather than an error, so subgroups of one class still get a row.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from mammocad.eval.calibration import CalibrationReport, as_probabilities, evaluate_calibration

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DISPLAY_DECIMALS = 2  # the report shows e.g. "0.37"
NAN = float("nan")


@dataclass(frozen=True, kw_only=True)
class AucResult:
    """ROC-AUC with its bootstrap interval (NaN without bootstrap or with one class)."""

    auc: float
    ci_low: float = NAN
    ci_high: float = NAN
    ci_level: float = 0.95
    n_bootstrap: int = 0
    n_skipped: int = 0  # resamples with one class only


@dataclass(frozen=True, kw_only=True)
class ThresholdMetrics:
    """Confusion counts, sensitivity and specificity (Wilson intervals) at one threshold."""

    threshold: float
    tp: int
    fn: int
    tn: int
    fp: int
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class OperatingPoint:
    """A threshold chosen for a target: ``kind`` is ``"sensitivity"`` or ``"specificity"``."""

    kind: str
    target: float
    metrics: ThresholdMetrics

    @property
    def threshold(self) -> float:
        return self.metrics.threshold


@dataclass(frozen=True, kw_only=True)
class RoundingEffect:
    """AUC on raw and on displayed (rounded) probabilities; ``loss`` = raw − rounded."""

    decimals: int
    auc_raw: float
    auc_rounded: float

    @property
    def loss(self) -> float:
        return self.auc_raw - self.auc_rounded


@dataclass(frozen=True, kw_only=True)
class StudyMetrics:
    """All metrics of one set of studies (the whole test set or one subgroup)."""

    n: int
    n_positive: int
    n_patients: int
    auc: AucResult
    rounding: RoundingEffect
    at_thresholds: tuple[ThresholdMetrics, ...]
    operating_points: tuple[OperatingPoint, ...]
    calibration: CalibrationReport

    @property
    def share_positive(self) -> float:
        return self.n_positive / self.n if self.n else NAN

    def suspicion_thresholds(self) -> dict[str, float]:
        """``{"sensitivity@0.9": t, "specificity@0.9": t}`` to store in a model bundle."""
        return {f"{p.kind}@{p.target:g}": p.threshold for p in self.operating_points}


def patient_clusters(patient_ids: Sequence[Hashable] | npt.ArrayLike) -> list[IntArray]:
    """Row indices of each patient, in order of first appearance."""
    ids = list(np.asarray(patient_ids, dtype=object).reshape(-1))
    members: dict[Hashable, list[int]] = {}
    for row, pid in enumerate(ids):
        members.setdefault(pid, []).append(row)
    return [np.asarray(rows, dtype=np.int64) for rows in members.values()]


def cluster_bootstrap_indices(
    patient_ids: Sequence[Hashable] | npt.ArrayLike, n_resamples: int, *, seed: int = 0
) -> Iterator[IntArray]:
    """Row indices of ``n_resamples`` bootstrap samples that draw whole patients with
    replacement (a patient drawn twice brings its rows twice)."""
    clusters = patient_clusters(patient_ids)
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        pick = rng.integers(0, len(clusters), len(clusters))
        yield np.concatenate([clusters[i] for i in pick])


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """ROC-AUC (ties count one half), NaN when only one class is present."""
    score, label = as_probabilities(scores, labels)
    if len(np.unique(label)) < 2:
        return NAN
    return float(roc_auc_score(label, score))


def roc_auc_with_ci(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    patient_ids: Sequence[Hashable] | npt.ArrayLike | None = None,
    *,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> AucResult:
    """ROC-AUC with a percentile cluster-bootstrap interval over patients (``patient_ids``
    ``None``: every row is its own patient)."""
    score, label = as_probabilities(scores, labels)
    auc = roc_auc(score, label)
    if n_bootstrap <= 0 or math.isnan(auc):
        return AucResult(auc=auc, ci_level=ci_level)
    ids = np.arange(len(score)) if patient_ids is None else patient_ids
    if len(np.asarray(ids, dtype=object).reshape(-1)) != len(score):
        raise ValueError("patient_ids must give one id per score")
    samples = []
    for rows in cluster_bootstrap_indices(ids, n_bootstrap, seed=seed):
        drawn = label[rows]
        if drawn.min() != drawn.max():
            samples.append(roc_auc_score(drawn, score[rows]))
    skipped = n_bootstrap - len(samples)
    if not samples:
        return AucResult(auc=auc, ci_level=ci_level, n_bootstrap=n_bootstrap, n_skipped=skipped)
    tail = (1.0 - ci_level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return AucResult(
        auc=auc,
        ci_low=float(low),
        ci_high=float(high),
        ci_level=ci_level,
        n_bootstrap=n_bootstrap,
        n_skipped=skipped,
    )


def paired_auc_difference(
    scores: npt.ArrayLike,
    reference: npt.ArrayLike,
    labels: npt.ArrayLike,
    patient_ids: Sequence[Hashable] | npt.ArrayLike,
    *,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 1,
) -> tuple[float, float, float]:
    """AUC(``scores``) − AUC(``reference``) on the same rows, with a percentile interval over
    shared patient-cluster resamples: both methods are scored on every resample, so the
    interval of the difference is far narrower than the two AUCs' own intervals suggest."""
    score, label = as_probabilities(scores, labels)
    other, _ = as_probabilities(reference, labels)
    point = roc_auc(score, label) - roc_auc(other, label)
    draws = [
        roc_auc_score(label[rows], score[rows]) - roc_auc_score(label[rows], other[rows])
        for rows in cluster_bootstrap_indices(patient_ids, n_bootstrap, seed=seed)
        if label[rows].min() != label[rows].max()
    ]
    if not draws:
        return point, NAN, NAN
    tail = (1.0 - ci_level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return point, float(low), float(high)


def wilson_interval(successes: int, n: int, *, ci_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; ``(nan, nan)`` when ``n`` is 0."""
    if n <= 0:
        return NAN, NAN
    z = NormalDist().inv_cdf(0.5 + ci_level / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def metrics_at_threshold(
    scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, *, ci_level: float = 0.95
) -> ThresholdMetrics:
    """Counts, sensitivity and specificity when ``score >= threshold`` is called positive."""
    score, label = as_probabilities(scores, labels)
    called = score >= threshold
    tp = int(np.sum(called & (label == 1)))
    fn = int(np.sum(~called & (label == 1)))
    tn = int(np.sum(~called & (label == 0)))
    fp = int(np.sum(called & (label == 0)))
    return ThresholdMetrics(
        threshold=float(threshold),
        tp=tp,
        fn=fn,
        tn=tn,
        fp=fp,
        sensitivity=tp / (tp + fn) if tp + fn else NAN,
        sensitivity_ci=wilson_interval(tp, tp + fn, ci_level=ci_level),
        specificity=tn / (tn + fp) if tn + fp else NAN,
        specificity_ci=wilson_interval(tn, tn + fp, ci_level=ci_level),
    )


def threshold_for_sensitivity(
    scores: npt.ArrayLike, labels: npt.ArrayLike, target: float = 0.9
) -> float:
    """The highest observed score ``t`` with sensitivity(t) ≥ ``target`` — the most specific
    threshold that keeps the target; NaN without positives."""
    score, label = as_probabilities(scores, labels)
    positives = np.sort(score[label == 1])[::-1]
    if len(positives) == 0:
        return NAN
    # 1e-9 keeps 0.9 * 30 = 27.000000000000004 from asking for a 28th positive
    needed = max(1, math.ceil(target * len(positives) - 1e-9))
    return float(positives[needed - 1])


def threshold_for_specificity(
    scores: npt.ArrayLike, labels: npt.ArrayLike, target: float = 0.9
) -> float:
    """The lowest observed score ``t`` with specificity(t) ≥ ``target`` — the most sensitive
    threshold that keeps the target. When every observed score is too low the threshold is
    just above the highest score (nothing called positive); NaN without negatives."""
    score, label = as_probabilities(scores, labels)
    negatives = np.sort(score[label == 0])
    if len(negatives) == 0:
        return NAN
    needed = math.ceil(target * len(negatives) - 1e-9)
    if needed <= 0:
        return float(score.min())
    # t must lie above the needed-th lowest negative so that it is called negative
    above = score[score > negatives[needed - 1]]
    if len(above) == 0:
        return float(np.nextafter(negatives[needed - 1], np.inf))
    return float(above.min())


def operating_points(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    sensitivity_target: float = 0.9,
    specificity_target: float = 0.9,
    ci_level: float = 0.95,
) -> tuple[OperatingPoint, OperatingPoint]:
    """The ≥ ``sensitivity_target`` and ≥ ``specificity_target`` operating points."""
    points = []
    for kind, target, choose in (
        ("sensitivity", sensitivity_target, threshold_for_sensitivity),
        ("specificity", specificity_target, threshold_for_specificity),
    ):
        threshold = choose(scores, labels, target)
        metrics = metrics_at_threshold(scores, labels, threshold, ci_level=ci_level)
        points.append(OperatingPoint(kind=kind, target=target, metrics=metrics))
    return points[0], points[1]


def rounding_effect(
    scores: npt.ArrayLike, labels: npt.ArrayLike, *, decimals: int = DISPLAY_DECIMALS
) -> RoundingEffect:
    """AUC of the raw probabilities and of the probabilities the user sees after rounding;
    rounding creates ties, and a tied positive-negative pair counts one half instead of 1."""
    score, label = as_probabilities(scores, labels)
    return RoundingEffect(
        decimals=decimals,
        auc_raw=roc_auc(score, label),
        auc_rounded=roc_auc(np.round(score, decimals), label),
    )


def evaluate_study(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    patient_ids: Sequence[Hashable] | npt.ArrayLike | None = None,
    *,
    thresholds: Sequence[float] = (),
    sensitivity_target: float = 0.9,
    specificity_target: float = 0.9,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    decimals: int = DISPLAY_DECIMALS,
) -> StudyMetrics:
    """AUC (cluster bootstrap), metrics at ``thresholds``, operating points, rounding effect and
    calibration of one set of studies."""
    score, label = as_probabilities(scores, labels)
    ids = np.arange(len(score)) if patient_ids is None else patient_ids
    return StudyMetrics(
        n=len(score),
        n_positive=int(label.sum()),
        n_patients=len(patient_clusters(ids)),
        auc=roc_auc_with_ci(
            score, label, ids, n_bootstrap=n_bootstrap, ci_level=ci_level, seed=seed
        ),
        rounding=rounding_effect(score, label, decimals=decimals),
        at_thresholds=tuple(
            metrics_at_threshold(score, label, t, ci_level=ci_level) for t in thresholds
        ),
        operating_points=operating_points(
            score,
            label,
            sensitivity_target=sensitivity_target,
            specificity_target=specificity_target,
            ci_level=ci_level,
        ),
        calibration=evaluate_calibration(score, label, n_bins=n_bins),
    )


def evaluate_subgroups(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    groups: Sequence[Hashable] | npt.ArrayLike,
    patient_ids: Sequence[Hashable] | npt.ArrayLike | None = None,
    **options: object,
) -> dict[str, StudyMetrics]:
    """:func:`evaluate_study` per value of ``groups`` (one key per row, e.g. the breast density
    or the source site), keyed by ``str(value)`` in sorted order; ``options`` go through."""
    score, label = as_probabilities(scores, labels)
    keys = np.asarray([str(g) for g in np.asarray(groups, dtype=object).reshape(-1)])
    if len(keys) != len(score):
        raise ValueError(f"{len(keys)} group keys for {len(score)} scores")
    ids = np.asarray(np.arange(len(score)) if patient_ids is None else patient_ids, dtype=object)
    result: dict[str, StudyMetrics] = {}
    for key in sorted(set(keys.tolist())):
        rows = keys == key
        result[key] = evaluate_study(
            score[rows],
            label[rows],
            ids.reshape(-1)[rows],
            **options,  # type: ignore[arg-type]
        )
    return result
