"""Breast-level evaluation on mini-MIAS: the issue's "abnormal vs normal" and "malignant vs the
rest" ROC-AUCs of the breast probability a user sees.

mini-MIAS holds one MLO film per breast and both breasts of each patient (``mdb001`` right,
``mdb002`` left, …), so each patient becomes one two-image study and goes through
:meth:`Pipeline.analyze` as ``mammocad analyze`` takes the two PNGs, with the side, view and
0.2 mm spacing mini-MIAS documents (a bare PNG says none of them): quality gate, detection,
fusion (an MLO-only breast has nothing to link), aggregation, calibration. Each
breast then gives one row:

* ``probability``: the breast's unrounded malignancy probability (None when the pipeline
  rejected the film — such breasts are counted and left out of the AUC, as
  ``mammocad eval study`` leaves out rejected studies);
* ``abnormal``: Info.txt lists an abnormality (any class but NORM) for the film — including the
  four rows without coordinates, which a breast-level label does not need;
* ``malignant``: one of them has severity M.

AUC intervals are the patient-cluster bootstrap of :mod:`mammocad.eval.study_metrics` (both
breasts of a patient are drawn together). Folds are the detector training's patient-level folds
(:func:`mammocad.datasets.mias.patient_folds`, same seed), so ``fold=K`` evaluates a model
trained with ``exclude_fold=K`` on the same folder on patients it never saw; folds are drawn over
the patients a folder holds, so the training overlap is read from the training folder itself
(:func:`trained_films`).
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mammocad.datasets.mias import image_labels, load_mias, read_record
from mammocad.datasets.records import AnnotatedImage
from mammocad.datasets.spec import select_mias, selected_films
from mammocad.detect.bundle import BundleManifest
from mammocad.eval.study_metrics import StudyMetrics, evaluate_study, evaluate_subgroups
from mammocad.eval.study_report import write_study_csv, write_study_markdown
from mammocad.pipeline import Pipeline
from mammocad.structures import Study

logger = logging.getLogger(__name__)

#: The two questions the issue asks, and the row attribute that answers each.
TASKS: Mapping[str, str] = {
    "abnormal_vs_normal": "abnormal",
    "malignant_vs_rest": "malignant",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastRow:
    image_id: str
    patient_id: str
    laterality: str
    density: str
    abnormal: bool
    malignant: bool
    probability: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastTask:
    """One task's metrics overall and per breast density."""

    name: str
    metrics: StudyMetrics
    by_density: dict[str, StudyMetrics]


@dataclass(frozen=True, slots=True, kw_only=True)
class MiasBreastEvaluation:
    """``trained``: per bundle component and mini-MIAS training source, how many of the
    evaluated films it trained on (:func:`trained_films`); empty when the figures are held
    out (a component whose training folder cannot be read here is logged as a warning by
    :func:`training_overlap`)."""

    rows: list[BreastRow]
    tasks: dict[str, BreastTask]
    trained: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def n_rejected(self) -> int:
        return sum(row.probability is None for row in self.rows)


def select_fold(
    records: Sequence[AnnotatedImage], *, fold: int | None, folds: int = 5, fold_seed: int = 0
) -> list[AnnotatedImage]:
    """The records of one patient-level fold (all records when ``fold`` is None), as a
    ``mias:...,fold=K`` data spec selects them."""
    if fold is None:
        return list(records)
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
    return select_mias(
        records, {"fold": str(fold), "folds": str(folds), "fold_seed": str(fold_seed)}
    )


#: Bundle components that may be trained on mini-MIAS, by the manifest section recording their
#: training data (the detector's is the manifest's own ``training_data``).
COMPONENTS = {
    "detector": None,
    "lesion classifier": "malignancy",
    "fusion": "fusion",
    "risk model": "risk",
}


