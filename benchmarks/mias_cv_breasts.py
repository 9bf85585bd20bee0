"""Breast-level AUC of the detector alone on mini-MIAS, pooled over cross-validation folds.

mini-MIAS holds one MLO film per breast, so each film is one breast. The breast's score is its
film's strongest lesion detection (``mammocad.eval.froc_pool.strongest_detection``: no
classifier, no risk model) in place of the pipeline's breast probability; labels, tasks,
patient-bootstrap intervals and reports are ``mammocad eval breasts``'s
(:mod:`mammocad.eval.mias_breasts`): abnormal vs normal and malignant vs the rest.

    .venv/bin/python benchmarks/mias_cv_breasts.py runs/mias-cv/fold{0,1,2,3,4}/eval \
        [--mias ../shared/data/mini-mias] [--bootstrap 2000] [--out DIR]

Each argument is a folder ``mammocad eval detector --out`` wrote on mini-MIAS (it holds
``images.json``); ``benchmarks/mias_cv.sh`` writes one per fold. ``--out`` writes the reports
``eval breasts`` writes (breasts.csv; per task .md and .csv with density subgroups). The four
films whose abnormality has no coordinates are not in those evaluations (the detector data
leave them out), so they are missing here too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mammocad.datasets.mias import image_labels, load_mias
from mammocad.eval.froc_pool import IMAGES_FILE, load_froc_images, strongest_detection
from mammocad.eval.mias_breasts import (
    BreastRow,
    MiasBreastEvaluation,
    evaluate_breasts,
    write_breast_reports,
)


def breast_rows(folders: list[Path], mias: Path) -> list[BreastRow]:
    """One row per film of the evaluations, its probability the strongest detection."""
    records = {record.image_id: record for record in load_mias(mias)}
    labels = image_labels(mias)
    rows: list[BreastRow] = []
    for folder in folders:
        try:
            images = load_froc_images(folder / IMAGES_FILE)
        except ValueError as error:  # missing or not an evaluation: say which, no traceback
            raise SystemExit(str(error)) from error
        if {row.image_id for row in rows}.intersection(images.image_ids):
            raise SystemExit(f"{folder} repeats films of an earlier folder: give disjoint folds")
        scores, _ = strongest_detection(images)
        for image_id, score in zip(images.image_ids, scores.tolist(), strict=True):
            record = records.get(image_id)
            if record is None or record.laterality is None:
                raise SystemExit(f"{folder}: {image_id} is not a mini-MIAS film of {mias}")
            rows.append(
                BreastRow(
                    image_id=image_id,
                    patient_id=record.patient_id,
                    laterality=record.laterality.value,
                    density=record.density or "unknown",
                    abnormal=labels[image_id].abnormal,
                    malignant=labels[image_id].malignant,
                    probability=score,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluations", type=Path, nargs="+", help="eval detector folders")
    parser.add_argument("--mias", type=Path, default=Path("../shared/data/mini-mias"))
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="write the eval breasts reports here")
    args = parser.parse_args()

    rows = breast_rows(args.evaluations, args.mias)
    evaluation = MiasBreastEvaluation(
        rows=rows, tasks=evaluate_breasts(rows, n_bootstrap=args.bootstrap)
    )
    print(
        f"{len(rows)} breasts of {len({r.patient_id for r in rows})} patients, "
        f"{sum(r.abnormal for r in rows)} abnormal, {sum(r.malignant for r in rows)} malignant; "
        "score: strongest detection"
    )
    for name, task in evaluation.tasks.items():
        auc = task.metrics.auc
        print(
            f"{name.replace('_', ' ')}: AUC {auc.auc:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}] "
            f"({task.metrics.n_positive} of {task.metrics.n})"
        )
    if args.out is not None:
        write_breast_reports(evaluation, args.out)
        print(f"reports in {args.out}")


if __name__ == "__main__":
    main()
