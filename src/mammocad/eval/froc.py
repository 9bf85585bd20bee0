"""Free-response ROC (FROC): lesion sensitivity against false positives per image.

Hit rule (the same for every curve): a predicted box **hits** a truth box when their IoU is at
least 0.3 **or** the centre of the predicted box lies inside the truth box (edges included).
The centre rule keeps a well-placed but loosely sized box on a spiculated mass or a diffuse
calcification cluster a hit; 0.3 rather than 0.5 because lesion outlines are themselves
uncertain (Chakraborty's "localisation" criterion, relaxed as in the LUNA16 and INbreast FROCs).

For one curve (a *truth set*, e.g. "all masses" or "malignant lesions") and a score threshold t:

* a truth is detected when at least one prediction with score ≥ t hits it — each truth counts
  once, however many predictions hit it;
* a prediction with score ≥ t is a false positive when it hits no truth of the set and no
  *ignored* truth; duplicates on a detected lesion are therefore not false positives;
* sensitivity = detected truths / all truths of the set; FP rate = false positives / images
  (all evaluated images, lesion-free ones included).

Sensitivity at a FP rate r is the highest sensitivity of any threshold whose FP rate is ≤ r
(0 when even the highest threshold exceeds r). Curves: one per lesion class (predictions of
that class against truths of that class), ``any_lesion`` (all predictions, all truths), and
``malignant``: predictions ranked by the probability of a malignant lesion there — the
bundle's lesion ranker's (:mod:`mammocad.ranker`) where it has one, else ``score ×
malignancy`` — against malignant truths; truths of unknown malignancy are ignored, a hit on a
benign lesion is a false positive. Confidence intervals: percentile bootstrap over images; a
draw with no lesion of the curve is left out (its sensitivity is undefined, not 0).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
DEFAULT_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
HIT_IOU = 0.3
ANY_LESION = "any_lesion"
MALIGNANT = "malignant"


@dataclass(frozen=True, kw_only=True)
class ImageTruth:
    """Lesions of one image: ``boxes`` ``float[M, 4]`` ``[x1, y1, x2, y2]`` (any one frame,
    the same as the predictions'), ``labels`` ``str[M]``, ``malignant`` ``int[M]`` (1, 0, -1
    unknown; ``None``: all unknown).

    ``annotated`` names the classes the image's source annotates (``None``: all). A class it
    does not annotate may be present unmarked, so the image is left out of that class's curve
    and predictions of that class are dropped from its ``any_lesion`` and ``malignant``
    curves — they can be neither confirmed nor refuted there.
    """

    boxes: npt.ArrayLike
    labels: Sequence[str]
    malignant: npt.ArrayLike | None = None
    annotated: Collection[str] | None = None


@dataclass(frozen=True, kw_only=True)
class ImagePredictions:
    """Detections on one image: ``boxes`` ``float[N, 4]`` in the truths' frame, ``scores``
    ``float[N]``, ``labels`` ``str[N]``, ``malignancy`` ``float[N]`` in ``[0, 1]``;
    ``malignant_lesion`` ``float[N]``, a lesion ranker's probability that each box is a
    malignant lesion (``None``: ``scores × malignancy``), ranks the ``malignant`` curve."""

    boxes: npt.ArrayLike
    scores: npt.ArrayLike
    labels: Sequence[str]
    malignancy: npt.ArrayLike | None = None
    malignant_lesion: npt.ArrayLike | None = None


@dataclass(frozen=True, kw_only=True)
class FrocCurve:
    """One FROC curve with its operating points (``ci_*`` are NaN without bootstrap, or when
    no bootstrap draw holds a lesion of the curve)."""

    name: str
    n_images: int
    n_truths: int
    fp_per_image: FloatArray  # the full curve, ascending
    sensitivity: FloatArray
    fp_rates: tuple[float, ...]
    sensitivity_at: FloatArray  # at fp_rates
    ci_low: FloatArray
    ci_high: FloatArray

    @property
    def mean_sensitivity(self) -> float:
        """Mean over ``fp_rates`` (the "competition performance metric" of LUNA16)."""
        return float(np.mean(self.sensitivity_at))


@dataclass(frozen=True, kw_only=True)
class FrocReport:
    curves: dict[str, FrocCurve] = field(default_factory=dict)
    ci_level: float = 0.95

    def all_candidates(self) -> dict[str, dict[str, float]]:
        """Per curve the end of the curve — every candidate kept, whatever the false
        positives: ``{"sensitivity", "fp_per_image"}``. What the candidate pool can reach at
        all (the ceiling of anything that re-ranks it, e.g. the risk model's candidate
        features), which the fixed FP rates above do not show."""
        return {
            curve.name: {
                "sensitivity": float(curve.sensitivity.max(initial=0.0)),
                "fp_per_image": float(curve.fp_per_image.max(initial=0.0)),
            }
            for curve in self.curves.values()
        }

    def to_metrics(self) -> dict[str, dict[str, float]]:
        """``{"froc/<curve>/sens@<r>fp": {"value", "ci_low", "ci_high"}}`` for bundles/cards."""
        metrics: dict[str, dict[str, float]] = {}
        for curve in self.curves.values():
            for i, rate in enumerate(curve.fp_rates):
                metrics[f"froc/{curve.name}/sens@{rate:g}fp"] = {
                    "value": float(curve.sensitivity_at[i]),
                    "ci_low": float(curve.ci_low[i]),
                    "ci_high": float(curve.ci_high[i]),
                }
        return metrics


@dataclass(frozen=True)
class _Scored:
    """One image reduced to what a curve needs: per truth the best hitting score (-inf when
    missed) and the scores of the false positives."""

    truth_scores: FloatArray
    fp_scores: FloatArray


def hit_matrix(pred_boxes: npt.ArrayLike, truth_boxes: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """``bool[N, M]``: prediction ``i`` hits truth ``j`` (IoU ≥ 0.3 or centre inside)."""
    pred = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(pred[:, None, :2], truth[None, :, :2])
    hi = np.minimum(pred[:, None, 2:], truth[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area_p = np.prod(pred[:, 2:] - pred[:, :2], axis=1)
    area_t = np.prod(truth[:, 2:] - truth[:, :2], axis=1)
    union = area_p[:, None] + area_t[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    centre = (pred[:, :2] + pred[:, 2:]) / 2
    inside = np.all(
        (centre[:, None, :] >= truth[None, :, :2]) & (centre[:, None, :] <= truth[None, :, 2:]),
        axis=2,
    )
    return (iou >= HIT_IOU) | inside


def score_image(
    pred_boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    truth_boxes: npt.ArrayLike,
    ignore_boxes: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(best hitting score per truth, -inf if missed; scores of the false positives)."""
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    hits = hit_matrix(pred_boxes, truth_boxes)
    truth_scores = np.where(hits, score[:, None], -np.inf).max(axis=0, initial=-np.inf)
    explained = hits.any(axis=1)
    if ignore_boxes is not None:
        explained |= hit_matrix(pred_boxes, ignore_boxes).any(axis=1)
    return truth_scores, score[~explained]


