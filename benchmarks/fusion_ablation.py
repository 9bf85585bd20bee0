"""Cross-view fusion ablation: breast-level AUC of fused vs single-view probabilities on
phantom studies where many lesions show in one view only.

    nice -n 10 python benchmarks/fusion_ablation.py --model /tmp/mammocad-fusion/bundle \
        --n 24 --seed 910000 --one-view-rate 0.5 --cache /tmp/mammocad-fusion/cache

``--model`` is a bundle with fusion weights (``mammocad train fusion``); the studies must not
overlap its training seeds. Each study is rendered at full size and run through the bundle's
pipeline once (cached under ``--cache``, shared with ``mammocad train fusion``, so a
validation set of the same spec costs nothing here). Rows:

* ``single-view`` — today's aggregation: noisy-OR of ``score · malignancy`` over the findings
  each view reports on its own (:func:`mammocad.risk.aggregate.noisy_or`);
* ``single-view (candidates)`` — the same over every fusion candidate (the fused model's
  inputs), so the comparison does not hinge on the finding threshold;
* ``fused`` — the cross-view module's breast probability.

AUCs carry 95% patient-cluster bootstrap intervals (:mod:`mammocad.eval.study_metrics`);
``Δ`` is fused minus single-view with a paired bootstrap interval over the same resamples.
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
from mammocad.datasets.phantoms import PhantomSpec
from mammocad.eval.study_metrics import paired_auc_difference, roc_auc_with_ci
from mammocad.fuse import breast_probabilities, load_fusion
from mammocad.fuse.collect import collect_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle with fusion weights")
    parser.add_argument("--n", type=int, default=24, help="phantom studies")
    parser.add_argument("--seed", type=int, default=910000)
    parser.add_argument("--one-view-rate", type=float, default=0.5)
    parser.add_argument("--malignant-rate", type=float, default=0.5)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    fusion = load_fusion(args.model)
    if fusion is None:
        parser.error(f"{args.model} has no fusion weights: run `mammocad train fusion` first")
    pipeline = collection_pipeline(
        args.model, candidate_score=fusion.candidate_score, device="cpu", threads=args.threads
    )
    spec = PhantomSpec(
        n_studies=args.n,
        seed=args.seed,
        size="full",
        malignant_rate=args.malignant_rate,
        one_view_rate=args.one_view_rate,
    )
    start = time.perf_counter()
    cases = collect_cases(pipeline, spec, cache_dir=args.cache)
    seconds = time.perf_counter() - start
    labels = np.array([case.label for case in cases])
    patients = [case.patient_id for case in cases]
    scores = {
        "single-view": np.array([case.single_view_probability() for case in cases]),
        "single-view (candidates)": np.array(
            [case.single_view_probability(candidates=True) for case in cases]
        ),
        "fused": breast_probabilities(fusion.model, cases),
    }
    rows: dict[str, Any] = {}
    print(
        f"{len(cases)} breasts ({int(labels.sum())} malignant) from {args.n} studies, "
        f"one_view_rate={args.one_view_rate}, seeds from {args.seed}; {seconds:.0f} s"
    )
    print(f"{'method':<26} {'AUC':>6}  95% CI")
    for name, value in scores.items():
        auc = roc_auc_with_ci(value, labels, patients, n_bootstrap=args.bootstrap)
        rows[name] = {"auc": auc.auc, "ci_low": auc.ci_low, "ci_high": auc.ci_high}
        print(f"{name:<26} {auc.auc:6.3f}  [{auc.ci_low:.3f}, {auc.ci_high:.3f}]")
    for base in ("single-view", "single-view (candidates)"):
        diff = paired_auc_difference(
            scores["fused"], scores[base], labels, patients, n_bootstrap=args.bootstrap
        )
        rows[f"fused − {base}"] = dict(zip(("delta", "ci_low", "ci_high"), diff, strict=True))
        print(f"{'Δ fused − ' + base:<26} {diff[0]:+6.3f}  [{diff[1]:+.3f}, {diff[2]:+.3f}]")
    if args.json:
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.machine()}",
            "args": {k: str(v) for k, v in vars(args).items()},
            "n_breasts": len(cases),
            "n_malignant": int(labels.sum()),
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
