"""``mammocad train malignancy``: train the second-stage lesion classifier on windows of a
bundle's model inputs and write a copy of the bundle with it (docs/malignancy.md).

Steps: cut lesion and background patches from every ``--data`` / ``--val`` specification with
the bundle's preprocessing (cached under ``OUT/patches``, keyed by the specifications and the
preprocessing), train, write ``OUT/bundle`` (the source is only read), ``OUT/history.json``,
and track the run with MLflow when enabled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from mammocad.datasets.spec import DataSpec
from mammocad.detect.bundle import read_manifest
from mammocad.fuse.bundle import copy_bundle
from mammocad.malignancy.bundle import save_classifier
from mammocad.malignancy.model import ClassifierConfig
from mammocad.malignancy.patches import LesionPatch
from mammocad.malignancy.train import (
    ClassifierResult,
    ClassifierTraining,
    collect_patches,
    train_classifier,
)
from mammocad.train.config import TrackingConfig
from mammocad.train.tracking import open_tracker


@dataclass(frozen=True, kw_only=True)
class MalignancyRun:
    model: Path
    data: Sequence[DataSpec]
    val: Sequence[DataSpec]
    out_dir: Path
    config: ClassifierConfig = field(default_factory=ClassifierConfig)
    training: ClassifierTraining = field(default_factory=ClassifierTraining)
    workers: int = 1
    tracking: TrackingConfig = field(
        default_factory=lambda: TrackingConfig(enabled=False, experiment="mammocad-malignancy")
    )


def _cache_file(out_dir: Path, specs: Sequence[DataSpec], preprocessing: dict[str, Any]) -> Path:
    key = json.dumps(
        {"specs": [s.describe() for s in specs], "preprocessing": preprocessing}, sort_keys=True
    )
    return out_dir / "patches" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _describe(patches: Sequence[LesionPatch]) -> str:
    malignant = sum(p.malignant for p in patches)
    lesions = sum(p.kind != "background" for p in patches)
    return f"{len(patches)} patches: {lesions} lesions ({malignant} malignant), rest background"


def run_train_malignancy(run: MalignancyRun, *, console: Console) -> tuple[Path, ClassifierResult]:
    manifest = read_manifest(run.model)
    if run.config.in_channels != manifest.detector.in_channels:
        raise ValueError(
            f"the bundle's inputs have {manifest.detector.in_channels} channels, the classifier "
            f"reads {run.config.in_channels}"
        )
    sets: dict[str, list[LesionPatch]] = {}
    for name, specs in (("train", run.data), ("val", run.val)):
        if not specs:
            sets[name] = []
            continue
        cache = _cache_file(run.out_dir, specs, manifest.preprocessing)
        sets[name] = collect_patches(specs, manifest, run.config, cache=cache, workers=run.workers)
        console.print(f"{name}: {_describe(sets[name])}")
    tracker = open_tracker(run.tracking)
    tracker.log_params(
        {
            "model": str(run.model),
            "data": [s.describe() for s in run.data],
            "val": [s.describe() for s in run.val],
            "classifier": run.config.to_dict(),
            "training": vars(run.training),
        }
    )

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(metrics, step=epoch)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if "/n" not in k)
        console.print(f"epoch {epoch}: {shown}")

    try:
        result = train_classifier(
            sets["train"], sets["val"], config=run.config, training=run.training, on_epoch=on_epoch
        )
    except BaseException:
        tracker.finish(failed=True)
        raise
    bundle = copy_bundle(run.model, run.out_dir / "bundle", keep_fusion=True)
    save_classifier(
        result.model,
        bundle,
        training_data={
            "train": [s.describe() for s in run.data],
            "validation": [s.describe() for s in run.val],
            "train_patches": len(sets["train"]),
            "validation_patches": len(sets["val"]),
            "best_epoch": result.best_epoch,
        },
        metrics={k: round(v, 4) for k, v in result.metrics.items()},
    )
    history = run.out_dir / "history.json"
    history.write_text(json.dumps(result.history, indent=2) + "\n", encoding="utf-8")
    tracker.log_artifact(history)
    tracker.log_artifact(bundle, "bundle")
    tracker.finish()
    return bundle, result