def training_data_of(manifest: BundleManifest) -> dict[str, Any]:
    """Each component's recorded training data in a bundle's manifest (absent ones left out)."""
    found: dict[str, Any] = {}
    for component, section in COMPONENTS.items():
        data = (
            manifest.training_data
            if section is None
            else getattr(manifest, section).get("training_data")
        )
        if data:
            found[component] = data
    return found


def trained_films(
    training_data: Any,
    evaluated: Sequence[AnnotatedImage],
    folders: dict[Path, list[AnnotatedImage]] | None = None,
) -> dict[str, int | None]:
    """For each mini-MIAS source a component's recorded training data (its ``"train"``
    entries) lists, how many of the ``evaluated`` films it trained on: films whose figures are
    not held out. Sources that share none are left out; training data of another shape (older
    or hand-edited manifests) gives none.

    The training films are the ones the source's options (``fold`` / ``exclude_fold``) select
    from the source's own folder (``path``): folds are drawn over the patients a folder holds,
    so the evaluated folder's folds are another split whenever it holds other films. They are
    matched by film name (``mdbNNN`` is the database's own), so a copy in another folder counts.
    ``None``: the overlap is unknown, because ``path`` is not a mini-MIAS folder here (moved,
    or the model was trained on another machine) or the options are not a fold choice.
    ``folders`` keeps each folder read (:func:`~mammocad.datasets.spec.selected_films`), for
    callers that ask for several components.
    """
    entries = training_data.get("train") if isinstance(training_data, Mapping) else None
    if not isinstance(entries, list):
        return {}
    names = {record.image_id for record in evaluated}
    folders = {} if folders is None else folders
    overlap: dict[str, int | None] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("kind") != "mias":
            continue
        options = {str(key): str(value) for key, value in entry.items() if key != "kind"}
        source = "mias:" + ",".join(f"{k}={v}" for k, v in options.items())
        chosen = selected_films(options, folders)
        if chosen is None:
            overlap[source] = None
        elif shared := len(chosen & names):
            overlap[source] = shared
    return overlap


def training_overlap(
    manifest: BundleManifest, evaluated: Sequence[AnnotatedImage]
) -> tuple[dict[tuple[str, str], int], list[tuple[str, str]]]:
    """Per (bundle component, mini-MIAS training source), how many ``evaluated`` films it
    trained on, and the pairs whose overlap is unknown (:func:`trained_films`), each logged as
    a warning."""
    trained: dict[tuple[str, str], int] = {}
    unknown: list[tuple[str, str]] = []
    folders: dict[Path, list[AnnotatedImage]] = {}  # the components mostly share one folder
    for component, data in training_data_of(manifest).items():
        for source, count in trained_films(data, evaluated, folders).items():
            if count is None:
                unknown.append((component, source))
            else:
                trained[(component, source)] = count
    for component, source in unknown:
        logger.warning(
            "cannot tell whether the %d films evaluated are in the %s's training data (%s): "
            "its path is not a readable mini-MIAS folder here (moved, or trained on another "
            "machine), and the evaluated folder's folds are another split when it holds other "
            "films; evaluate where the training folder is, or take the figures as possibly not "
            "held out",
            len(evaluated),
            component,
            source,
        )
    return trained, unknown


def patient_studies(
    records: Sequence[AnnotatedImage],
) -> Iterator[tuple[str, list[AnnotatedImage], Study]]:
    """Each patient's films as one study (pixels read now), in patient order, with the side,
    view and spacing the adapter knows."""
    by_patient: dict[str, list[AnnotatedImage]] = defaultdict(list)
    for record in records:
        by_patient[record.patient_id].append(record)
    for patient_id, films in sorted(by_patient.items()):
        images = [read_record(record) for record in films]
        yield (
            patient_id,
            films,
            Study(study_instance_uid=patient_id, patient_id=patient_id, images=images),
        )


