"""Checkpoints restore the whole training state, random generators included."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mammocad.train import TrainConfig, TrainState, load_checkpoint, save_checkpoint
from mammocad.train.optim import build_optimizer, build_scheduler


def parts(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, object, torch.amp.GradScaler]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.GroupNorm(2, 8), nn.Linear(8, 1))
    optimizer = build_optimizer(model, TrainConfig(learning_rate=0.1))
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_steps=2, min_lr_ratio=0.1)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False)


def test_checkpoint_restores_model_optimiser_schedule_and_rng(tmp_path: Path) -> None:
    model, optimizer, scheduler, scaler = parts(0)
    for _ in range(3):
        model(torch.randn(5, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
    path = save_checkpoint(
        tmp_path / "last.pt",
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        state=TrainState(epoch=2, step=3, run_id="abc"),
    )
    assert not path.with_name("last.pt.partial").exists()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    other, other_optimizer, other_scheduler, other_scaler = parts(1)
    state = load_checkpoint(
        path,
        model=other,
        optimizer=other_optimizer,
        scheduler=other_scheduler,
        scaler=other_scaler,
    )
    assert state == TrainState(epoch=2, step=3, run_id="abc")
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    assert other_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert torch.equal(
        other_optimizer.state_dict()["state"][0]["exp_avg"],
        optimizer.state_dict()["state"][0]["exp_avg"],
    )


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(1)}, tmp_path / "x.pt")
    model, optimizer, scheduler, scaler = parts(0)
    with pytest.raises(ValueError, match="not a mammocad training checkpoint"):
        load_checkpoint(
            tmp_path / "x.pt", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )


def test_schedule_warms_up_then_follows_a_cosine() -> None:
    _, optimizer, _, _ = parts(0)
    scheduler = build_scheduler(optimizer, total_steps=12, warmup_steps=2, min_lr_ratio=0.1)
    rates = []
    for _ in range(12):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1 / 3) and rates[1] == pytest.approx(0.2 / 3)
    assert rates[2] == pytest.approx(0.1)  # peak right after the warm-up
    assert all(a >= b for a, b in itertools.pairwise(rates[2:]))
    assert scheduler.get_last_lr()[0] == pytest.approx(0.01)  # min_lr_ratio × base at the end


def test_norms_and_biases_are_not_decayed() -> None:
    _, optimizer, _, _ = parts(0)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] > 0 and plain["weight_decay"] == 0
    assert all(p.ndim == 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    model, optimizer, scheduler, scaler = parts(0)
    state = TrainState(epoch=1, step=1)
    options = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    save_checkpoint(tmp_path / "last.pt", model=model, state=state, **options)
    wider = nn.Sequential(nn.Linear(4, 16), nn.GroupNorm(2, 16), nn.Linear(16, 1))
    with pytest.raises(ValueError, match="another model configuration"):
        load_checkpoint(tmp_path / "last.pt", model=wider, **options)


def test_a_run_without_a_gradient_scaler_resumes_with_one(tmp_path: Path) -> None:
    # started on the CPU or with bfloat16 (scaler disabled, its state {}), resumed where
    # float16 AMP enables it: loading {} into an enabled scaler raised inside torch
    model, optimizer, scheduler, _ = parts(0)
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    options = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    save_checkpoint(tmp_path / "last.pt", scaler=disabled, state=TrainState(), **options)
    enabled = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0**16)
    load_checkpoint(tmp_path / "last.pt", scaler=enabled, **options)
    assert enabled.is_enabled() and enabled.get_scale() == 2.0**16  # a fresh scaler
    # a saved scale is still restored
    scaled = torch.amp.GradScaler("cpu", enabled=True, init_scale=128.0)
    save_checkpoint(tmp_path / "last.pt", scaler=scaled, state=TrainState(), **options)
    restored = torch.amp.GradScaler("cpu", enabled=True)
    load_checkpoint(tmp_path / "last.pt", scaler=restored, **options)
    assert restored.get_scale() == 128.0
