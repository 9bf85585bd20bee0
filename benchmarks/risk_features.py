"""What each breast-level signal of a fusion/risk case cache is worth: breast AUC of every risk
feature, of the largest lesion-classifier malignancy among all candidates, the number of
reported findings per breast, and the risk model's out-of-fold AUC with and without the
monotone constraint (docs/risk.md, docs/malignancy.md "Hard negatives").

    .venv/bin/python benchmarks/risk_features.py runs/fusion040/cache/<key>

``<key>`` is one folder of ``mammocad train fusion``'s (or ``train risk``'s) cache: one
bundle, candidate score and phantom specification.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score as roc_auc

from mammocad.fuse.data import load_cases
from mammocad.risk.apply import case_inputs
from mammocad.risk.features import FEATURES, feature_matrix
from mammocad.risk.model import BoostParams, cross_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, help="one cache folder (study-NNNNN.npz files)")
    args = parser.parse_args()
    files = sorted(args.cache.glob("study-*.npz"))
    cases = [case for path in files for case in load_cases(path) if case.label is not None]
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


if __name__ == "__main__":
    main()
