"""Does comparing a breast with the woman's other breast help the risk model? (docs/risk.md)

Radiologists read the two breasts side by side: tissue that looks alike on both sides is
usually normal, a finding on one side only is not. The risk model reads each breast alone.
This script adds two columns per breast — the other breast's ``max_candidate_contribution``
and the excess of this breast's over it (NaN without the other breast) — and measures, on the
phantom risk cache (out of fold, breast and study level, the study scored by its higher
breast) and on the 242 mini-MIAS films (fitted on all phantom breasts, as
``risk_real_films.py`` does), each column alone and the shipped tree settings with and without
them; first, how closely the two breasts' strongest candidates follow each other on the
normal films. The new columns are left unconstrained (the shipped trees are monotone in
``EVIDENCE``, a fixed feature set).

    .venv/bin/python benchmarks/risk_contralateral.py runs/cache/<key> [<key2> ...] \\
        --model models/mammocad-detector --cases runs/mias-cases [--bootstrap 1000]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from risk_real_films import arguments, load_breasts, real_auc
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score as roc_auc
from sklearn.model_selection import GroupKFold

from mammocad.fuse.data import BreastCase
from mammocad.risk.features import FEATURES
from mammocad.risk.model import BoostParams, fit_boosted

STRONGEST = FEATURES.index("max_candidate_contribution")
CONTRALATERAL = ("other_breast_contribution", "contribution_excess")
#: the shipped 0.5.1 trees' columns: two_view_contribution postdates them
SHIPPED = tuple(name for name in FEATURES if name != "two_view_contribution")


def contralateral(cases: Sequence[BreastCase], x: np.ndarray) -> np.ndarray:
    """``float[N, 2]``: the other breast's strongest candidate contribution and this breast's
    excess over it; NaN where the study has no image of the other breast."""
    by_study: dict[str, list[int]] = defaultdict(list)
    for row, case in enumerate(cases):
        by_study[case.study_instance_uid].append(row)
    out = np.full((len(cases), 2), np.nan)
    for row, case in enumerate(cases):
        other = [
            r
            for r in by_study[case.study_instance_uid]
            if cases[r].laterality is not case.laterality
        ]
        if other:
            value = x[other[0], STRONGEST]
            out[row] = value, x[row, STRONGEST] - value
    return out


def design(x: np.ndarray, extra: np.ndarray | None) -> tuple[np.ndarray, tuple[str, ...]]:
    base = x[:, [FEATURES.index(name) for name in SHIPPED]]
    if extra is None:
        return base, SHIPPED
    return np.hstack([base, extra]), SHIPPED + CONTRALATERAL


def out_of_fold(
    x: np.ndarray, y: np.ndarray, patients: list[str], names: tuple[str, ...]
) -> np.ndarray:
    scores = np.zeros(len(y))
    for train, held in GroupKFold(n_splits=5).split(x, y, patients):
        model = fit_boosted(x[train], y[train], params=BoostParams(), features=names)
        scores[held] = model.predict(x[held])
    return scores


def study_auc(cases: Sequence[BreastCase], scores: np.ndarray) -> float:
    studies: dict[str, tuple[int, float]] = {}
    for case, score in zip(cases, scores, strict=True):
        label, best = studies.get(case.study_instance_uid, (0, -np.inf))
        studies[case.study_instance_uid] = max(label, int(case.label or 0)), max(best, score)
    labels, best = zip(*studies.values(), strict=True)
    return float(roc_auc(labels, best))


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    breasts = load_breasts(args)
    phantom, y, x, rows, real = breasts.phantom, breasts.y, breasts.x, breasts.rows, breasts.real
    side = contralateral(phantom, x)
    real_side = contralateral(breasts.films, real)
    abnormal = np.array([row.abnormal for row in rows])
    malignant = np.array([row.malignant for row in rows])
    print(
        f"phantom: {len(phantom)} breasts ({int(y.sum())} malignant), "
        f"{int(np.isfinite(side[:, 0]).sum())} with the other breast; mini-MIAS: {len(rows)} films"
    )
    normal = ~abnormal
    related = spearmanr(real[normal, STRONGEST], real_side[normal, 0]).statistic
    print(
        f"mini-MIAS normal films: Spearman {related:.2f} between a film's "
        "max_candidate_contribution and the other breast's"
    )
    print("each column alone: phantom breast AUC | mini-MIAS abnormal / malignant")
    columns = {"max_candidate_contribution": (x[:, STRONGEST], real[:, STRONGEST])}
    columns |= {name: (side[:, k], real_side[:, k]) for k, name in enumerate(CONTRALATERAL)}
    for name, (ph, film) in columns.items():
        ph, film = np.nan_to_num(ph), np.nan_to_num(film)
        print(
            f"  {name:28s} {roc_auc(y, ph):.3f} | "
            f"{roc_auc(abnormal, film):.3f} / {roc_auc(malignant, film):.3f}"
        )
    for label, extra, real_extra in (
        ("shipped features", None, None),
        ("+ contralateral", side, real_side),
    ):
        train, names = design(x, extra)
        test, _ = design(real, real_extra)
        held = out_of_fold(train, y, breasts.patients, names)
        model = fit_boosted(train, y, params=BoostParams(), features=names)
        print(
            f"{label:18s} phantom out-of-fold breast {roc_auc(y, held):.3f}, study "
            f"{study_auc(phantom, held):.3f}"
        )
        print(f"{'':18s} mini-MIAS {real_auc(rows, model.predict(test), args.bootstrap)}")


if __name__ == "__main__":
    main()