def analyze_breasts(
    pipeline: Pipeline,
    root: Path,
    records: Sequence[AnnotatedImage],
    *,
    on_study: Callable[[str], None] | None = None,
) -> list[BreastRow]:
    """One row per film of ``records``, each patient's films analysed as one study."""
    labels = image_labels(root)
    rows: list[BreastRow] = []
    for patient_id, films, study in patient_studies(records):
        analysis = pipeline.analyze(study)
        for record in films:
            if record.laterality is None:  # the adapter always sets it; guard the type
                continue
            label = labels[record.image_id]
            rows.append(
                BreastRow(
                    image_id=record.image_id,
                    patient_id=patient_id,
                    laterality=record.laterality.value,
                    density=record.density or "unknown",
                    abnormal=label.abnormal,
                    malignant=label.malignant,
                    probability=analysis.risk.breast(record.laterality).malignancy_probability,
                )
            )
        if on_study is not None:
            on_study(patient_id)
    return rows


def evaluate_breasts(
    rows: Sequence[BreastRow], *, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, BreastTask]:
    """Both tasks' metrics over the breasts that have a probability."""
    scored = [row for row in rows if row.probability is not None]
    if not scored:
        raise ValueError("no breast has a probability: every film was rejected")
    scores = [float(row.probability or 0.0) for row in scored]
    patients = [row.patient_id for row in scored]
    densities = [row.density for row in scored]
    tasks: dict[str, BreastTask] = {}
    for name, attribute in TASKS.items():
        labels = [int(getattr(row, attribute)) for row in scored]
        tasks[name] = BreastTask(
            name=name,
            metrics=evaluate_study(scores, labels, patients, n_bootstrap=n_bootstrap, seed=seed),
            by_density=evaluate_subgroups(
                scores, labels, densities, patients, n_bootstrap=n_bootstrap, seed=seed
            ),
        )
    return tasks


def evaluate_mias_breasts(
    pipeline: Pipeline,
    root: Path,
    *,
    fold: int | None = None,
    folds: int = 5,
    fold_seed: int = 0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    on_study: Callable[[str], None] | None = None,
) -> MiasBreastEvaluation:
    """Analyse the films of ``fold`` (all when None) and compute both tasks."""
    records = select_fold(load_mias(root), fold=fold, folds=folds, fold_seed=fold_seed)
    if not records:
        raise ValueError(f"{root}: no mini-MIAS films selected")
    trained, _ = training_overlap(pipeline.detector.manifest, records)
    rows = analyze_breasts(pipeline, root, records, on_study=on_study)
    return MiasBreastEvaluation(
        rows=rows,
        tasks=evaluate_breasts(rows, n_bootstrap=n_bootstrap, seed=seed),
        trained=trained,
    )


def write_breast_reports(evaluation: MiasBreastEvaluation, out_dir: Path) -> list[Path]:
    """``breasts.csv`` (one row per film) and, per task, ``<task>.md`` and ``<task>.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_path = out_dir / "breasts.csv"
    with rows_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["image_id", "patient_id", "laterality", "density", "abnormal", "malignant", "p"]
        )
        for row in evaluation.rows:
            writer.writerow(
                [
                    row.image_id,
                    row.patient_id,
                    row.laterality,
                    row.density,
                    int(row.abnormal),
                    int(row.malignant),
                    "" if row.probability is None else f"{row.probability:.6f}",
                ]
            )
    written = [rows_path]
    for name, task in evaluation.tasks.items():
        title = f"mini-MIAS breast level: {name.replace('_', ' ')}"
        written.append(
            write_study_markdown(
                task.metrics, out_dir / f"{name}.md", title=title, subgroups=task.by_density
            )
        )
        written.append(
            write_study_csv(task.metrics, out_dir / f"{name}.csv", subgroups=task.by_density)
        )
    return written


__all__ = [
    "TASKS",
    "BreastRow",
    "BreastTask",
    "MiasBreastEvaluation",
    "analyze_breasts",
    "evaluate_breasts",
    "evaluate_mias_breasts",
    "select_fold",
    "trained_films",
    "training_data_of",
    "write_breast_reports",
]
