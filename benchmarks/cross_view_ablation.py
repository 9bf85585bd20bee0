"""Fused vs single-view risk model: breast- and study-level AUC on phantom studies where many
malignant signs show in one view only (docs/fusion.md, section 6).

    .venv/bin/python benchmarks/cross_view_ablation.py --model models/mammocad-detector \
        --train phantom:n=200,seed=5000,size=full --train phantom:n=200,seed=6000,size=full \
        --test phantom:n=100,seed=920000,size=full,malignant_rate=0.5,one_view_rate=0.5 \
        --cache runs/cache --json runs/cross_view_ablation.json

Every arm is the bundle's risk-model recipe (:class:`mammocad.risk.model.BoostParams`, the
monotone gradient-boosted trees) fitted on the same training breasts and scored on the same
test breasts; they differ only in what they may read:

* ``CC only`` / ``MLO only`` — one image per breast, as a single-image classifier sees it: the
  breast's candidates and findings of that projection alone;
* ``each view alone`` — both images, but each view's findings and candidates count on their
  own (max, sum, noisy-OR over the breast): every feature except the two that compare the
  views (:data:`~mammocad.risk.features.CROSS_VIEW_FEATURES`), which are held at a constant
  no tree splits on;
* ``fused`` — every feature of :data:`mammocad.risk.features.FEATURES`, the CC–MLO linked
  pairs and the two-view agreement of the candidates included.

Cases come from the bundle's detector with candidates down to ``--candidate-score``, cached
under ``--cache`` exactly as ``mammocad train risk`` caches them (a cache written by it is
reused). AUCs carry 95% patient-cluster bootstrap intervals; each Δ is ``fused`` minus another
arm with a paired interval over the same resamples
(:func:`mammocad.eval.study_metrics.paired_auc_difference`). The training breasts are reported
out-of-fold (5 patient folds), the test breasts by the models fitted on all training breasts.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mammocad.commands.train_fusion import collection_pipeline
from mammocad.commands.train_risk import Rows, case_rows, study_raw_scores
from mammocad.datasets.spec import parse_spec, phantom_spec
from mammocad.eval.study_metrics import paired_auc_difference, roc_auc_with_ci
from mammocad.fuse.collect import collect_cases
from mammocad.fuse.data import BreastCase
from mammocad.fuse.geometry import CC_LIKE, MLO_LIKE
from mammocad.risk.features import CROSS_VIEW_FEATURES, columns
from mammocad.risk.model import BoostParams, cross_fit, fit_boosted
from mammocad.structures import ViewPosition

FloatArray = np.ndarray
FUSED = "fused"


def only(views: frozenset[ViewPosition]) -> Callable[[BreastCase], BreastCase]:
    """The breast as seen on the images of ``views`` only."""

    def seen(case: BreastCase) -> BreastCase:
        kept = [i for i, view in enumerate(case.processed_views) if view in views]
        return replace(
            case,
            findings=tuple(f for f in case.findings if f.view in views),
            processed_views=tuple(case.processed_views[i] for i in kept),
            quality=tuple(case.quality[i] for i in kept) if case.quality else (),
        )

    return seen


def without_cross_view(x: FloatArray) -> FloatArray:
    """``x`` with the cross-view columns set to 0, a constant no tree splits on."""
    x = x.copy()
    x[:, columns(sorted(CROSS_VIEW_FEATURES))] = 0.0
    return x


def arm_rows(cases: Sequence[BreastCase]) -> dict[str, Rows]:
    """Feature rows of every arm (same breasts, same order)."""
    both = case_rows(cases, None)
    return {
        "CC only": case_rows([only(CC_LIKE)(c) for c in cases], None),
        "MLO only": case_rows([only(MLO_LIKE)(c) for c in cases], None),
        "each view alone": replace(both, x=without_cross_view(both.x)),
        FUSED: both,
    }


def by_study(score: FloatArray, rows: Rows) -> tuple[FloatArray, np.ndarray, list[str]]:
    """Study scores (max over the study's breasts, as the pipeline's study probability),
    study labels (any breast malignant) and each study's patient."""
    study_score, labels = study_raw_scores(score, rows)
    patient_of = dict(zip(rows.studies, rows.patients, strict=True))
    return study_score, labels, [patient_of[uid] for uid in dict.fromkeys(rows.studies)]


def compare(
    title: str, scores: dict[str, FloatArray], rows: Rows, bootstrap: int
) -> dict[str, Any]:
    """AUC of every arm and Δ fused − arm, at breast and at study level."""
    report: dict[str, Any] = {}
    for level in ("breast", "study"):
        if level == "breast":
            by_level = scores
            labels, patients = rows.labels, rows.patients
        else:
            by_level = {arm: by_study(score, rows)[0] for arm, score in scores.items()}
            _, labels, patients = by_study(scores[FUSED], rows)
        n, positive = len(labels), int(np.sum(labels))
        print(f"\n{title}, {level} level: {n} rows, {positive} malignant")
        entry: dict[str, Any] = {"n": n, "n_malignant": positive}
        for arm, score in by_level.items():
            auc = roc_auc_with_ci(score, labels, patients, n_bootstrap=bootstrap)
            entry[arm] = {"auc": auc.auc, "ci_low": auc.ci_low, "ci_high": auc.ci_high}
            print(f"  {arm:<16} AUC {auc.auc:.3f}  [{auc.ci_low:.3f}, {auc.ci_high:.3f}]")
        for arm, score in by_level.items():
            if arm == FUSED:
                continue
            delta = paired_auc_difference(
                by_level[FUSED], score, labels, patients, n_bootstrap=bootstrap
            )
            entry[f"fused − {arm}"] = dict(zip(("delta", "ci_low", "ci_high"), delta, strict=True))
            print(f"  Δ fused − {arm:<16} {delta[0]:+.3f}  [{delta[1]:+.3f}, {delta[2]:+.3f}]")
        report[level] = entry
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/mammocad-detector"))
    parser.add_argument("--train", action="append", required=True, help="phantom spec")
    parser.add_argument("--test", required=True, help="phantom spec (one_view_rate > 0)")
    parser.add_argument("--candidate-score", type=float, default=0.01)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    pipeline = collection_pipeline(
        args.model, candidate_score=args.candidate_score, device="cpu", threads=args.threads
    )
    start = time.perf_counter()

    def cases(texts: list[str]) -> list[BreastCase]:
        specs = [phantom_spec(parse_spec(text)) for text in texts]
        found = [c for s in specs for c in collect_cases(pipeline, s, cache_dir=args.cache)]
        return [case for case in found if case.label is not None]

    train, test = arm_rows(cases(args.train)), arm_rows(cases([args.test]))
    print(f"cases ready in {time.perf_counter() - start:.0f} s (detector pass where not cached)")
    params = BoostParams()
    out_of_fold, held_out = {}, {}
    for arm, rows in train.items():
        out_of_fold[arm] = cross_fit(rows.x, rows.labels, rows.patients, params=params)
        model = fit_boosted(rows.x, rows.labels, params=params)
        held_out[arm] = model.predict_rows(test[arm].x)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "cross_view_features": sorted(CROSS_VIEW_FEATURES),
        "train_out_of_fold": compare(
            "training breasts, out-of-fold", out_of_fold, train[FUSED], args.bootstrap
        ),
        "test": compare(f"test ({args.test})", held_out, test[FUSED], args.bootstrap),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
