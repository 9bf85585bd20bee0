"""Out-of-fold breast AUC of the cross-view fusion module against the single-view aggregate,
on cached fusion cases, for a few training settings — how `train fusion`'s defaults were chosen
without touching a test set.

    python benchmarks/fusion_cross_fit.py CACHE_FOLDER [CACHE_FOLDER ...] \\
        --epochs 10 30 150 --learning-rate 3e-3 --folds 5

``CACHE_FOLDER`` is one key folder of a ``mammocad train fusion`` cache (``OUT/cache/<key>``,
one ``study-NNNNN.npz`` per study). Every breast is scored by a module trained without its
patient (:func:`mammocad.commands.train_risk.out_of_fold_fusion`, the function `train risk`
uses); ``single-view`` is the noisy-OR of the reported findings. AUCs carry 95 %
patient-cluster bootstrap intervals, ``Δ`` a paired one.
"""

from __future__ import annotations

import argparse
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch

from mammocad.commands.train_risk import out_of_fold_fusion
from mammocad.eval.study_metrics import paired_auc_difference, roc_auc_with_ci
from mammocad.fuse.data import BreastCase, load_cases
from mammocad.fuse.model import FusionConfig
from mammocad.fuse.train import TrainParams


def load_folders(folders: list[Path]) -> list[BreastCase]:
    cases = [
        case
        for folder in folders
        for path in sorted(folder.glob("study-*.npz"))
        for case in load_cases(path)
    ]
    if not cases:
        raise SystemExit(f"no study-*.npz under {', '.join(map(str, folders))}")
    return [case for case in cases if case.label is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="cache key folders")
    parser.add_argument("--epochs", type=int, nargs="+", default=[150])
    parser.add_argument("--learning-rate", type=float, nargs="+", default=[3e-3])
    parser.add_argument("--pooling", nargs="+", default=["noisy_or"])
    parser.add_argument("--model-dim", type=int, nargs="+", default=[64])
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    cases = load_folders(args.folders)
    labels = np.array([case.label for case in cases])
    patients = [case.patient_id for case in cases]
    dim = next(
        len(item.features) for case in cases for item in case.findings if item.features is not None
    )
    single = np.array([case.single_view_probability() for case in cases])
    auc = roc_auc_with_ci(single, labels, patients, n_bootstrap=args.bootstrap)
    print(f"{len(cases)} breasts ({int(labels.sum())} malignant), {len(set(patients))} patients")
    print(f"{'setting':<34} {'AUC':>6}  95% CI          Δ vs single-view")
    print(f"{'single-view (noisy-OR)':<34} {auc.auc:6.3f}  [{auc.ci_low:.3f}, {auc.ci_high:.3f}]")
    grid = [
        (pooling, width, rate, epochs)
        for pooling in args.pooling
        for width in args.model_dim
        for rate in args.learning_rate
        for epochs in args.epochs
    ]
    for pooling, width, rate, epochs in grid:
        start = time.perf_counter()
        config = FusionConfig(feature_dim=dim, pooling=pooling, model_dim=width)
        params = TrainParams(epochs=epochs, learning_rate=rate, weight_decay=args.weight_decay)
        # refine_cases rewrites malignancies in place: every setting gets fresh cases
        fused = np.array(out_of_fold_fusion(deepcopy(cases), config, params, folds=args.folds))
        auc = roc_auc_with_ci(fused, labels, patients, n_bootstrap=args.bootstrap)
        delta = paired_auc_difference(fused, single, labels, patients, n_bootstrap=args.bootstrap)
        name = f"{pooling}, d {width}, lr {rate:g}, {epochs} ep"
        print(
            f"{name:<34} {auc.auc:6.3f}  [{auc.ci_low:.3f}, {auc.ci_high:.3f}]  "
            f"{delta[0]:+.3f} [{delta[1]:+.3f}, {delta[2]:+.3f}]  "
            f"({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