def froc_points(
    truth_scores: FloatArray, fp_scores: FloatArray, n_images: int
) -> tuple[FloatArray, FloatArray]:
    """The full curve (FP per image ascending, sensitivity) over every distinct threshold."""
    thresholds = np.unique(np.concatenate([truth_scores[np.isfinite(truth_scores)], fp_scores]))
    thresholds = thresholds[::-1]  # strictest first
    n_truths = max(len(truth_scores), 1)
    detected = np.searchsorted(np.sort(-truth_scores), -thresholds, side="right")
    false_pos = np.searchsorted(np.sort(-fp_scores), -thresholds, side="right")
    fp_rate = np.concatenate([[0.0], false_pos / max(n_images, 1)])
    sensitivity = np.concatenate([[0.0], detected / n_truths])
    return fp_rate, sensitivity


def sensitivity_at(
    fp_rate: FloatArray, sensitivity: FloatArray, rates: Sequence[float]
) -> FloatArray:
    """Highest sensitivity with FP rate ≤ each of ``rates`` (the curve starts at (0, 0))."""
    return np.array([sensitivity[fp_rate <= rate].max() for rate in rates], dtype=np.float64)


def froc_curve(
    name: str,
    scored: Sequence[_Scored],
    *,
    fp_rates: Sequence[float] = DEFAULT_FP_RATES,
    bootstrap: int = 0,
    ci_level: float = 0.95,
    seed: int = 0,
) -> FrocCurve:
    """A curve from per-image scored results, with an optional percentile bootstrap."""
    rates = tuple(float(r) for r in fp_rates)
    fp_rate, sens = _curve_of(scored)
    point = sensitivity_at(fp_rate, sens, rates)
    low = np.full(len(rates), np.nan)
    high = np.full(len(rates), np.nan)
    if bootstrap > 0 and scored:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):
            drawn = [scored[i] for i in rng.integers(0, len(scored), len(scored))]
            if _n_truths(drawn):  # a draw without a lesion has no sensitivity, not 0
                samples.append(sensitivity_at(*_curve_of(drawn), rates))
        if samples:
            tail = (1.0 - ci_level) / 2 * 100
            low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return FrocCurve(
        name=name,
        n_images=len(scored),
        n_truths=_n_truths(scored),
        fp_per_image=fp_rate,
        sensitivity=sens,
        fp_rates=rates,
        sensitivity_at=point,
        ci_low=low,
        ci_high=high,
    )


