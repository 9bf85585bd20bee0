"""What each breast-level signal of a fusion/risk case cache is worth: breast AUC of every risk
feature, of the largest lesion-classifier malignancy among all candidates, the number of
reported findings per breast, and the risk model's out-of-fold AUC with and without the
monotone constraint and with and without the candidate features (docs/risk.md,
docs/malignancy.md "Hard negatives").

    .venv/bin/python benchmarks/risk_features.py runs/fusion040/cache/<key> [<key2> ...] \
        [--held-out runs/.../cache/<key3>]

Each ``<key>`` is one folder of ``mammocad train fusion``'s (or ``train risk``'s) cache: one
bundle, candidate score and phantom specification. ``--held-out``: also fit on the given
folders and report the breast AUC on that one's breasts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score as roc_auc

from mammocad.fuse.data import BreastCase, load_cases
from mammocad.risk.apply import case_inputs
from mammocad.risk.features import FEATURES, feature_matrix
from mammocad.risk.model import BoostParams, cross_fit, fit_boosted

CANDIDATE_FEATURES = [
    FEATURES.index("max_candidate_contribution"),
    FEATURES.index("candidate_probability"),
]


def labelled_cases(folders: list[Path]) -> tuple[list[BreastCase], int]:
    files = sorted(path for folder in folders for path in folder.glob("study-*.npz"))
    cases = [case for path in files for case in load_cases(path) if case.label is not None]
    return cases, len(files)


def without_candidates(x: np.ndarray) -> np.ndarray:
    """The candidate columns set to a constant, which no tree splits on: the 0.4.0 features."""
    x = x.copy()
    x[:, CANDIDATE_FEATURES] = 0.0
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, nargs="+", help="cache folders (study-NNNNN.npz)")
    parser.add_argument("--held-out", type=Path, default=None, help="a cache folder to test on")
    args = parser.parse_args()
    cases, n_files = labelled_cases(args.cache)
    files = range(n_files)
    labels = np.array([case.label for case in cases], dtype=np.int64)
    print(f"{len(files)} studies, {len(cases)} breasts, {int(labels.sum())} malignant")
    benign = [case for case in cases if case.label == 0]
    reported = np.mean([sum(f.reported for f in case.findings) for case in benign])
    print(f"reported findings per breast without a malignant lesion: {reported:.2f}")
    largest = [
        max((f.finding.malignancy_probability for f in c.findings), default=0.0) for c in cases
    ]
    print(f"{'max malignancy over all candidates':36s} AUC {roc_auc(labels, largest):.3f}")
    x = feature_matrix([case_inputs(case, fused_probability=None) for case in cases])
    for column, name in enumerate(FEATURES):
        print(f"{name:36s} AUC {roc_auc(labels, np.nan_to_num(x[:, column])):.3f}")
    patients = [case.patient_id for case in cases]
    for monotonic in (True, False):
        scores = cross_fit(x, labels, patients, params=BoostParams(monotonic=monotonic))
        print(f"risk model out-of-fold, monotonic={monotonic}: AUC {roc_auc(labels, scores):.3f}")
    scores = cross_fit(without_candidates(x), labels, patients)
    print(
        f"risk model out-of-fold without the candidate features: AUC {roc_auc(labels, scores):.3f}"
    )
    if args.held_out is None:
        return
    test, _ = labelled_cases([args.held_out])
    test_labels = np.array([case.label for case in test], dtype=np.int64)
    test_x = feature_matrix([case_inputs(case, fused_probability=None) for case in test])
    for name, strip in (("with", False), ("without", True)):
        fitted = fit_boosted(without_candidates(x) if strip else x, labels)
        score = fitted.predict(without_candidates(test_x) if strip else test_x)
        print(
            f"fitted here, {name} the candidate features, on {args.held_out.name} "
            f"({len(test)} breasts): AUC {roc_auc(test_labels, score):.3f}"
        )


if __name__ == "__main__":
    main()
