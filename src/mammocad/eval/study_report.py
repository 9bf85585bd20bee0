"""The "calibration test" summary and the study report (markdown tables and CSV).

The summary mirrors the calibration test of the Moscow experiment on computer vision in
radiology (Moscow Center for Diagnostics and Telemedicine): before an AI service is admitted it
is run on a labelled set of at least 400 studies of which at least 10% are positive, and the
report gives the number of studies, the share of positives, ROC-AUC with its 95% interval,
sensitivity and specificity at the service's threshold and the share of studies with technical
defects (the service failed, or its output was unusable). The metrics are computed on all
studies given; whether defective studies are kept (scored as the service scored them) or
removed beforehand is the caller's choice and belongs in the report's text.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mammocad.eval.study_metrics import (
    AucResult,
    StudyMetrics,
    ThresholdMetrics,
    metrics_at_threshold,
    roc_auc_with_ci,
)

MIN_STUDIES = 400
MIN_SHARE_POSITIVE = 0.10


@dataclass(frozen=True, kw_only=True)
class CalibrationTestSummary:
    """One row of the calibration-test report."""

    n_studies: int
    share_positive: float
    auc: AucResult
    at_threshold: ThresholdMetrics
    share_technical_defects: float


@dataclass(frozen=True, kw_only=True)
class CalibrationTestCheck:
    """Whether a set qualifies as a calibration-test set; ``problems`` says why not."""

    passed: bool
    problems: tuple[str, ...]


def calibration_test_summary(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    technical_defect: npt.ArrayLike,
    *,
    threshold: float,
    patient_ids: Sequence[Hashable] | npt.ArrayLike | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> CalibrationTestSummary:
    """The summary of one set; ``technical_defect`` ``bool[N]`` flags each study."""
    defect = np.asarray(technical_defect, dtype=bool).reshape(-1)
    at_threshold = metrics_at_threshold(scores, labels, threshold)
    n = at_threshold.tp + at_threshold.fn + at_threshold.tn + at_threshold.fp
    if len(defect) != n:
        raise ValueError(f"{len(defect)} technical-defect flags for {n} studies")
    return CalibrationTestSummary(
        n_studies=n,
        share_positive=(at_threshold.tp + at_threshold.fn) / n if n else math.nan,
        auc=roc_auc_with_ci(scores, labels, patient_ids, n_bootstrap=n_bootstrap, seed=seed),
        at_threshold=at_threshold,
        share_technical_defects=float(defect.mean()) if n else math.nan,
    )


def check_calibration_test_set(
    summary: CalibrationTestSummary,
    *,
    min_studies: int = MIN_STUDIES,
    min_share_positive: float = MIN_SHARE_POSITIVE,
) -> CalibrationTestCheck:
    """Does the set have ≥ ``min_studies`` studies and ≥ ``min_share_positive`` positives?"""
    problems = []
    if summary.n_studies < min_studies:
        problems.append(
            f"{summary.n_studies} studies, the test needs at least {min_studies}: add studies"
        )
    if not summary.share_positive >= min_share_positive:  # NaN fails too
        problems.append(
            f"{summary.share_positive:.1%} positive, the test needs at least "
            f"{min_share_positive:.0%}: add positive studies"
        )
    return CalibrationTestCheck(passed=not problems, problems=tuple(problems))


def metric_rows(metrics: StudyMetrics, *, group: str = "all") -> list[list[str]]:
    """``[group, metric, value, ci_low, ci_high]`` rows of one set (CI empty where none)."""
    rounded = f"auc_rounded_{metrics.rounding.decimals}dp"
    rows = [
        [group, "n", str(metrics.n), "", ""],
        [group, "n_positive", str(metrics.n_positive), "", ""],
        [group, "n_patients", str(metrics.n_patients), "", ""],
        [group, "auc", _fmt(metrics.auc.auc), _fmt(metrics.auc.ci_low), _fmt(metrics.auc.ci_high)],
        [group, "auc_bootstrap_skipped", str(metrics.auc.n_skipped), "", ""],
        [group, rounded, _fmt(metrics.rounding.auc_rounded), "", ""],
        [group, "auc_rounding_loss", _fmt(metrics.rounding.loss), "", ""],
        [group, "ece", _fmt(metrics.calibration.ece), "", ""],
        [group, "ece_if_calibrated", _fmt(metrics.calibration.ece_if_calibrated), "", ""],
        [group, "ece_if_calibrated_p95", _fmt(metrics.calibration.ece_if_calibrated_p95), "", ""],
        [group, "brier", _fmt(metrics.calibration.brier), "", ""],
    ]
    named = [(f"@{m.threshold:g}", m) for m in metrics.at_thresholds]
    named += [(f"@{p.kind}{p.target:g}", p.metrics) for p in metrics.operating_points]
    for suffix, m in named:
        rows.append([group, f"threshold{suffix}", _fmt(m.threshold), "", ""])
        rows.append([group, f"sensitivity{suffix}", _fmt(m.sensitivity), *_ci(m.sensitivity_ci)])
        rows.append([group, f"specificity{suffix}", _fmt(m.specificity), *_ci(m.specificity_ci)])
    return rows


def write_study_csv(
    metrics: StudyMetrics,
    path: str | Path,
    *,
    subgroups: Mapping[str, StudyMetrics] | None = None,
) -> Path:
    """Long CSV ``group, metric, value, ci_low, ci_high``: the whole set, then each subgroup."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "metric", "value", "ci_low", "ci_high"])
        writer.writerows(metric_rows(metrics))
        for name, sub in (subgroups or {}).items():
            writer.writerows(metric_rows(sub, group=name))
    return out


