"""``mammocad eval study``: study-level ROC-AUC, operating points and calibration of the
``result.json`` files of an ``analyze`` or ``batch`` run against study labels.

Labels come from a CSV (``study_instance_uid,label`` plus optional ``patient_id`` and
``group`` columns; label 1 = malignant) or from phantom folders (their ``truth.json``).
Scores are the rounded probabilities users see; the unrounded ones (``x_`` field) measure what
rounding costs. Rejected studies have no probability: they are counted as technical defects
and left out of the AUC.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mammocad.eval.study_metrics import StudyMetrics, evaluate_study, evaluate_subgroups
from mammocad.eval.study_report import write_study_csv, write_study_markdown
from mammocad.synthetic import read_truth


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyLabel:
    malignant: bool
    patient_id: str
    group: str | None = None


def labels_from_csv(path: Path) -> dict[str, StudyLabel]:
    """``study_instance_uid,label[,patient_id][,group]`` rows → labels by study UID."""
    labels: dict[str, StudyLabel] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if "study_instance_uid" not in row or "label" not in row:
                raise ValueError(f"{path}: needs the columns study_instance_uid and label")
            uid = row["study_instance_uid"].strip()
            labels[uid] = StudyLabel(
                malignant=row["label"].strip() in {"1", "true", "True", "malignant"},
                patient_id=(row.get("patient_id") or uid).strip(),
                group=(row.get("group") or None),
            )
    return labels


def labels_from_phantoms(folder: Path) -> dict[str, StudyLabel]:
    """Labels of every phantom study (``truth.json``) under ``folder``."""
    labels = {}
    for path in sorted(folder.rglob("truth.json")):
        truth = read_truth(path)
        labels[truth.study_instance_uid] = StudyLabel(
            malignant=truth.malignant, patient_id=truth.patient.patient_id
        )
    return labels


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyEvaluation:
    metrics: StudyMetrics
    n_studies: int
    n_rejected: int
    n_unlabelled: int
    report: Path


def _results(results_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(results_dir.glob("*/result.json"))
    ]


def run_eval_study(
    *,
    results_dir: Path,
    labels: dict[str, StudyLabel],
    out_dir: Path,
    bootstrap: int = 1000,
    console: Console | None = None,
) -> StudyEvaluation:
    """Evaluate every labelled result; write ``study_metrics.md`` and ``study_metrics.csv``."""
    console = console or Console(stderr=True)
    scores, raw, truth, patients, groups = [], [], [], [], []
    rejected = unlabelled = 0
    for result in _results(results_dir):
        label = labels.get(str(result["study_instance_uid"]))
        if label is None:
            unlabelled += 1
            continue
        if result["malignancy_probability"] is None:
            rejected += 1
            continue
        scores.append(float(result["malignancy_probability"]))
        raw.append(float(result.get("x_malignancy_probability_unrounded", scores[-1])))
        truth.append(int(label.malignant))
        patients.append(label.patient_id)
        groups.append(label.group or "all")
    if not scores:
        raise ValueError(f"no labelled, processed result.json under {results_dir}")
    metrics = evaluate_study(raw, truth, patients, n_bootstrap=bootstrap)
    subgroups = evaluate_subgroups(raw, truth, groups, patients, n_bootstrap=bootstrap)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_study_csv(metrics, out_dir / "study_metrics.csv", subgroups=subgroups)
    report = write_study_markdown(metrics, out_dir / "study_metrics.md", subgroups=subgroups)
    console.print(
        f"{len(scores)} studies ({sum(truth)} malignant), {rejected} rejected, "
        f"{unlabelled} without a label; AUC {metrics.auc.auc:.3f} "
        f"[{metrics.auc.ci_low:.3f}, {metrics.auc.ci_high:.3f}]; on the 2-decimal probabilities "
        f"users see {metrics.rounding.auc_rounded:.3f} (lost to rounding: "
        f"{metrics.rounding.loss:.4f}, must stay < 0.005)"
    )
    return StudyEvaluation(
        metrics=metrics,
        n_studies=len(scores),
        n_rejected=rejected,
        n_unlabelled=unlabelled,
        report=report,
    )
