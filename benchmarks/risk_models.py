"""Which risk model to ship: out-of-fold breast and study AUC of several gradient-boosting
settings and logistic models on the same cached cases, each paired with the current defaults
(bootstrap over patients), and how many distinct scores each gives (ties cost AUC once the
probabilities are rounded). docs/risk.md "Smoother model" has the figures.

    .venv/bin/python benchmarks/risk_models.py runs/cache/<key> [<key2> ...] \
        [--held-out runs/cache/<key3>] [--bootstrap 1000]

Each ``<key>`` is one folder of ``mammocad train fusion``'s (or ``train risk``'s) cache.
``--held-out``: also fit each setting on all the given folders and score that folder's breasts
and studies (the study score is the larger of its two breasts', as in
:func:`mammocad.risk.aggregate.aggregate`).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from risk_features import labelled_cases
from sklearn.metrics import roc_auc_score as roc_auc

from mammocad.eval.study_metrics import paired_auc_difference
from mammocad.fuse.data import BreastCase
from mammocad.risk.apply import case_inputs
from mammocad.risk.features import FEATURES, feature_matrix
from mammocad.risk.model import BoostParams, LogisticParams, ModelParams, cross_fit, fit_model

CANDIDATE = ("max_candidate_contribution",)
EVIDENCE = (*CANDIDATE, "candidate_probability", "max_contribution", "max_malignancy")
SETTINGS: dict[str, ModelParams] = {
    "defaults": BoostParams(),
    "20x depth 3, leaf 20": BoostParams(min_samples_leaf=20),
    "100x depth 2, lr 0.05": BoostParams(max_iter=100, max_depth=2, learning_rate=0.05),
    "200x depth 2, lr 0.03, leaf 20": BoostParams(
        max_iter=200, max_depth=2, learning_rate=0.03, min_samples_leaf=20
    ),
    "300x stumps, lr 0.05": BoostParams(max_iter=300, max_depth=1, learning_rate=0.05),
    "logistic: max candidate": LogisticParams(features=CANDIDATE),
    "logistic: 4 evidence features": LogisticParams(features=EVIDENCE),
    "logistic: 4 evidence, l2 10": LogisticParams(features=EVIDENCE, l2=10.0),
}
SINGLE = "max_candidate_contribution"


def study_scores(
    cases: list[BreastCase], scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per patient (a phantom study): the larger breast score and whether either breast is
    malignant."""
    by_patient: dict[str, list[int]] = defaultdict(list)
    for row, case in enumerate(cases):
        by_patient[case.patient_id].append(row)
    patients = sorted(by_patient)
    best = np.array([max(scores[r] for r in by_patient[p]) for p in patients])
    labels = np.array([max(int(cases[r].label or 0) for r in by_patient[p]) for p in patients])
    return best, labels, patients


def report(
    name: str,
    cases: list[BreastCase],
    scores: np.ndarray,
    reference: np.ndarray,
    n_boot: int,
) -> None:
    labels = np.array([case.label for case in cases], dtype=np.int64)
    patients = np.array([case.patient_id for case in cases])
    delta, low, high = paired_auc_difference(
        scores, reference, labels, list(patients), n_bootstrap=n_boot
    )
    study, study_labels, ids = study_scores(cases, scores)
    study_ref, _, _ = study_scores(cases, reference)
    s_delta, s_low, s_high = paired_auc_difference(
        study, study_ref, study_labels, ids, n_bootstrap=n_boot
    )
    print(
        f"  {name:32s} breast {roc_auc(labels, scores):.3f} (Δ {delta:+.3f} [{low:+.3f}, "
        f"{high:+.3f}])  study {roc_auc(study_labels, study):.3f} (Δ {s_delta:+.3f} "
        f"[{s_low:+.3f}, {s_high:+.3f}])  distinct {len(np.unique(np.round(scores, 6)))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, nargs="+", help="cache folders (study-NNNNN.npz)")
    parser.add_argument("--held-out", type=Path, default=None, help="a cache folder to test on")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    cases, _ = labelled_cases(args.cache)
    labels = np.array([case.label for case in cases], dtype=np.int64)
    patients = [case.patient_id for case in cases]
    x = feature_matrix([case_inputs(case, fused_probability=None) for case in cases])
    print(f"{len(set(patients))} studies, {len(cases)} breasts, {int(labels.sum())} malignant")
    print("out-of-fold (5 patient folds), Δ against the defaults; a fitted model's folds pool")
    print("five fits, so a one-feature model ranks a little worse there than the feature itself:")
    out_of_fold = {name: cross_fit(x, labels, patients, params=p) for name, p in SETTINGS.items()}
    out_of_fold[SINGLE] = x[:, FEATURES.index(SINGLE)]
    for name, scores in out_of_fold.items():
        report(name, cases, scores, out_of_fold["defaults"], args.bootstrap)
    if args.held_out is None:
        return
    test, _ = labelled_cases([args.held_out])
    test_x = feature_matrix([case_inputs(case, fused_probability=None) for case in test])
    print(f"held out: {len(test)} breasts of {args.held_out}, Δ against the defaults:")
    held = {}
    for name, params in SETTINGS.items():
        model = fit_model(x, labels, params=params)
        held[name] = model.predict_rows(test_x)
    held[SINGLE] = test_x[:, FEATURES.index(SINGLE)]
    for name, scores in held.items():
        report(name, test, scores, held["defaults"], args.bootstrap)


if __name__ == "__main__":
    main()
