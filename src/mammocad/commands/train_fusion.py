"""``mammocad train fusion``: fit the cross-view module on a detector bundle's outputs over
phantom studies and write a copy of the bundle with the fusion weights (docs/fusion.md).

Steps: run the bundle's pipeline over every ``--data`` and ``--val`` study (cached under
``OUT/cache``), train from breast labels, report the validation breast AUC of the fused
probability against today's single-view aggregation, write ``OUT/bundle`` (the source bundle
is only read) and ``OUT/fusion_report.json``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from mammocad.datasets.phantoms import PhantomSpec
from mammocad.datasets.spec import DataSpec, phantom_spec, refuse_shared_data
from mammocad.eval.study_metrics import AucResult, roc_auc_with_ci
from mammocad.fuse.apply import Fuser
from mammocad.fuse.bundle import copy_bundle, save_fusion
from mammocad.fuse.collect import collect_cases
from mammocad.fuse.data import BreastCase
from mammocad.fuse.model import FusionConfig
from mammocad.fuse.train import TrainParams, breast_probabilities, train_fusion
from mammocad.pipeline import Pipeline


@dataclass(frozen=True, kw_only=True)
class FusionRun:
    model: Path
    data: Sequence[DataSpec]
    val: Sequence[DataSpec]
    out_dir: Path
    candidate_score: float | None = None  # None: the bundle's finding threshold
    params: TrainParams = field(default_factory=TrainParams)
    model_dim: int = 16
    bootstrap: int = 1000
    device: str = "cpu"
    threads: int | None = None


@dataclass(frozen=True, kw_only=True)
class FusionTrainOutcome:
    bundle_dir: Path
    report: dict[str, Any]


def phantom_specs(specs: Sequence[DataSpec]) -> list[PhantomSpec]:
    """Fusion trains on phantoms only: they carry breast labels for both views."""
    unusable = [spec.kind for spec in specs if spec.kind != "phantom"]
    if unusable:
        raise ValueError(
            f"fusion needs four-view studies with breast labels; {', '.join(unusable)} data "
            "has none here: use phantom:n=N,seed=S,size=full"
        )
    return [phantom_spec(spec) for spec in specs]


def refuse_source_as_output(model: Path, out_dir: Path) -> None:
    """ValueError, before any work, when ``OUT/bundle`` is ``model`` itself: the copy is
    written last and would be refused only after the whole run."""
    if (out_dir / "bundle").resolve() == model.resolve():
        raise ValueError(
            f"--out {out_dir} holds the --model bundle as its bundle/, which this run would "
            "replace: give another --out (the source bundle is only read)"
        )


def collection_pipeline(
    model: Path, *, candidate_score: float | None, device: str, threads: int | None
) -> Pipeline:
    """The bundle's pipeline without fusion weights, returning candidates down to
    ``candidate_score`` (the finding threshold when ``None``)."""
    pipeline = Pipeline.from_bundle(model, device=device, num_threads=threads)
    pipeline.fuser = Fuser()
    pipeline.risk = None  # the cases hold the detector's outputs only
    detector = pipeline.detector
    detector.set_candidate_threshold(
        detector.finding_threshold if candidate_score is None else candidate_score
    )
    return pipeline


def gather(
    pipeline: Pipeline, specs: Sequence[PhantomSpec], cache: Path, console: Console, name: str
) -> list[BreastCase]:
    cases: list[BreastCase] = []
    total = sum(spec.n_studies for spec in specs)
    done = 0
    for spec in specs:

        def progress(index: int, cached: bool) -> None:
            nonlocal done
            done += 1
            if done % 5 == 0 or done == total:
                console.print(f"{name}: {done}/{total} studies ({'cached' if cached else 'run'})")

        cases += collect_cases(pipeline, spec, cache_dir=cache, on_study=progress)
    return cases


def compare(
    model: Any, cases: Sequence[BreastCase], *, bootstrap: int, seed: int = 0
) -> dict[str, AucResult]:
    """Breast-level AUC (patient cluster bootstrap) of the fused probability, today's
    aggregation (reported findings) and the same aggregation over all fusion candidates."""
    labelled = [case for case in cases if case.label is not None]
    labels = np.array([case.label for case in labelled])
    patients = [case.patient_id for case in labelled]
    scores = {
        "fused": breast_probabilities(model, labelled),
        "single_view": np.array([c.single_view_probability() for c in labelled]),
        "single_view_candidates": np.array(
            [c.single_view_probability(candidates=True) for c in labelled]
        ),
    }
    return {
        name: roc_auc_with_ci(value, labels, patients, n_bootstrap=bootstrap, seed=seed)
        for name, value in scores.items()
    }


def auc_dict(result: AucResult) -> dict[str, float | None]:
    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    return {
        "value": clean(result.auc),
        "ci_low": clean(result.ci_low),
        "ci_high": clean(result.ci_high),
    }


def run_train_fusion(run: FusionRun, *, console: Console | None = None) -> FusionTrainOutcome:
    console = console or Console(stderr=True)
    train_specs, val_specs = phantom_specs(run.data), phantom_specs(run.val)
    refuse_shared_data(run.data, run.val)
    refuse_source_as_output(run.model, run.out_dir)
    start = time.perf_counter()
    pipeline = collection_pipeline(
        run.model, candidate_score=run.candidate_score, device=run.device, threads=run.threads
    )
    cache = run.out_dir / "cache"
    train_cases = gather(pipeline, train_specs, cache, console, "train")
    val_cases = gather(pipeline, val_specs, cache, console, "val") if val_specs else []
    collected = time.perf_counter() - start
    config = FusionConfig(
        feature_dim=pipeline.detector.model.config.box_head_dim, model_dim=run.model_dim
    )
    trained = train_fusion(train_cases, config, run.params)
    fit_seconds = time.perf_counter() - start - collected
    metrics: dict[str, Any] = {}
    if val_cases:
        metrics = {
            f"val_breast_auc/{name}": auc_dict(value)
            for name, value in compare(trained.model, val_cases, bootstrap=run.bootstrap).items()
        }
    candidate = pipeline.detector.candidate_threshold
    training_data = {
        "train": [spec.describe() for spec in run.data],
        "validation": [spec.describe() for spec in run.val],
        "train_breasts": trained.n_breasts,
        "train_malignant_breasts": trained.n_positive,
        "params": {**run.params.__dict__},
    }
    bundle_dir = copy_bundle(run.model, run.out_dir / "bundle")
    save_fusion(
        trained.model,
        bundle_dir,
        candidate_score=candidate,
        training_data=training_data,
        metrics=metrics,
    )
    report = {
        "source_bundle": str(run.model),
        "bundle": str(bundle_dir),
        "candidate_score": candidate,
        "training_data": training_data,
        "val_breasts": len(val_cases),
        "val_malignant_breasts": sum(int(c.label or 0) for c in val_cases),
        "metrics": metrics,
        "loss_first_last": [trained.losses[0], trained.losses[-1]],
        "seconds": {"collect": round(collected, 1), "fit": round(fit_seconds, 1)},
        "machine": f"{platform.node()} {platform.machine()} ({platform.processor() or '?'})",
    }
    (run.out_dir / "fusion_report.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    for name, value in metrics.items():
        console.print(f"{name}: {value['value']} [{value['ci_low']}, {value['ci_high']}]")
    return FusionTrainOutcome(bundle_dir=bundle_dir, report=report)
