"""Calibration of predicted probabilities: expected calibration error, Brier score and the
reliability diagram.

Bins are **equal-width** on ``[0, 1]``: with ``B`` bins, bin ``i`` holds the predictions in
``[i/B, (i+1)/B)`` and the last bin also holds ``1.0``. The expected calibration error is the
count-weighted mean gap between the mean prediction and the observed positive rate of each bin
(Naeini et al., AAAI 2015; Guo et al., ICML 2017)::

    ECE = Σ_b (n_b / N) · |mean(p in b) − mean(y in b)|

Empty bins contribute nothing. Equal-width rather than equal-mass bins so that diagrams of
different models and test sets share their x axis; the price is that sparse high-probability bins
are noisy — read them with their counts. The Brier score is ``mean((p − y)²)`` (Brier, 1950).

**ECE by chance.** Even perfectly calibrated probabilities show an ECE above 0 on a finite set:
each bin's positive rate scatters around its mean prediction. :func:`ece_if_calibrated` measures
that floor by *consistency resampling* (Bröcker & Smith, Weather and Forecasting 22(3), 2007):
labels are drawn as ``y ~ Bernoulli(p)`` from the set's own probabilities — a world where they
are exactly right — and the ECE of each draw is computed. An observed ECE below the 95th
percentile of those draws is no evidence of miscalibration on this many cases; a target ECE
below their mean cannot be confirmed with them at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DEFAULT_BINS = 10


@dataclass(frozen=True, kw_only=True)
class ReliabilityDiagram:
    """Per-bin data of a reliability diagram: ``edges`` ``float[B + 1]`` (0 … 1), ``counts``
    ``int[B]``, ``mean_predicted`` and ``observed_rate`` ``float[B]`` (NaN in empty bins)."""

    edges: FloatArray
    counts: IntArray
    mean_predicted: FloatArray
    observed_rate: FloatArray


@dataclass(frozen=True, kw_only=True)
class CalibrationReport:
    """ECE and Brier score of one set, with the diagram they come from."""

    ece: float
    brier: float
    n_bins: int
    diagram: ReliabilityDiagram
    #: mean and 95th percentile of the ECE that exactly calibrated probabilities would show on
    #: this set by chance (:func:`ece_if_calibrated`); NaN when not computed
    ece_if_calibrated: float = float("nan")
    ece_if_calibrated_p95: float = float("nan")


def as_probabilities(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[FloatArray, IntArray]:
    """Validated ``float[N]`` probabilities in ``[0, 1]`` and ``int[N]`` labels in ``{0, 1}``."""
    prob = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    label = np.asarray(labels).reshape(-1)
    if len(prob) != len(label):
        raise ValueError(f"{len(prob)} probabilities for {len(label)} labels")
    if not np.all(np.isfinite(prob)) or np.any((prob < 0) | (prob > 1)):
        raise ValueError("probabilities must be finite and in [0, 1]; apply a sigmoid first")
    if not np.all(np.isin(label, (0, 1))):
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    return prob, label.astype(np.int64)


def reliability_diagram(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, n_bins: int = DEFAULT_BINS
) -> ReliabilityDiagram:
    """Bin counts, mean prediction and observed positive rate over ``n_bins`` equal-width bins."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    prob, label = as_probabilities(probabilities, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # clip so that p = 1.0 falls into the last bin rather than a bin of its own
    which = np.clip(np.floor(prob * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins).astype(np.int64)
    sum_pred = np.bincount(which, weights=prob, minlength=n_bins)
    sum_pos = np.bincount(which, weights=label.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(counts > 0, sum_pred / counts, np.nan)
        observed = np.where(counts > 0, sum_pos / counts, np.nan)
    return ReliabilityDiagram(
        edges=edges, counts=counts, mean_predicted=mean_pred, observed_rate=observed
    )


def expected_calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, n_bins: int = DEFAULT_BINS
) -> float:
    """Count-weighted mean |mean prediction − positive rate| over equal-width bins."""
    return _ece(reliability_diagram(probabilities, labels, n_bins=n_bins))


def ece_if_calibrated(
    probabilities: npt.ArrayLike,
    *,
    n_bins: int = DEFAULT_BINS,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and 95th percentile of the ECE of ``probabilities`` against labels drawn from them
    (``y ~ Bernoulli(p)``, ``n_resamples`` draws, seeded): the ECE that chance alone gives
    probabilities that are exactly right (module docstring). NaN for an empty set."""
    prob = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    as_probabilities(prob, np.zeros(len(prob), dtype=np.int64))  # validates the range
    if len(prob) == 0 or n_resamples < 1:
        return float("nan"), float("nan")
    which = np.clip(np.floor(prob * n_bins).astype(np.int64), 0, n_bins - 1)
    members = np.zeros((len(prob), n_bins))
    members[np.arange(len(prob)), which] = 1.0
    drawn = np.random.default_rng(seed).random((n_resamples, len(prob))) < prob
    # n_b · |mean p_b − rate_b| = |Σ p_b − Σ y_b|: the ECE of every draw in one product
    gaps = np.abs(prob @ members - drawn.astype(np.float64) @ members)
    eces = gaps.sum(axis=1) / len(prob)
    return float(eces.mean()), float(np.percentile(eces, 95))


def brier_score(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean squared difference between probability and label (0 is perfect)."""
    prob, label = as_probabilities(probabilities, labels)
    if len(prob) == 0:
        return float("nan")
    return float(np.mean((prob - label) ** 2))


def evaluate_calibration(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, n_bins: int = DEFAULT_BINS
) -> CalibrationReport:
    """ECE, Brier score and reliability diagram in one pass, with the ECE that chance alone
    would give this set (:func:`ece_if_calibrated`)."""
    diagram = reliability_diagram(probabilities, labels, n_bins=n_bins)
    chance, chance_p95 = ece_if_calibrated(probabilities, n_bins=n_bins)
    return CalibrationReport(
        ece=_ece(diagram),
        brier=brier_score(probabilities, labels),
        n_bins=n_bins,
        diagram=diagram,
        ece_if_calibrated=chance,
        ece_if_calibrated_p95=chance_p95,
    )


def _ece(diagram: ReliabilityDiagram) -> float:
    total = int(diagram.counts.sum())
    if total == 0:
        return float("nan")
    filled = diagram.counts > 0
    gaps = np.abs(diagram.mean_predicted[filled] - diagram.observed_rate[filled])
    return float(np.sum(diagram.counts[filled] * gaps) / total)


def plot_reliability(
    report: CalibrationReport, path: str | Path, *, title: str = "Reliability"
) -> Path:
    """PNG of the reliability diagram (observed rate against mean prediction, with the
    diagonal of perfect calibration) over a histogram of the predictions."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers and CI
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting reliability diagrams needs matplotlib: pip install 'mammocad[ml]'"
        ) from error
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    diagram = report.diagram
    centres = (diagram.edges[:-1] + diagram.edges[1:]) / 2
    width = float(diagram.edges[1] - diagram.edges[0])
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.6, 6.4), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    filled = diagram.counts > 0
    top.plot(
        diagram.mean_predicted[filled],
        diagram.observed_rate[filled],
        marker="o",
        label=f"model (ECE {report.ece:.3f}, Brier {report.brier:.3f})",
    )
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("observed positive rate")
    top.set_title(title)
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(centres, diagram.counts, width=width * 0.9, color="tab:blue", alpha=0.6)
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out
