"""``mammocad train detector``: build samples from data specs, train, write the bundle."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mammocad.datasets.spec import DataSpec, build_samples, refuse_repeat, refuse_shared_data
from mammocad.detect.bundle import load_bundle
from mammocad.detect.config import DetectorConfig
from mammocad.preprocess import PreprocessParams
from mammocad.train.config import BundleSpec, TrainConfig
from mammocad.train.detector import (
    TrainResult,
    check_resumable,
    checkpoint_path,
    train_detector,
)
from mammocad.train.pretrain import load_backbone

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DetectorRun:
    """Everything one ``train detector`` invocation decides."""

    train: Sequence[DataSpec]
    val: Sequence[DataSpec]
    out_dir: Path
    detector: DetectorConfig
    training: TrainConfig
    preprocessing: PreprocessParams
    name: str
    version: str
    workers: int = 1
    init_bundle: Path | None = None
    init_backbone: Path | None = None


def run_train_detector(run: DetectorRun, *, console: Console | None = None) -> TrainResult:
    """Render/read the data, train from scratch (or resume) and write the bundle."""
    console = console or Console(stderr=True)
    classes = run.detector.classes
    if tuple(run.preprocessing.input_size) != tuple(run.detector.input_size):
        raise ValueError(
            f"the detector input size {run.detector.input_size} differs from the "
            f"preprocessing size {run.preprocessing.input_size}: set both to the same value"
        )
    refuse_repeat(run.val, "validation")
    refuse_shared_data(run.train, run.val)
    if run.init_bundle is not None and run.init_backbone is not None:
        raise ValueError("start from a bundle or from a pre-trained backbone, not both")
    init_backbone = None
    if run.init_backbone is not None:  # before the data: a wrong file fails in seconds
        init_backbone = load_backbone(
            run.init_backbone, run.detector, preprocessing=run.preprocessing.to_dict()
        )
        console.print(f"backbone pre-trained in {run.init_backbone}")
    init_state = None
    if run.init_bundle is not None:  # before the data: another configuration fails in seconds
        loaded = load_bundle(run.init_bundle)
        # matcher, sampler and inference settings may change; the layers may not
        if loaded.manifest.detector.architecture() != run.detector.architecture():
            raise ValueError(
                f"{run.init_bundle} holds a different detector configuration: train with the "
                "same backbone, classes and input size, or start from scratch"
            )
        init_state = loaded.model.state_dict()
        console.print(f"warm start from {run.init_bundle}")
        before, now = loaded.manifest.detector.to_dict(), run.detector.to_dict()
        for name in sorted(key for key in now if now[key] != before[key]):
            console.print(f"  {name}: {before[name]} in the bundle, {now[name]} in this run")
    checkpoint = checkpoint_path(run.out_dir)
    train_specs = [spec.describe() for spec in run.train]  # as the bundle records them
    if run.training.resume and checkpoint.is_file():  # before the data: fails in seconds
        check_resumable(
            checkpoint,
            run.detector,
            run.training,
            train_specs=train_specs,
        )
    console.print("preparing training samples …")
    train = build_samples(run.train, classes=classes, params=run.preprocessing, workers=run.workers)
    val = build_samples(run.val, classes=classes, params=run.preprocessing, workers=run.workers)
    console.print(f"{len(train)} training and {len(val)} validation images")
    bundle = BundleSpec(
        name=run.name,
        version=run.version,
        preprocessing=run.preprocessing.to_dict(),
        training_data={
            "train": train_specs,
            "validation": [spec.describe() for spec in run.val],
            "train_images": len(train),
            "validation_images": len(val),
        },
    )
    if run.training.resume and checkpoint.is_file():
        console.print(f"resuming from {checkpoint} (its weights replace any warm start)")
    return train_detector(
        detector_config=run.detector,
        train_config=run.training,
        train_data=train,
        val_data=val or None,
        output_dir=run.out_dir,
        bundle=bundle,
        init_state=init_state,
        init_backbone=init_backbone,
    )
