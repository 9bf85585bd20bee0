"""Training and validation of the lesion classifier (``mammocad train malignancy``).

Patches come from the detector's data specifications, prepared with the target bundle's
preprocessing (so the windows look as they will at inference), and can be cached to a file:
rendering full-size phantoms is the slow part, training on the patches takes minutes on a CPU.
Each epoch reads every patch once through a freshly jittered box, with random vertical flips
(a lesion's appearance does not depend on which way is up; left–right is the chest-wall side,
kept) and a small brightness/contrast change. The loss is binary cross-entropy with positives
weighted by the negative/positive ratio. Validation AUCs: all patches (malignant vs benign
lesions and background) and lesions only (malignant vs benign); the epoch with the best
all-patch AUC is kept.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from mammocad.datasets.spec import DataSpec, iter_samples
from mammocad.detect.bundle import BundleManifest
from mammocad.detect.containers import Detections
from mammocad.eval.study_metrics import roc_auc
from mammocad.malignancy.model import ClassifierConfig, LesionClassifier, crop_windows
from mammocad.malignancy.patches import (
    HARD_NEGATIVE,
    NOT_LESION,
    LesionPatch,
    jittered_boxes,
    load_patches,
    sample_patches,
    save_patches,
)
from mammocad.preprocess import PreprocessParams
from mammocad.train.data import DetectionSample

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ClassifierTraining:
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    time_limit: float | None = None


@dataclass(kw_only=True)
class ClassifierResult:
    model: LesionClassifier
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def collect_patches(
    specs: Sequence[DataSpec],
    manifest: BundleManifest,
    config: ClassifierConfig,
    *,
    cache: Path | None = None,
    workers: int = 1,
    detect: Callable[[DetectionSample], Detections] | None = None,
    hard_negatives_per_image: int = 0,
    seed: int = 0,
) -> list[LesionPatch]:
    """Patches of ``specs`` under the bundle's preprocessing (with ``detect``, hard negatives
    too: :func:`~mammocad.malignancy.patches.sample_patches`); read from / written to
    ``cache``, whose name must reflect all of these."""
    if cache is not None and cache.is_file():
        try:
            patches = load_patches(str(cache))
        except (OSError, RuntimeError, EOFError, TypeError, pickle.UnpicklingError) as error:
            # cut short (a full disk) or written by another version: it holds nothing usable
            logger.warning("cutting the patches again: %s cannot be read (%s)", cache, error)
        else:
            logger.info("patches from %s", cache)
            return patches
    params = PreprocessParams.from_dict(manifest.preprocessing)
    detector = manifest.detector
    samples = iter_samples(specs, classes=detector.classes, params=params, workers=workers)
    patches = sample_patches(
        samples,
        classes=detector.classes,
        landmark=detector.landmark_index,
        config=config,
        detect=detect,
        hard_negatives_per_image=hard_negatives_per_image,
        seed=seed,
    )
    if cache is not None:  # whole or not at all: a stopped run leaves no half file behind
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + ".partial")
        save_patches(patches, str(partial))
        partial.replace(cache)
    return patches


def _windows(
    patches: Sequence[LesionPatch],
    config: ClassifierConfig,
    rng: np.random.Generator | None,
) -> Tensor:
    boxes = jittered_boxes(patches, rng)
    windows = torch.cat(
        [
            crop_windows(item.patch.float().unsqueeze(0), [box], config)
            for item, box in zip(patches, boxes, strict=True)
        ]
    )
    if rng is not None:
        flip = torch.from_numpy(rng.random(len(windows)) < 0.5)
        windows[flip] = windows[flip].flip(-2)
        gain = torch.from_numpy(rng.uniform(0.9, 1.1, (len(windows), 1, 1, 1))).float()
        offset = torch.from_numpy(rng.uniform(-0.05, 0.05, (len(windows), 1, 1, 1))).float()
        windows = windows * gain + offset
    return windows


@torch.inference_mode()
def predict_patches(
    model: LesionClassifier, patches: Sequence[LesionPatch], *, batch_size: int = 128
) -> np.ndarray:
    """Malignancy probability of each patch at its annotated box."""
    model.eval()
    out = []
    for start in range(0, len(patches), batch_size):
        chunk = patches[start : start + batch_size]
        out.append(torch.sigmoid(model(_windows(chunk, model.config, None))).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def validation_metrics(
    model: LesionClassifier, patches: Sequence[LesionPatch], *, prefix: str = "val"
) -> dict[str, float]:
    """AUC over all patches, over lesion patches only, and of malignant lesions against the
    detector's false positives (hard negatives, where there are any); NaN when a set has
    one class."""
    probability = predict_patches(model, patches)
    labels = np.array([p.malignant for p in patches])
    lesion = np.array([p.kind not in NOT_LESION for p in patches])
    hard = np.array([p.kind == HARD_NEGATIVE for p in patches])
    metrics = {f"{prefix}/n": float(len(patches)), f"{prefix}/n_malignant": float(labels.sum())}
    subsets = [("auc", np.ones_like(lesion)), ("lesion_auc", lesion)]
    if hard.any():
        subsets.append(("hard_negative_auc", hard | (labels == 1)))
    for name, rows in subsets:
        subset = labels[rows.astype(bool)]
        defined = 0 < subset.sum() < len(subset)
        metrics[f"{prefix}/{name}"] = (
            roc_auc(probability[rows.astype(bool)], subset) if defined else float("nan")
        )
    return metrics


def train_classifier(
    train: Sequence[LesionPatch],
    val: Sequence[LesionPatch],
    *,
    config: ClassifierConfig,
    training: ClassifierTraining,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> ClassifierResult:
    """Train from scratch; keep the epoch with the best validation AUC (the last without
    validation patches)."""
    if not train:
        raise ValueError("no training patches: the data has no lesion with known malignancy")
    labels = np.array([p.malignant for p in train])
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise ValueError("the training patches are all of one class; add malignant and benign data")
    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    model = LesionClassifier(config)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )
    steps = training.epochs * -(-len(train) // training.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=training.learning_rate, total_steps=max(steps, 1), pct_start=0.1
    )
    pos_weight = torch.tensor((len(labels) - labels.sum()) / labels.sum(), dtype=torch.float32)
    result = ClassifierResult(model=model)
    best_auc = -1.0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    start = time.monotonic()
    for epoch in range(1, training.epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for first in range(0, len(order), training.batch_size):
            chunk = [train[i] for i in order[first : first + training.batch_size]]
            target = torch.tensor([p.malignant for p in chunk], dtype=torch.float32)
            logits = model(_windows(chunk, config, rng))
            loss = functional.binary_cross_entropy_with_logits(
                logits, target, pos_weight=pos_weight
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if scheduler.last_epoch < steps:
                scheduler.step()
            total += float(loss.detach()) * len(chunk)
        metrics = {"train/loss": total / len(train)}
        if val:
            metrics.update(validation_metrics(model, val))
        result.history.append({"epoch": float(epoch), **metrics})
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        auc = metrics.get("val/auc", float(epoch))
        if not val or (auc == auc and auc > best_auc):  # NaN never wins
            best_auc = auc
            result.best_epoch = epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if training.time_limit is not None and time.monotonic() - start > training.time_limit:
            logger.info("time limit reached after epoch %d", epoch)
            break
    model.load_state_dict(best_state)
    model.eval()
    result.metrics = validation_metrics(model, val) if val else {}
    return result
