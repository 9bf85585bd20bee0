"""Resumable training checkpoints, written atomically.

A checkpoint holds everything that decides what the next step does: model, optimiser,
scheduler and gradient-scaler states, the epoch and step counters, the MLflow run id, and the
random number generator states (torch CPU and CUDA, NumPy's global generator, Python's
``random``), the wall time the optimisation has spent so far, and — for a checkpoint written
in the middle of an epoch — how far into the epoch it got (:class:`EpochProgress`). Data order
and augmentation are seeded per epoch from the run seed, so resuming, at an epoch boundary or
within an epoch, replays exactly what an uninterrupted run would have done.

Everything is stored as tensors and plain containers, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

_FORMAT = "mammocad.train-checkpoint/1"


@dataclass(frozen=True, kw_only=True)
class EpochProgress:
    """How far into an unfinished epoch a run got: ``batch`` batches of the epoch's order
    done, of which ``steps`` stepped and ``skipped`` were skipped (non-finite loss), and the
    running sums of their losses, so the epoch's mean losses come out as without the stop."""

    batch: int = 0
    steps: int = 0
    skipped: int = 0
    loss_sums: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "steps": self.steps,
            "skipped": self.skipped,
            "loss_sums": dict(self.loss_sums),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochProgress:
        return cls(
            batch=int(values["batch"]),
            steps=int(values["steps"]),
            skipped=int(values["skipped"]),
            loss_sums={str(k): float(v) for k, v in values["loss_sums"].items()},
        )


@dataclass(frozen=True, kw_only=True)
class TrainState:
    """Counters of a run: ``epoch`` epochs are complete, ``step`` optimiser steps taken (those
    of an unfinished epoch included), ``elapsed_s`` seconds of optimisation spent over every
    call so far, and ``in_epoch`` the progress into epoch ``epoch`` when the checkpoint was
    written mid-epoch (``None`` at an epoch boundary); ``extra`` is what the loop keeps
    beside them: saved with the state, merged with ``save_checkpoint(extra=...)``."""

    epoch: int = 0
    step: int = 0
    run_id: str | None = None
    elapsed_s: float = 0.0
    in_epoch: EpochProgress | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's global generator and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    state: TrainState,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint to ``path`` via a temporary file and an atomic rename, so a crash
    mid-write leaves the previous checkpoint intact."""
    payload = {
        "format": _FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "run_id": state.run_id,
        "elapsed_s": float(state.elapsed_s),
        "in_epoch": None if state.in_epoch is None else state.in_epoch.to_dict(),
        "rng": _rng_states(),
        "extra": {**state.extra, **(extra or {})},  # what load_checkpoint gives back as state.extra
    }
    return _save_atomically(payload, path)


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    map_location: str | torch.device = "cpu",
) -> TrainState:
    """Restore everything :func:`save_checkpoint` wrote, RNG states included."""
    payload = read_torch_file(path, map_location=map_location, what="training checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(
            f"{path} is not a mammocad training checkpoint; delete it or start with resume=False"
        )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(
            f"{path} was written for another model configuration ({error}); resume with the "
            "settings that started the run, or train into a new output folder"
        ) from error
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    # a disabled scaler (AMP off on the CPU, or bfloat16) saves {}, which an enabled one (a
    # resume with float16 AMP) refuses to load: it then starts fresh, as a new run's would
    if payload["scaler"]:
        scaler.load_state_dict(payload["scaler"])
    _restore_rng(payload["rng"])
    in_epoch = payload.get("in_epoch")  # absent from checkpoints written before mid-epoch saves
    return TrainState(
        epoch=payload["epoch"],
        step=payload["step"],
        run_id=payload["run_id"],
        elapsed_s=float(payload.get("elapsed_s", 0.0)),
        in_epoch=None if in_epoch is None else EpochProgress.from_dict(in_epoch),
        extra=payload.get("extra", {}),
    )


def checkpoint_extra(path: str | Path) -> dict[str, Any]:
    """What the loop kept beside the state in the checkpoint at ``path`` (its ``extra``),
    read without a model: a command checks a checkpoint before it prepares its data.

    Raises:
        ValueError: the file cannot be read or is not a mammocad training checkpoint.
    """
    payload = read_torch_file(path, what="training checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(
            f"{path} is not a mammocad training checkpoint; delete it or start with resume=False"
        )
    extra: dict[str, Any] = payload.get("extra") or {}
    return extra


def read_torch_file(
    path: str | Path, *, map_location: str | torch.device = "cpu", what: str = "checkpoint"
) -> Any:
    """``torch.load(path, weights_only=True)``; a file cut short (a full disk, a copy
    stopped half-way), empty or not written by ``torch.save`` raises ValueError naming it
    instead of the unpickler's or zip reader's error."""
    try:
        return torch.load(Path(path), map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(
            f"{path} cannot be read as a {what} (it is cut short or not a torch file: "
            f"{type(error).__name__}); delete it and start again, or restore it from a copy"
        ) from error


def _rng_states() -> dict[str, Any]:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss": python_gauss},
    }


def _restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    python_state = states["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["internal"]), python_state["gauss"])
    )


def save_weights(path: str | Path, model: nn.Module, info: dict[str, Any]) -> Path:
    """Write only the model's weights and ``info`` (plain values), atomically."""
    return _save_atomically({"format": _FORMAT, "model": model.state_dict(), "info": info}, path)


def load_weights(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load weights :func:`save_weights` wrote into ``model``; returns their ``info``."""
    payload = read_torch_file(path, what="weights file")
    model.load_state_dict(payload["model"])
    return dict(payload["info"])


def _save_atomically(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file renamed over ``path``: a crash mid-write leaves the
    previous file intact."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".partial")
    torch.save(payload, temporary)
    temporary.replace(out)
    return out
