"""``mammocad train malignancy``: train the second-stage lesion classifier on windows of a
bundle's model inputs and write a copy of the bundle with it (docs/malignancy.md).

Steps: cut lesion and background patches from every ``--data`` / ``--val`` specification with
the bundle's preprocessing, and with ``--hard-negatives K`` up to K of the bundle's detector's
false positives per image (cached under ``OUT/patches``, keyed by the specifications, the
preprocessing, the detector's classes, the window context and, with hard negatives, the
detector's sha256 and K), train, write ``OUT/bundle`` (the source is only read),
``OUT/history.json``, and track the run with MLflow when enabled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from mammocad.commands.train_fusion import refuse_source_as_output
from mammocad.datasets.spec import DataSpec, refuse_repeat, refuse_shared_data
from mammocad.detect.bundle import BundleManifest, read_manifest
from mammocad.detect.containers import Detections
from mammocad.fuse.bundle import copy_bundle
from mammocad.malignancy.bundle import save_classifier
from mammocad.malignancy.model import ClassifierConfig
from mammocad.malignancy.patches import HARD_NEGATIVE, NOT_LESION, LesionPatch
from mammocad.malignancy.train import (
    ClassifierResult,
    ClassifierTraining,
    collect_patches,
    train_classifier,
)
from mammocad.train.config import TrackingConfig
from mammocad.train.data import DetectionSample
from mammocad.train.tracking import open_tracker

#: detector boxes down to this score are hard-negative candidates (the best-scoring are taken)
HARD_NEGATIVE_MIN_SCORE = 0.05


@dataclass(frozen=True, kw_only=True)
class MalignancyRun:
    model: Path
    data: Sequence[DataSpec]
    val: Sequence[DataSpec]
    out_dir: Path
    config: ClassifierConfig = field(default_factory=ClassifierConfig)
    training: ClassifierTraining = field(default_factory=ClassifierTraining)
    workers: int = 1
    hard_negatives: int = 0  # per image: the detector's best false positives, label 0
    tracking: TrackingConfig = field(
        default_factory=lambda: TrackingConfig(enabled=False, experiment="mammocad-malignancy")
    )


def _cache_file(
    out_dir: Path,
    specs: Sequence[DataSpec],
    manifest: BundleManifest,
    hard_negatives: int,
    config: ClassifierConfig,
) -> Path:
    parts: dict[str, Any] = {
        "specs": [s.describe() for s in specs],
        "preprocessing": manifest.preprocessing,
        # the lesions' kinds and labels follow the detector's classes
        "classes": list(manifest.detector.classes),
        "landmark": manifest.detector.landmark_index,
        # a patch spans PATCH_EXTENT windows, a window is context × the box (min_side at least)
        "window": {"context": config.context, "min_side": config.min_side},
    }
    if hard_negatives:  # mined by this detector: another detector finds other false positives
        parts["hard_negatives"] = {"per_image": hard_negatives, "detector": manifest.sha256}
    key = json.dumps(parts, sort_keys=True)
    return out_dir / "patches" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def detector_boxes(model: Path) -> Callable[[DetectionSample], Detections]:
    """The bundle's detector on a training sample's model input: its boxes down to
    :data:`HARD_NEGATIVE_MIN_SCORE`, input pixels (the hard-negative miner)."""
    from mammocad.detect.predict import Detector  # the detector pulls in the classifier

    detector = Detector.from_bundle(model)
    detector.set_candidate_threshold(HARD_NEGATIVE_MIN_SCORE)

    def detect(sample: DetectionSample) -> Detections:
        with torch.inference_mode():
            image = sample.image.to(detector.device, torch.float32)
            return detector.model([image]).detections[0].to("cpu")

    return detect


def _describe(patches: Sequence[LesionPatch]) -> str:
    malignant = sum(p.malignant for p in patches)
    lesions = sum(p.kind not in NOT_LESION for p in patches)
    hard = sum(p.kind == HARD_NEGATIVE for p in patches)
    return (
        f"{len(patches)} patches: {lesions} lesions ({malignant} malignant), {hard} of the "
        f"detector's false positives, rest plain tissue"
    )


def run_train_malignancy(run: MalignancyRun, *, console: Console) -> tuple[Path, ClassifierResult]:
    refuse_repeat(run.val, "validation")
    refuse_shared_data(run.data, run.val)
    refuse_source_as_output(run.model, run.out_dir)
    manifest = read_manifest(run.model)
    if run.config.in_channels != manifest.detector.in_channels:
        raise ValueError(
            f"the bundle's inputs have {manifest.detector.in_channels} channels, the classifier "
            f"reads {run.config.in_channels}"
        )
    detect = detector_boxes(run.model) if run.hard_negatives else None
    sets: dict[str, list[LesionPatch]] = {}
    for name, specs in (("train", run.data), ("val", run.val)):
        if not specs:
            sets[name] = []
            continue
        cache = _cache_file(run.out_dir, specs, manifest, run.hard_negatives, run.config)
        sets[name] = collect_patches(
            specs,
            manifest,
            run.config,
            cache=cache,
            workers=run.workers,
            detect=detect,
            hard_negatives_per_image=run.hard_negatives,
        )
        console.print(f"{name}: {_describe(sets[name])}")
    tracker = open_tracker(run.tracking)
    tracker.log_params(
        {
            "model": str(run.model),
            "data": [s.describe() for s in run.data],
            "val": [s.describe() for s in run.val],
            "classifier": run.config.to_dict(),
            "training": vars(run.training),
            "hard_negatives": run.hard_negatives,
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
            "hard_negatives_per_image": run.hard_negatives,
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
