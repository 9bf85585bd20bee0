"""What a cross-view agreement feature adds to the risk model: out-of-fold breast AUC of the
risk model with each variant in the ``two_view_contribution`` column against the model without
any cross-view feature (docs/fusion.md, section 6).

    .venv/bin/python benchmarks/agreement_variants.py runs/cache/<key> [<key2> ...]

Each ``<key>`` is a cache folder of ``mammocad train risk`` / ``train fusion``. A variant is the
maximum over CC/MLO candidate pairs with link cost ≤ a gate (:func:`mammocad.fuse.link.
pair_cost`, with or without the RoI appearance term) of a combination of the two contributions
``score · malignancy`` (:func:`mammocad.risk.aggregate.contribution`): geometric mean (the
shipped definition, gate 1.5, no appearance), minimum or product. Also printed: each variant's
AUC alone, the median ratio of the shipped feature to the breast's strongest single candidate
in malignant and other breasts, and the median number of candidates per breast.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from mammocad.eval.study_metrics import paired_auc_difference
from mammocad.fuse.data import BreastCase, load_cases
from mammocad.fuse.geometry import PlacedFinding
from mammocad.fuse.link import LinkParams, pair_cost
from mammocad.risk.aggregate import contribution
from mammocad.risk.apply import case_inputs
from mammocad.risk.features import CROSS_VIEW_FEATURES, FEATURES, columns, feature_matrix
from mammocad.risk.model import BoostParams, cross_fit

COMBINE: dict[str, Callable[[float, float], float]] = {
    "geometric mean": lambda a, b: math.sqrt(a * b),
    "minimum": min,
    "product": lambda a, b: a * b,
}


def agreement(
    case: BreastCase, combine: Callable[[float, float], float], gate: float, appearance: bool
) -> float:
    def plain(item: PlacedFinding) -> PlacedFinding:
        return item if appearance else replace(item, features=None)

    cc = [plain(f) for f in case.findings if f.is_cc]
    mlo = [plain(f) for f in case.findings if not f.is_cc]
    best = 0.0
    for a in cc:
        for b in mlo:
            value = combine(contribution(a.finding), contribution(b.finding))
            if value > best and pair_cost(a, b, LinkParams()) <= gate:
                best = value
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, nargs="+", help="cache folders (study-NNNNN.npz)")
    parser.add_argument("--bootstrap", type=int, default=500)
    args = parser.parse_args()
    files = sorted(path for folder in args.cache for path in folder.glob("study-*.npz"))
    cases = [case for path in files for case in load_cases(path) if case.label is not None]
    x = feature_matrix([case_inputs(case, fused_probability=None) for case in cases])
    y = np.array([case.label for case in cases], dtype=np.int64)
    groups = [case.patient_id for case in cases]
    print(f"{len(files)} studies, {len(cases)} breasts, {int(y.sum())} malignant")
    per_breast = np.median([len(case.findings) for case in cases])
    print(f"median candidates per breast (both views): {per_breast:.0f}")
    column = FEATURES.index("two_view_contribution")
    strongest = x[:, FEATURES.index("max_candidate_contribution")]
    ratio = x[:, column] / np.maximum(strongest, 1e-9)
    print(
        "median two_view_contribution / strongest candidate: "
        f"malignant {np.median(ratio[y == 1]):.2f}, other {np.median(ratio[y == 0]):.2f}"
    )
    base = x.copy()
    base[:, columns(sorted(CROSS_VIEW_FEATURES))] = 0.0
    reference = cross_fit(base, y, groups, params=BoostParams())
    print(f"without cross-view features: out-of-fold AUC {roc_auc_score(y, reference):.3f}")
    for name, combine in COMBINE.items():
        for gate in (1.5, 0.75, 0.4):
            for appearance in (False, True):
                values = np.array([agreement(c, combine, gate, appearance) for c in cases])
                with_it = base.copy()
                with_it[:, column] = values
                scores = cross_fit(with_it, y, groups, params=BoostParams())
                delta = paired_auc_difference(
                    scores, reference, y, groups, n_bootstrap=args.bootstrap
                )
                print(
                    f"{name:<15} gate {gate:<4} appearance {appearance!s:<5}: alone "
                    f"{roc_auc_score(y, values):.3f}, out-of-fold {roc_auc_score(y, scores):.3f}, "
                    f"Δ {delta[0]:+.3f} [{delta[1]:+.3f}, {delta[2]:+.3f}]",
                    flush=True,
                )


if __name__ == "__main__":
    main()
