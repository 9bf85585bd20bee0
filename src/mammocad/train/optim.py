"""AdamW with linear warm-up and cosine decay, the usual recipe for detectors from scratch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mammocad.train.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; GroupNorm scales and biases get no weight decay: shrinking them does not
    regularise a normalised network, it only fights the learnt activation scale."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        (decay if parameter.ndim > 1 else no_decay).append(parameter)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int,
    min_lr_ratio: float,
    elapsed_fraction: Callable[[], float] | None = None,
) -> LambdaLR:
    """Per optimiser step: linear warm-up from ~0 to the base rate, then cosine down to
    ``min_lr_ratio`` × the base rate at ``total_steps``.

    With ``elapsed_fraction`` (a time-budgeted run), the cosine follows whichever is further
    along, the steps or the wall-clock budget, so a run stopped by its budget still ends on a
    low learning rate instead of mid-schedule.
    """
    warmup = min(warmup_steps, max(total_steps - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if elapsed_fraction is not None:
            progress = max(progress, elapsed_fraction())
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


class WallClock:
    """Wall time of a run against its optional budget in seconds (``None``: no budget).

    The budget is the run's, not one call's: a resumed run counts the time its checkpoint
    recorded (:meth:`resume_from`), so it gets the rest of the budget and its learning-rate
    cosine goes on from where it was instead of climbing back up.
    """

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self.started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds of the run so far, earlier calls included."""
        return time.monotonic() - self.started

    def resume_from(self, spent_s: float) -> None:
        """Count ``spent_s`` seconds as already spent (the checkpoint's, on resume)."""
        self.started = time.monotonic() - spent_s

    def fraction(self) -> float:
        """Share of the time budget spent (0 without a budget)."""
        if self.limit_s is None:
            return 0.0
        return min(1.0, self.elapsed() / self.limit_s)

    def out_of_time(self) -> bool:
        return self.limit_s is not None and self.fraction() >= 1.0


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