def _n_truths(scored: Sequence[_Scored]) -> int:
    return sum(len(s.truth_scores) for s in scored)


def _curve_of(scored: Sequence[_Scored]) -> tuple[FloatArray, FloatArray]:
    if not scored:
        return np.zeros(1), np.zeros(1)
    truth = np.concatenate([s.truth_scores for s in scored])
    fps = np.concatenate([s.fp_scores for s in scored])
    return froc_points(truth, fps, len(scored))


def evaluate_froc(
    predictions: Sequence[ImagePredictions],
    truths: Sequence[ImageTruth],
    *,
    classes: Sequence[str],
    fp_rates: Sequence[float] = DEFAULT_FP_RATES,
    bootstrap: int = 0,
    ci_level: float = 0.95,
    seed: int = 0,
) -> FrocReport:
    """FROC per class in ``classes``, for any lesion and for malignant lesions.

    ``predictions[i]`` and ``truths[i]`` describe the same image, in the same pixel frame.
    A class curve is left out when no image has a truth of that class (its sensitivity would
    be undefined); ``bootstrap`` > 0 adds percentile confidence intervals over images.
    """
    options = {"fp_rates": fp_rates, "bootstrap": bootstrap, "ci_level": ci_level, "seed": seed}
    curves = {
        name: froc_curve(name, scored, **options)  # type: ignore[arg-type]
        for name, scored in _scored_curves(predictions, truths, classes).items()
    }
    return FrocReport(curves=curves, ci_level=ci_level)


