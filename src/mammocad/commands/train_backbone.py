"""``mammocad train backbone``: pre-train the detector's backbone on windows of the training
images (:mod:`mammocad.train.pretrain`) and write ``OUT/backbone.pt`` for
``train detector --init-backbone``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mammocad.datasets.spec import DataSpec, build_samples, refuse_repeat
from mammocad.detect.config import DetectorConfig
from mammocad.preprocess import PreprocessParams
from mammocad.train.config import TrainConfig
from mammocad.train.pretrain import PatchSettings, PretrainResult, pretrain_backbone


@dataclass(frozen=True, kw_only=True)
class BackboneRun:
    train: Sequence[DataSpec]
    val: Sequence[DataSpec]
    out_dir: Path
    detector: DetectorConfig
    training: TrainConfig
    steps: int
    patches: PatchSettings
    preprocessing: PreprocessParams
    workers: int = 1


def run_train_backbone(run: BackboneRun, *, console: Console | None = None) -> PretrainResult:
    """Render/read the data, pre-train, write ``backbone.pt``; validation AUCs in the result."""
    console = console or Console(stderr=True)
    refuse_repeat(run.val, "validation")
    classes = run.detector.classes
    console.print("preparing training samples …")
    train = build_samples(run.train, classes=classes, params=run.preprocessing, workers=run.workers)
    val = build_samples(run.val, classes=classes, params=run.preprocessing, workers=run.workers)
    console.print(f"{len(train)} training and {len(val)} validation images")
    return pretrain_backbone(
        detector_config=run.detector,
        train_config=run.training,
        steps=run.steps,
        settings=run.patches,
        train_samples=train,
        val_samples=val,
        output_dir=run.out_dir,
        record={
            "train": [spec.describe() for spec in run.train],
            "validation": [spec.describe() for spec in run.val],
            "train_images": len(train),
            "preprocessing": run.preprocessing.to_dict(),
            "training": {k: v for k, v in run.training.to_dict().items() if k != "tracking"},
        },
    )