def write_study_markdown(
    metrics: StudyMetrics,
    path: str | Path,
    *,
    title: str = "Study-level evaluation",
    subgroups: Mapping[str, StudyMetrics] | None = None,
    calibration_test: CalibrationTestSummary | None = None,
) -> Path:
    """Markdown report: overall metrics, operating points, subgroups and calibration test."""
    lines = [f"# {title}", "", "## Overall", "", *_overview_table({"all": metrics}), ""]
    lines += ["## Operating points", "", *_threshold_table(metrics), ""]
    if subgroups:
        lines += ["## Subgroups", "", *_overview_table(subgroups), ""]
    if calibration_test is not None:
        lines += ["## Calibration test", "", *_calibration_test_table(calibration_test), ""]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out


def _overview_table(sets: Mapping[str, StudyMetrics]) -> list[str]:
    lines = [
        "| group | n | positive | patients | AUC (95% CI) | AUC rounded | rounding loss "
        "| ECE | ECE by chance (mean / 95th pct) | Brier |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for name, m in sets.items():
        auc = _with_ci(m.auc.auc, (m.auc.ci_low, m.auc.ci_high))
        lines.append(
            f"| {name} | {m.n} | {m.n_positive} | {m.n_patients} | {auc} "
            f"| {_fmt(m.rounding.auc_rounded, 3)} | {_fmt(m.rounding.loss, 4)} "
            f"| {_fmt(m.calibration.ece, 3)} | {_fmt(m.calibration.ece_if_calibrated, 3)} / "
            f"{_fmt(m.calibration.ece_if_calibrated_p95, 3)} | {_fmt(m.calibration.brier, 3)} |"
        )
    return lines


def _threshold_table(metrics: StudyMetrics) -> list[str]:
    lines = [
        "| operating point | threshold | sensitivity (95% CI) | specificity (95% CI) |",
        "|---|---:|---|---|",
    ]
    named = [(f"score ≥ {m.threshold:g}", m) for m in metrics.at_thresholds]
    named += [(f"{p.kind} ≥ {p.target:g}", p.metrics) for p in metrics.operating_points]
    for name, m in named:
        lines.append(
            f"| {name} | {_fmt(m.threshold)} | {_with_ci(m.sensitivity, m.sensitivity_ci)} "
            f"| {_with_ci(m.specificity, m.specificity_ci)} |"
        )
    return lines


def _calibration_test_table(summary: CalibrationTestSummary) -> list[str]:
    check = check_calibration_test_set(summary)
    auc = summary.auc
    m = summary.at_threshold
    return [
        "| quantity | value |",
        "|---|---|",
        f"| studies | {summary.n_studies} |",
        f"| share positive | {_fmt(summary.share_positive, 3)} |",
        f"| AUC (95% CI) | {_with_ci(auc.auc, (auc.ci_low, auc.ci_high))} |",
        f"| threshold | {m.threshold:g} |",
        f"| sensitivity (95% CI) | {_with_ci(m.sensitivity, m.sensitivity_ci)} |",
        f"| specificity (95% CI) | {_with_ci(m.specificity, m.specificity_ci)} |",
        f"| share technical defects | {_fmt(summary.share_technical_defects, 3)} |",
        f"| set qualifies | {'yes' if check.passed else 'no: ' + '; '.join(check.problems)} |",
    ]


def _with_ci(value: float, ci: tuple[float, float]) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(ci[0]) and math.isfinite(ci[1])):
        return _fmt(value, 3)
    return f"{_fmt(value, 3)} ({_fmt(ci[0], 3)}–{_fmt(ci[1], 3)})"


def _ci(ci: tuple[float, float]) -> list[str]:
    return [_fmt(ci[0]), _fmt(ci[1])]


def _fmt(value: float, digits: int = 4) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"