def _scored_curves(
    predictions: Sequence[ImagePredictions], truths: Sequence[ImageTruth], classes: Sequence[str]
) -> dict[str, list[_Scored]]:
    """Per curve with at least one truth, its images reduced to scores (see the module doc)."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} truth sets")
    images = [
        (_as_pred(p, t.annotated), _as_truth(t), t.annotated)
        for p, t in zip(predictions, truths, strict=True)
    ]
    curves: dict[str, list[_Scored]] = {}
    for name in (*classes, ANY_LESION, MALIGNANT):
        scored = [
            _score_for(name, pred, truth)
            for pred, truth, annotated in images
            if annotated is None or name in (ANY_LESION, MALIGNANT) or name in annotated
        ]
        if sum(len(s.truth_scores) for s in scored) > 0:
            curves[name] = scored
    return curves


@dataclass(frozen=True, kw_only=True)
class FrocDifference:
    """Sensitivity of model B minus model A at each FP rate, on the same images, with a paired
    percentile bootstrap interval (images drawn once, both models scored on the draw)."""

    name: str
    n_truths: int
    fp_rates: tuple[float, ...]
    difference: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray


def paired_froc_difference(
    predictions_a: Sequence[ImagePredictions],
    predictions_b: Sequence[ImagePredictions],
    truths: Sequence[ImageTruth],
    *,
    classes: Sequence[str],
    fp_rates: Sequence[float] = DEFAULT_FP_RATES,
    bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    truths_b: Sequence[ImageTruth] | None = None,
) -> dict[str, FrocDifference]:
    """B − A per curve. Two candidates judged on the same few lesions (mini-MIAS fold 0 has
    nine masses) differ by one or two lesions; their separate intervals overlap whatever
    happens, while the paired interval asks whether B is better on these images.

    ``truths_b``: the same lesions in B's frame where B's boxes are in another one (another
    bundle's input size); each model is judged in its own frame (``None``: ``truths``)."""
    rates = tuple(float(r) for r in fp_rates)
    curves_a = _scored_curves(predictions_a, truths, classes)
    curves_b = _scored_curves(predictions_b, truths if truths_b is None else truths_b, classes)
    rng = np.random.default_rng(seed)
    tail = (1.0 - ci_level) / 2 * 100
    result: dict[str, FrocDifference] = {}
    for name, scored_a in curves_a.items():
        scored_b = curves_b[name]  # the same images: which ones a curve takes reads the truths

        def delta(
            pick: Sequence[int] | npt.NDArray[np.int64],
            a: list[_Scored] = scored_a,
            b: list[_Scored] = scored_b,
        ) -> FloatArray:
            sens_b = sensitivity_at(*_curve_of([b[i] for i in pick]), rates)
            return sens_b - sensitivity_at(*_curve_of([a[i] for i in pick]), rates)

        n = len(scored_a)
        low = high = np.full(len(rates), np.nan)
        # the same images on both sides: a draw without a lesion has no sensitivity in either
        picks = (rng.integers(0, n, n) for _ in range(bootstrap))
        samples = [delta(pick) for pick in picks if _n_truths([scored_a[i] for i in pick])]
        if samples:
            low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
        result[name] = FrocDifference(
            name=name,
            n_truths=_n_truths(scored_a),
            fp_rates=rates,
            difference=delta(range(n)),
            ci_low=low,
            ci_high=high,
        )
    return result


def _score_for(name: str, pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> _Scored:
    if name == ANY_LESION:
        return _Scored(*score_image(pred["boxes"], pred["scores"], truth["boxes"]))
    if name == MALIGNANT:
        malignant = truth["malignant"]
        return _Scored(
            *score_image(
                pred["boxes"],
                pred["malignant_lesion"],
                truth["boxes"][malignant == 1],
                ignore_boxes=truth["boxes"][malignant < 0],
            )
        )
    mine = pred["labels"] == name
    theirs = truth["labels"] == name
    return _Scored(*score_image(pred["boxes"][mine], pred["scores"][mine], truth["boxes"][theirs]))


def malignant_ranking(pred: ImagePredictions) -> FloatArray:
    """What the ``malignant`` curve ranks ``pred``'s boxes by: the lesion ranker's probability
    where there is one, else ``score × malignancy`` (0 without malignancy)."""
    if pred.malignant_lesion is not None:
        return np.asarray(pred.malignant_lesion, dtype=np.float64).reshape(-1)
    scores = np.asarray(pred.scores, dtype=np.float64).reshape(-1)
    if pred.malignancy is None:
        return np.zeros_like(scores)
    malignancy = np.asarray(pred.malignancy, dtype=np.float64).reshape(-1)
    if len(malignancy) != len(scores):
        raise ValueError("prediction scores and malignancy differ in length")
    return scores * malignancy


def _as_pred(pred: ImagePredictions, annotated: Collection[str] | None) -> dict[str, np.ndarray]:
    boxes = np.asarray(pred.boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    malignancy = np.zeros(n) if pred.malignancy is None else np.asarray(pred.malignancy, float)
    result = {
        "boxes": boxes,
        "scores": np.asarray(pred.scores, dtype=np.float64).reshape(-1),
        "labels": np.asarray(list(pred.labels), dtype=object).reshape(-1),
        "malignancy": malignancy.reshape(-1),
        "malignant_lesion": malignant_ranking(pred),
    }
    if any(len(v) != n for v in result.values()):
        raise ValueError(
            "prediction boxes, scores, labels, malignancy and malignant_lesion differ in length"
        )
    if annotated is not None:
        judged = np.array([label in annotated for label in result["labels"]], dtype=bool)
        result = {key: value[judged] for key, value in result.items()}
    return result


def _as_truth(truth: ImageTruth) -> dict[str, np.ndarray]:
    boxes = np.asarray(truth.boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    malignant = np.full(n, -1) if truth.malignant is None else np.asarray(truth.malignant, int)
    result = {
        "boxes": boxes,
        "labels": np.asarray(list(truth.labels), dtype=object).reshape(-1),
        "malignant": malignant.reshape(-1),
    }
    if any(len(v) != n for v in result.values()):
        raise ValueError("truth boxes, labels and malignant flags differ in length")
    return result


def write_froc_csv(report: FrocReport, path: str | Path) -> Path:
    """One row per curve and FP rate: ``curve, fp_per_image, sensitivity, ci_low, ci_high,
    n_truths, n_images`` (CI columns empty without bootstrap)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["curve", "fp_per_image", "sensitivity", "ci_low", "ci_high", "n_truths", "n_images"]
        )
        for curve in report.curves.values():
            for i, rate in enumerate(curve.fp_rates):
                writer.writerow(
                    [
                        curve.name,
                        f"{rate:g}",
                        f"{curve.sensitivity_at[i]:.4f}",
                        _fmt(curve.ci_low[i]),
                        _fmt(curve.ci_high[i]),
                        curve.n_truths,
                        curve.n_images,
                    ]
                )
    return out


def plot_froc(report: FrocReport, path: str | Path, *, title: str = "FROC") -> Path:
    """PNG of every curve, FP/image on a log axis over the standard range."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers and CI
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting FROC curves needs matplotlib: pip install 'mammocad[ml]'"
        ) from error
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for curve in report.curves.values():
        # the step shape is exact: sensitivity only changes at the thresholds
        x = np.maximum(curve.fp_per_image, 1e-3)
        axes.step(x, curve.sensitivity, where="post", label=f"{curve.name} (n={curve.n_truths})")
        if np.all(np.isfinite(curve.ci_low)):
            axes.fill_between(curve.fp_rates, curve.ci_low, curve.ci_high, alpha=0.15)
    rates = next(iter(report.curves.values())).fp_rates if report.curves else DEFAULT_FP_RATES
    axes.set_xscale("log", base=2)
    axes.set_xlim(min(rates) / 2, max(rates) * 2)
    axes.set_xticks(rates, [f"{r:g}" for r in rates])
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("false positives per image")
    axes.set_ylabel("sensitivity")
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def _fmt(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.4f}"
