"""Two bundles' breast-level AUCs on the same mini-MIAS breasts, with paired intervals.

    python benchmarks/breasts_paired.py runs/m053-all/breasts.csv runs/m052-all/breasts.csv \
        [--only runs/m053-f0/breasts.csv]

Each file is the ``breasts.csv`` of ``mammocad eval breasts`` (one row per breast: image_id,
patient_id, abnormal, malignant, p). Prints, for abnormal vs normal and malignant vs the rest,
both AUCs and A − B with a 95 % interval over shared patient-cluster resamples
(:func:`mammocad.eval.study_metrics.paired_auc_difference`); ``--only`` keeps the breasts listed
in another ``breasts.csv`` (e.g. one fold's), and the malignant breasts' ranks in both files
are listed so that a change can be traced to the breasts that made it.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from mammocad.eval.study_metrics import paired_auc_difference, roc_auc

LABELS = ("abnormal", "malignant")


def read_breasts(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["image_id"]: row for row in csv.DictReader(handle)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="breasts.csv of bundle A")
    parser.add_argument("b", type=Path, help="breasts.csv of bundle B (the reference)")
    parser.add_argument("--only", type=Path, help="keep the breasts this breasts.csv lists")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    a, b = read_breasts(args.a), read_breasts(args.b)
    if set(a) != set(b):
        parser.error(f"the two files list other breasts ({len(set(a) ^ set(b))} differ)")
    ids = sorted(a if args.only is None else set(a) & set(read_breasts(args.only)))
    score_a = np.array([float(a[i]["p"]) for i in ids])
    score_b = np.array([float(b[i]["p"]) for i in ids])
    patients = [a[i]["patient_id"] for i in ids]
    print(f"{len(ids)} breasts, {len(set(patients))} women")
    for name in LABELS:
        labels = np.array([int(a[i][name]) for i in ids])
        delta, low, high = paired_auc_difference(
            score_a, score_b, labels, patients, n_bootstrap=args.bootstrap
        )
        print(
            f"{name}: {int(labels.sum())} positive; AUC A {roc_auc(score_a, labels):.3f}, "
            f"B {roc_auc(score_b, labels):.3f}; A - B {delta:+.3f} [{low:+.3f}, {high:+.3f}]"
        )
    # ranks from the top (1 = most suspicious), ties at their average
    rank_a, rank_b = len(ids) + 1 - rankdata(score_a), len(ids) + 1 - rankdata(score_b)
    for k, image_id in enumerate(ids):
        if a[image_id]["malignant"] == "1":
            print(
                f"  malignant {image_id}: p {score_b[k]:.3f} -> {score_a[k]:.3f}, "
                f"rank {rank_b[k]:.1f} -> {rank_a[k]:.1f} of {len(ids)} (B -> A)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
