"""Patch pre-training of the detector's backbone: which classes lie at the centre of a window.

Trained from scratch, the detector first learns "background" and the one nipple on every
image; its lesion classes need many more steps (docs/training.md), and a CPU step on a
512×512 window teaches a handful of lesions at most. A classifier of small windows cut at the
detector's own scale sees dozens of labelled lesions and tissue windows per step for the same
backbone cost, and its backbone then starts the detector (``train detector --init-backbone``).
Patch classifiers as the first stage of a whole-mammogram model: Shen et al., "Deep learning
to improve breast cancer detection on screening mammography", Scientific Reports 9, 2019.

A window's target is multi-label over the detector's classes (the nipple included: it is the
look-alike the detector must learn to tell from a mass): a class is 1 when a box of it has its
centre in the middle ``centre`` share of the window, and is left out of the loss when a box
of it has its centre elsewhere in the window (neither clearly there nor absent) or when the
window's source does not annotate it (an unmarked lesion is not background).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional
from torch.utils.data import DataLoader, Dataset, Subset

from mammocad.detect.backbone import build_backbone
from mammocad.detect.config import DetectorConfig
from mammocad.train.checkpoint import (
    TrainState,
    load_checkpoint,
    read_torch_file,
    save_checkpoint,
    seed_everything,
)
from mammocad.train.config import TrainConfig
from mammocad.train.data import DetectionSample
from mammocad.train.interrupt import StopRequests
from mammocad.train.optim import WallClock, build_optimizer, build_scheduler, resolve_device
from mammocad.train.progress import TrainProgress

logger = logging.getLogger("mammocad.train")
FORMAT = "mammocad.backbone/1"
#: tissue: first input channel above this (the preprocessed background is 0)
TISSUE_LEVEL = 0.05


@dataclass(frozen=True, kw_only=True)
class PatchSettings:
    """How windows are cut. ``size`` is in INPUT pixels (the detector's scale, no resizing)."""

    size: int = 128
    centre: float = 0.5  # a box counts when its centre is in this middle share of the window
    lesion_fraction: float = 0.5  # share of windows aimed at an annotated box
    landmark: int | None = None  # class index never aimed at (it is on almost every image)

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"patch size {self.size} is too small (at least 32)")
        if not 0.0 < self.centre <= 1.0 or not 0.0 <= self.lesion_fraction <= 1.0:
            raise ValueError("centre must lie in (0, 1] and lesion_fraction in [0, 1]")


