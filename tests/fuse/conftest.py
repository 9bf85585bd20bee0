"""A fusion-equipped copy of the tiny test bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mammocad.detect import read_manifest
from mammocad.fuse import (
    BreastCase,
    CrossViewFusion,
    FusionConfig,
    PlacedFinding,
    copy_bundle,
    save_fusion,
)
from mammocad.risk.bundle import save_risk
from mammocad.risk.features import FEATURES
from mammocad.risk.model import fit_risk_model
from mammocad.structures import Finding, FindingLabel, Laterality, ViewPosition

MakeCases = Callable[..., list[BreastCase]]

CANDIDATE_SCORE = 0.02


def fusion_module(feature_dim: int) -> CrossViewFusion:
    """Seeded and untrained, but with a non-zero finding head so refinement shows."""
    torch.manual_seed(0)
    model = CrossViewFusion(FusionConfig(feature_dim=feature_dim, model_dim=16, heads=2))
    torch.nn.init.normal_(model.finding_head.weight, std=0.5)
    return model.eval()


SYNTHETIC_DIM = 8


def _finding(
    name: str, view: ViewPosition, code: np.ndarray, rng: np.random.Generator
) -> PlacedFinding:
    return PlacedFinding(
        finding=Finding(
            id=name,
            sop_instance_uid=view.value,
            label=FindingLabel.MASS,
            score=0.5,
            malignancy_probability=0.5,
            box=(0.0, 0.0, 1.0, 1.0),
        ),
        view=view,
        nipple_distance_mm=float(rng.uniform(20, 100)),
        size_mm=10.0,
        features=(code + 0.05 * rng.standard_normal(SYNTHETIC_DIM)).astype(np.float32),
    )


def _cases(count: int, seed: int) -> list[BreastCase]:
    """One finding per view, each with a random sign pattern; the breast is positive when
    the two views show the SAME pattern. Every single finding looks alike in both classes,
    so only comparing the views tells them apart."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        positive = index % 2
        cc_code = rng.choice([-1.0, 1.0], SYNTHETIC_DIM)
        mlo_code = cc_code if positive else rng.choice([-1.0, 1.0], SYNTHETIC_DIM)
        findings = (
            _finding(f"{index}-cc", ViewPosition.CC, cc_code, rng),
            _finding(f"{index}-mlo", ViewPosition.MLO, mlo_code, rng),
        )
        cases.append(
            BreastCase(
                study_instance_uid=str(index),
                patient_id=str(index),
                laterality=Laterality.L,
                findings=findings,
                label=positive,
            )
        )
    return cases


@pytest.fixture
def make_cases() -> MakeCases:
    """``make_cases(count, seed=…)``: synthetic breasts whose label needs both views."""
    return _cases


@pytest.fixture
def make_fusion_module() -> Callable[[int], CrossViewFusion]:
    return fusion_module


@pytest.fixture(scope="module")
def fusion_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy_bundle(tiny_bundle, tmp_path_factory.mktemp("fusion") / "bundle")
    feature_dim = read_manifest(folder).detector.box_head_dim
    save_fusion(
        fusion_module(feature_dim),
        folder,
        candidate_score=CANDIDATE_SCORE,
        training_data={"kind": "test"},
        metrics={"val_breast_auc/fused": {"value": 0.5}},
    )
    return folder


@pytest.fixture(scope="module")
def risk_bundle(fusion_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fusion bundle plus a risk model fitted on random rows whose label follows the
    breast probability (and the maximum score)."""
    folder = copy_bundle(
        fusion_bundle, tmp_path_factory.mktemp("risk") / "bundle", keep_fusion=True
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (120, len(FEATURES)))
    signal = x[:, FEATURES.index("breast_probability")] + x[:, FEATURES.index("max_score")]
    labels = (signal + 0.3 * rng.standard_normal(120) > 1.0).astype(np.int64)
    fitted = fit_risk_model(x, labels, [str(row // 2) for row in range(120)])
    save_risk(fitted, folder, training_data={"kind": "test"})
    return folder
