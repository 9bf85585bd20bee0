"""Fused vs single-view risk model: breast- and study-level AUC on phantom studies where many
malignant signs show in one view only (docs/fusion.md, "Ablation: the risk model with and
without the other view").

    .venv/bin/python benchmarks/cross_view_ablation.py --model models/mammocad-detector \
        --train phantom:n=200,seed=5000,size=full --train phantom:n=200,seed=6000,size=full \
        --test phantom:n=100,seed=920000,size=full,malignant_rate=0.5,one_view_rate=0.5 \
        --cache runs/cache --json runs/cross_view_ablation.json

Both arms are the bundle's risk-model recipe (:class:`mammocad.risk.model.BoostParams`, the
monotone gradient-boosted trees) fitted on the same training breasts and scored on the same
test breasts; they differ only in what they may read:

* ``fused`` — every feature of :data:`mammocad.risk.features.FEATURES`, among them the two
  that compare the views of a breast (:data:`~mammocad.risk.features.CROSS_VIEW_FEATURES`:
  CC–MLO linked pairs and the two-view agreement of the candidates);
* ``single-view`` — the same with those two columns held constant, so no tree can split on
  them: each view's findings and candidates count on their own (max, sum, noisy-OR).

Cases come from the bundle's detector with candidates down to ``--candidate-score``, cached
under ``--cache`` exactly as ``mammocad train risk`` caches them (a cache written by it is
reused). AUCs carry 95% patient-cluster bootstrap intervals; Δ is fused minus single-view with
a paired interval over the same resamples (:func:`mammocad.eval.study_metrics.
paired_auc_difference`). The training breasts are reported out-of-fold (5 patient folds).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mammocad.commands.train_fusion import collection_pipeline
from mammocad.commands.train_risk import Rows, case_rows
from mammocad.datasets.spec import parse_spec, phantom_spec
from mammocad.eval.study_metrics import paired_auc_difference, roc_auc_with_ci
from mammocad.fuse.collect import collect_cases
from mammocad.risk.features import CROSS_VIEW_FEATURES, columns
from mammocad.risk.model import BoostParams, cross_fit, fit_boosted

FloatArray = np.ndarray


def single_view(x: FloatArray) -> FloatArray:
    """``x`` with the cross-view columns set to 0, a constant no tree splits on."""
    x = x.copy()
    x[:, columns(sorted(CROSS_VIEW_FEATURES))] = 0.0
    return x


def by_study(score: FloatArray, rows: Rows) -> tuple[FloatArray, np.ndarray, list[str]]:
    """Study scores (max over the study's breasts, as the pipeline's study probability),
    study labels (any breast malignant) and each study's patient."""
    order = list(dict.fromkeys(rows.studies))
    index = np.array([order.index(uid) for uid in rows.studies])
    study_score = np.zeros(len(order))
    np.maximum.at(study_score, index, score)
    labels = np.zeros(len(order), dtype=np.int64)
    np.maximum.at(labels, index, rows.labels)
    patient_of = dict(zip(rows.studies, rows.patients, strict=True))
    return study_score, labels, [patient_of[uid] for uid in order]


def compare(
    name: str, fused: FloatArray, single: FloatArray, rows: Rows, bootstrap: int
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    fused_study, study_labels, study_patients = by_study(fused, rows)
    single_study = by_study(single, rows)[0]
    levels = {
        "breast": (fused, single, rows.labels, rows.patients),
        "study": (fused_study, single_study, study_labels, study_patients),
    }
    for level, (a, b, labels, patients) in levels.items():
        n, positive = len(labels), int(np.sum(labels))
        print(f"\n{name}, {level} level: {n} {level}s, {positive} malignant")
        entry: dict[str, Any] = {"n": n, "n_malignant": positive}
        for arm, score in (("single-view", b), ("fused", a)):
            auc = roc_auc_with_ci(score, labels, patients, n_bootstrap=bootstrap)
            entry[arm] = {"auc": auc.auc, "ci_low": auc.ci_low, "ci_high": auc.ci_high}
            print(f"  {arm:<12} AUC {auc.auc:.3f}  [{auc.ci_low:.3f}, {auc.ci_high:.3f}]")
        delta = paired_auc_difference(a, b, labels, patients, n_bootstrap=bootstrap)
        entry["delta"] = dict(zip(("delta", "ci_low", "ci_high"), delta, strict=True))
        print(f"  Δ fused − single-view {delta[0]:+.3f}  [{delta[1]:+.3f}, {delta[2]:+.3f}]")
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

    def cases(texts: list[str]) -> Rows:
        specs = [phantom_spec(parse_spec(text)) for text in texts]
        found = [c for s in specs for c in collect_cases(pipeline, s, cache_dir=args.cache)]
        return case_rows(found, None)

    train, test = cases(args.train), cases([args.test])
    seconds = time.perf_counter() - start
    print(f"cases ready in {seconds:.0f} s (detector pass for studies not cached)")
    params = BoostParams()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "cross_view_features": sorted(CROSS_VIEW_FEATURES),
    }
    out_of_fold = {
        arm: cross_fit(x, train.labels, train.patients, params=params)
        for arm, x in (("fused", train.x), ("single", single_view(train.x)))
    }
    report["train_out_of_fold"] = compare(
        "training breasts, out-of-fold",
        out_of_fold["fused"],
        out_of_fold["single"],
        train,
        args.bootstrap,
    )
    fused_model = fit_boosted(train.x, train.labels, params=params)
    single_model = fit_boosted(single_view(train.x), train.labels, params=params)
    report["test"] = compare(
        f"test ({args.test})",
        fused_model.predict_rows(test.x),
        single_model.predict_rows(single_view(test.x)),
        test,
        args.bootstrap,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
