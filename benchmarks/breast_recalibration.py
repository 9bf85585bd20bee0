"""Would a breast map refitted on real films spread their probabilities better than the
shipped one (fitted on phantom breasts)? Reads the ``breasts.csv`` of ``mammocad eval breasts``
(one unrounded breast probability per film), halves the patients at random, fits
``fit_calibrator`` on one half and applies it to the other, both ways, and prints the AUC of
the shipped probabilities and of the cross-fitted ones, unrounded and at the 2 decimals users
see (docs/study-metrics.md, "Rounding on real films").

    mammocad eval breasts --model models/mammocad-detector --mias ../shared/data/mini-mias \
        --out runs/breasts-all
    .venv/bin/python benchmarks/breast_recalibration.py runs/breasts-all/breasts.csv

The shipped map is strictly increasing, so refitting on its outputs equals refitting on the
raw scores for isotonic and nearly so for Platt.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from mammocad.eval.study_metrics import roc_auc
from mammocad.risk.aggregate import OUTPUT_DECIMALS
from mammocad.risk.calibration import CalibrationError, fit_calibrator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("breasts", type=Path, help="breasts.csv of `mammocad eval breasts`")
    parser.add_argument("--halvings", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with args.breasts.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    rows = [row for row in read if row["p"]]  # a rejected film has no probability
    if len(rows) < len(read):
        print(f"{len(read) - len(rows)} rejected breasts left out (no probability)")
    shipped = np.array([float(row["p"]) for row in rows])
    patients = np.array([row["patient_id"] for row in rows])
    rng = np.random.default_rng(args.seed)
    for task in ("abnormal", "malignant"):
        labels = np.array([int(row[task]) for row in rows])
        unrounded, shown, methods, refused = [], [], set(), 0
        for _ in range(args.halvings):
            names = np.unique(patients)
            rng.shuffle(names)
            first = np.isin(patients, names[: len(names) // 2])
            refitted = np.empty_like(shipped)
            try:
                for fit_on in (first, ~first):
                    calibrator = fit_calibrator(shipped[fit_on], labels[fit_on])
                    refitted[~fit_on] = calibrator.apply(shipped[~fit_on])
                    methods.add(calibrator.method.value)
            except CalibrationError:  # a small half that one class fills or that ranks inverted
                refused += 1
                continue
            unrounded.append(roc_auc(refitted, labels))
            shown.append(roc_auc(np.round(refitted, OUTPUT_DECIMALS), labels))
        shipped_shown = roc_auc(np.round(shipped, OUTPUT_DECIMALS), labels)
        if not unrounded:
            print(f"{task}: every halving refused by fit_calibrator (too few breasts?)")
            continue
        print(
            f"{task}: {len(rows)} breasts, {labels.sum()} positive; shipped AUC "
            f"{roc_auc(shipped, labels):.3f}, rounded {shipped_shown:.3f}; "
            f"refitted on the other half ({'/'.join(sorted(methods))}, mean of "
            f"{len(unrounded)}) {np.mean(unrounded):.3f}, rounded {np.mean(shown):.3f}"
            + (f"; {refused} halvings refused by fit_calibrator, left out" if refused else "")
        )


if __name__ == "__main__":
    main()
