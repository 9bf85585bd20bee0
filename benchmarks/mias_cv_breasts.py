"""Breast-level AUC of the detector alone on mini-MIAS, pooled over cross-validation folds.

mini-MIAS holds one MLO film per breast, so each film is one breast. The breast's score is its
film's strongest lesion detection (``mammocad.eval.froc_pool.strongest_detection``: no
classifier, no risk model); labels come from ``Info.txt``. Two tasks, as ``mammocad eval
breasts`` reports them: abnormal vs normal and malignant vs the rest, each with a 95 %
interval from a bootstrap over patients (both breasts of a patient drawn together).

    .venv/bin/python benchmarks/mias_cv_breasts.py runs/mias-cv/fold{0,1,2,3,4}/eval \
        [--mias ../shared/data/mini-mias] [--bootstrap 2000]

Each argument is a folder ``mammocad eval detector --out`` wrote on mini-MIAS (it holds
``images.json``); ``benchmarks/mias_cv.sh`` writes one per fold. The four films whose
abnormality has no coordinates are not in those evaluations (the detector data leave them
out), so they are missing here too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mammocad.datasets.mias import load_mias
from mammocad.eval.froc_pool import IMAGES_FILE, load_froc_images, strongest_detection
from mammocad.eval.study_metrics import roc_auc_with_ci


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluations", type=Path, nargs="+", help="eval detector folders")
    parser.add_argument("--mias", type=Path, default=Path("../shared/data/mini-mias"))
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()

    records = {record.image_id: record for record in load_mias(args.mias)}
    scores: list[float] = []
    ids: list[str] = []
    for folder in args.evaluations:
        try:
            images = load_froc_images(folder / IMAGES_FILE)
        except ValueError as error:  # missing or not an evaluation: say which, no traceback
            raise SystemExit(str(error)) from error
        unknown = [i for i in images.image_ids if i not in records]
        if unknown:
            raise SystemExit(f"{folder}: {unknown[0]} is not a mini-MIAS film of {args.mias}")
        if set(ids).intersection(images.image_ids):
            raise SystemExit(f"{folder} repeats films of an earlier folder: give disjoint folds")
        folder_scores, _ = strongest_detection(images)
        scores.extend(folder_scores.tolist())
        ids.extend(images.image_ids)

    films = [records[i] for i in ids]
    patients = [film.patient_id for film in films]
    abnormal = np.array([bool(film.lesions) or not film.fully_localised for film in films])
    malignant = [film.malignant for film in films]
    print(
        f"{len(films)} breasts of {len(set(patients))} patients, {int(abnormal.sum())} abnormal, "
        f"{sum(m is True for m in malignant)} malignant; score: strongest detection"
    )
    tasks = {
        "abnormal vs normal": (np.asarray(scores), abnormal, patients),
        "malignant vs the rest": (
            np.asarray([s for s, m in zip(scores, malignant, strict=True) if m is not None]),
            np.array([m for m in malignant if m is not None], dtype=bool),
            [p for p, m in zip(patients, malignant, strict=True) if m is not None],
        ),
    }
    for name, (task_scores, labels, task_patients) in tasks.items():
        result = roc_auc_with_ci(task_scores, labels, task_patients, n_bootstrap=args.bootstrap)
        print(
            f"{name}: AUC {result.auc:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}] "
            f"({int(labels.sum())} of {len(labels)})"
        )


if __name__ == "__main__":
    main()