class PatchDraws(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """``length`` windows drawn from ``samples``; item ``i`` depends only on ``(seed, i)``.

    Each item is ``(window float32[C, S, S], target float32[K], known bool[K])``: ``known``
    is False where the class is left out of the loss (module docstring).
    """

    def __init__(
        self,
        samples: list[DetectionSample],
        settings: PatchSettings,
        *,
        length: int,
        seed: int,
        augment: bool = True,
    ) -> None:
        if not samples:
            raise ValueError("no samples to cut windows from")
        self.samples = samples
        self.settings = settings
        self.length = length
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        rng = np.random.default_rng([self.seed, index])
        sample = self.samples[int(rng.integers(len(self.samples)))]
        top, left = self._origin(sample, rng)
        size = self.settings.size
        window = _padded(sample.image, size)[:, top : top + size, left : left + size]
        target, known = window_target(sample, top=top, left=left, settings=self.settings)
        window = window.to(torch.float32)
        if self.augment:  # the eight flips and transposes of a square leave its labels alone
            if rng.random() < 0.5:
                window = window.flip(-1)
            if rng.random() < 0.5:
                window = window.flip(-2)
            if rng.random() < 0.5:
                window = window.transpose(-1, -2)
        return window.contiguous(), target, known

    def _origin(self, sample: DetectionSample, rng: np.random.Generator) -> tuple[int, int]:
        """Top-left corner of the window in the (padded) image."""
        size = self.settings.size
        rows, cols = (max(n, size) for n in sample.image.shape[1:])
        labels = sample.target.labels
        aimable = torch.ones_like(labels, dtype=torch.bool)
        if self.settings.landmark is not None:
            aimable = labels != self.settings.landmark
        candidates = torch.nonzero(aimable).flatten()
        if len(candidates) and rng.random() < self.settings.lesion_fraction:
            box = sample.target.boxes[int(candidates[int(rng.integers(len(candidates)))])]
            centre_x, centre_y = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
            # the box centre lands anywhere in the window's middle `centre` share
            half = self.settings.centre * size / 2
            centre_x += float(rng.uniform(-half, half))
            centre_y += float(rng.uniform(-half, half))
        else:
            tissue = torch.nonzero(sample.image[0] > TISSUE_LEVEL)
            if len(tissue):
                centre_y, centre_x = (float(v) for v in tissue[int(rng.integers(len(tissue)))])
            else:
                centre_y, centre_x = float(rng.uniform(0, rows)), float(rng.uniform(0, cols))
        top = int(np.clip(round(centre_y - size / 2), 0, rows - size))
        left = int(np.clip(round(centre_x - size / 2), 0, cols - size))
        return top, left


def window_target(
    sample: DetectionSample, *, top: int, left: int, settings: PatchSettings
) -> tuple[Tensor, Tensor]:
    """``(target, known)`` of the window at ``(top, left)``; see the module docstring."""
    classes = sample.target.annotated.numel()
    target = torch.zeros(classes)
    known = sample.target.annotated.clone()
    boxes, labels = sample.target.boxes, sample.target.labels
    if len(boxes):
        centre_x = (boxes[:, 0] + boxes[:, 2]) / 2 - left
        centre_y = (boxes[:, 1] + boxes[:, 3]) / 2 - top
        size = settings.size
        margin = size * (1 - settings.centre) / 2
        inside = (centre_x >= 0) & (centre_x < size) & (centre_y >= 0) & (centre_y < size)
        middle = (
            (centre_x >= margin)
            & (centre_x < size - margin)
            & (centre_y >= margin)
            & (centre_y < size - margin)
        )
        for label, is_inside, is_middle in zip(
            labels.tolist(), inside.tolist(), middle.tolist(), strict=True
        ):
            if is_middle:
                target[label] = 1.0
            elif is_inside:
                known[label] = False
        known |= target.bool() & sample.target.annotated  # a clear hit wins over an edge one
    return target, known


def _padded(image: Tensor, size: int) -> Tensor:
    """``image`` zero-padded at the bottom and right to at least ``size`` × ``size``."""
    rows, cols = image.shape[1:]
    if rows >= size and cols >= size:
        return image
    return functional.pad(image, (0, max(0, size - cols), 0, max(0, size - rows)))


class PatchClassifier(nn.Module):
    """The detector's backbone body (no FPN), global average pooling and one linear layer."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.body = build_backbone(config).body
        with torch.no_grad():
            probe = self.body(torch.zeros(1, config.in_channels, 64, 64))
        channels = list(probe.values())[-1].shape[1]
        self.head = nn.Linear(channels, len(config.classes))

    def forward(self, windows: Tensor) -> Tensor:
        deepest = list(self.body(windows).values())[-1]
        return self.head(deepest.mean(dim=(2, 3)))


def backbone_body(detector: nn.Module) -> nn.Module:
    """The backbone body (the ResNet or MobileNet layers, no FPN) of a detector."""
    body = getattr(getattr(detector, "backbone", None), "body", None)
    if not isinstance(body, nn.Module):
        raise TypeError(f"{type(detector).__name__} has no backbone body")
    return body


def masked_bce(logits: Tensor, target: Tensor, known: Tensor) -> Tensor:
    """Binary cross-entropy averaged over the known (window, class) entries."""
    losses = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


@dataclass(frozen=True, kw_only=True)
class PretrainResult:
    path: Path
    steps: int
    losses: list[float] = field(default_factory=list)  # mean training loss per logged span
    validation_auc: dict[str, float] = field(default_factory=dict)


def pretrain_backbone(
    *,
    detector_config: DetectorConfig,
    train_config: TrainConfig,
    steps: int,
    settings: PatchSettings,
    train_samples: list[DetectionSample],
    val_samples: list[DetectionSample],
    output_dir: str | Path,
    record: dict[str, Any] | None = None,
    val_windows: int = 2000,
    log_every: int = 50,
) -> PretrainResult:
    """Train :class:`PatchClassifier` for ``steps`` steps (or ``train_config.time_limit_s``)
    and write ``<output_dir>/backbone.pt`` (:func:`load_backbone` reads it).

    ``train_config`` gives batch size, learning rate, warm-up, weight decay, seed, device,
    workers and the time budget; ``record`` (data, preprocessing) is stored with the weights.
    With ``train_config.resume`` a stopped run goes on from ``<output_dir>/checkpoint.pt``.
    """
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    seed_everything(train_config.seed)
    device = resolve_device(train_config.device)
    model = PatchClassifier(detector_config).to(device)
    optimizer = build_optimizer(model, train_config)
    clock = WallClock(train_config.time_limit_s)
    scheduler = build_scheduler(
        optimizer,
        total_steps=steps,
        warmup_steps=train_config.warmup_steps,
        min_lr_ratio=train_config.min_lr_ratio,
        elapsed_fraction=clock.fraction if train_config.time_limit_s is not None else None,
    )
    checkpoint = output / "checkpoint.pt"
    start, losses = 0, []
    # what decides the windows and the network, kept in the checkpoint to refuse another resume
    settings_now = _plain(
        {
            "detector": detector_config.to_dict(),
            "patches": asdict(settings),
            "batch_size": train_config.batch_size,
        }
    )
    scaler = torch.amp.GradScaler(device.type, enabled=False)  # bfloat16 needs no scaling
    if train_config.resume and checkpoint.is_file():
        saved = load_checkpoint(
            checkpoint,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            map_location=device,
        )
        _check_same_run(checkpoint, saved.extra.get("settings"), settings_now)
        start, losses = saved.step, list(saved.extra["losses"])
        clock.resume_from(saved.elapsed_s)  # the budget is the run's, not this call's
        logger.info("resumed backbone pre-training at step %d", start)
    draws = PatchDraws(
        train_samples, settings, length=steps * train_config.batch_size, seed=train_config.seed
    )
    # a resumed run draws the windows it has not seen yet, in the same order
    remaining = Subset(draws, range(start * train_config.batch_size, len(draws)))
    loader = DataLoader(
        remaining, batch_size=train_config.batch_size, num_workers=train_config.num_workers
    )
    step, span = start, []
    model.train()
    with (
        TrainProgress(enabled=train_config.progress, total_epochs=1) as progress,
        StopRequests() as stop,
    ):
        progress.start_epoch(0, steps - start)
        for windows, target, known in loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(windows.to(device))
            loss = masked_bce(logits.float(), target.to(device), known.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            span.append(float(loss.detach()))
            progress.advance(span[-1])
            stopping = stop.requested is not None  # Ctrl-C or SIGTERM: checkpoint, then stop
            if step % log_every == 0 or step == steps or clock.out_of_time() or stopping:
                losses.append(float(np.mean(span)))
                span = []
                save_checkpoint(
                    checkpoint,
                    model=model,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    scaler=scaler,
                    state=TrainState(step=step, elapsed_s=clock.elapsed()),
                    extra={"losses": losses, "settings": settings_now},
                )
            if stopping:
                stop.raise_stop(checkpoint, f"after step {step}")
            if clock.out_of_time():
                logger.info("time budget spent after %d steps: stopping", step)
                break
    auc = validate_patches(
        model, val_samples, settings, detector_config.classes, count=val_windows, device=device
    )
    logger.info("pre-training: %d steps, validation AUC %s", step, auc)
    path = save_backbone(
        output / "backbone.pt",
        model,
        detector_config,
        settings=settings,
        record={**(record or {}), "steps": step, "losses": losses, "validation_auc": auc},
    )
    return PretrainResult(path=path, steps=step, losses=losses, validation_auc=auc)


def _check_same_run(checkpoint: Path, saved: Any, now: dict[str, Any]) -> None:
    """ValueError when ``checkpoint`` was written with other settings (``None``: written
    before they were recorded, not checked)."""
    if saved is None or saved == now:
        return
    before, after = _flat(saved), _flat(now)
    changed = sorted(key for key in {*before, *after} if before.get(key) != after.get(key))
    raise ValueError(
        f"{checkpoint} was written by a run with other settings ({', '.join(changed)}): "
        "resume with the settings that started the run, or pre-train into a new --out folder"
    )


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as JSON gives them back (tuples as lists), the form the checkpoint keeps."""
    plain: dict[str, Any] = json.loads(json.dumps(values))
    return plain


@torch.no_grad()
def validate_patches(
    model: PatchClassifier,
    samples: list[DetectionSample],
    settings: PatchSettings,
    classes: tuple[str, ...] | list[str],
    *,
    count: int,
    device: torch.device,
    seed: int = 1_000_003,
) -> dict[str, float]:
    """Per class, the AUC of the window's score for "this class at the centre" over ``count``
    fixed windows of ``samples`` (un-augmented); classes with one outcome only are left out."""
    from sklearn.metrics import roc_auc_score

    if not samples or count < 1:
        return {}
    draws = PatchDraws(samples, settings, length=count, seed=seed, augment=False)
    model.eval()
    scores, targets, knowns = [], [], []
    for windows, target, known in DataLoader(draws, batch_size=64):
        scores.append(torch.sigmoid(model(windows.to(device)).float()).cpu())
        targets.append(target)
        knowns.append(known)
    model.train()
    score, target, known = torch.cat(scores), torch.cat(targets), torch.cat(knowns)
    auc = {}
    for index, name in enumerate(classes):
        rows = known[:, index]
        labels = target[rows, index].numpy()
        if labels.min(initial=1) == labels.max(initial=0):
            continue
        auc[name] = float(roc_auc_score(labels, score[rows, index].numpy()))
    return auc


def save_backbone(
    path: Path,
    model: PatchClassifier,
    config: DetectorConfig,
    *,
    settings: PatchSettings,
    record: dict[str, Any],
) -> Path:
    """Write the backbone body's weights with what a detector must share to load them."""
    temporary = path.with_name(path.name + ".partial")
    torch.save(
        {
            "format": FORMAT,
            "backbone": _backbone_identity(config),
            "patch": asdict(settings),
            "record": record,
            "state_dict": model.body.state_dict(),
        },
        temporary,
    )
    temporary.replace(path)
    return path


def load_backbone(
    path: str | Path, config: DetectorConfig, *, preprocessing: dict[str, Any] | None = None
) -> dict[str, Tensor]:
    """The body weights in ``path`` for a detector built from ``config``.

    Raises ValueError when the file is not a pre-trained backbone, was trained for another
    backbone, channel count, normalisation or class list, or (when ``preprocessing`` is given)
    on inputs preprocessed differently: the weights describe those inputs.
    """
    data = read_torch_file(path, what="pre-trained backbone")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pre-trained backbone (expected format {FORMAT})")
    wanted = _backbone_identity(config)
    if data["backbone"] != wanted:
        raise ValueError(
            f"{path} was pre-trained for {data['backbone']}, the detector is {wanted}: "
            "pre-train with the same --backbone and classes"
        )
    stored = data["record"].get("preprocessing")
    if preprocessing is not None and stored is not None and stored != preprocessing:
        raise ValueError(
            f"{path} was pre-trained on inputs preprocessed with other settings: pre-train "
            "with the detector's --input-size (the stored settings are in the file's record)"
        )
    state: dict[str, Tensor] = data["state_dict"]
    return state


def _backbone_identity(config: DetectorConfig) -> dict[str, Any]:
    return {
        "backbone": config.backbone,
        "in_channels": config.in_channels,
        "norm_groups": config.norm_groups,
        "classes": list(config.classes),
    }
