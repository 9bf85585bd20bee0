"""The cross-view module learns a label that only a cross-view interaction explains, where the
same module without cross-view attention cannot; shapes and empty views work."""

from __future__ import annotations

import numpy as np
import torch

from mammocad.eval.study_metrics import roc_auc
from mammocad.fuse import (
    BreastCase,
    FusionConfig,
    TrainParams,
    breast_probabilities,
    collate,
    train_fusion,
)
from mammocad.fuse.train import run_fusion
from mammocad.structures import Laterality

from .conftest import SYNTHETIC_DIM, MakeCases

DIM = SYNTHETIC_DIM


def test_cross_view_attention_learns_what_single_view_cannot(make_cases: MakeCases) -> None:
    torch.set_num_threads(1)
    train, test = make_cases(120, seed=0), make_cases(80, seed=1)
    params = TrainParams(epochs=20, learning_rate=1e-2, batch_size=32, seed=0)
    labels = np.array([case.label for case in test])
    fused = train_fusion(train, FusionConfig(feature_dim=DIM, model_dim=32, dropout=0.0), params)
    alone = train_fusion(
        train,
        FusionConfig(feature_dim=DIM, model_dim=32, dropout=0.0, cross_view=False),
        params,
    )
    assert fused.losses[-1] < 0.5 * fused.losses[0]
    fused_auc = roc_auc(breast_probabilities(fused.model, test), labels)
    alone_auc = roc_auc(breast_probabilities(alone.model, test), labels)
    assert fused_auc > 0.8, fused_auc
    assert fused_auc > alone_auc + 0.15, (fused_auc, alone_auc)


def test_one_view_and_empty_breasts_get_finite_outputs(make_cases: MakeCases) -> None:
    (case,) = make_cases(1, seed=2)
    one_view = BreastCase(
        study_instance_uid="s",
        patient_id="p",
        laterality=Laterality.R,
        findings=case.findings[:1],
    )
    empty = BreastCase(study_instance_uid="s", patient_id="p", laterality=Laterality.L, findings=())
    batch = collate([case, one_view, empty], DIM)
    assert tuple(batch.features.shape) == (3, 2, DIM)
    assert batch.valid.tolist() == [[True, True], [True, False], [False, False]]
    fused = train_fusion(
        make_cases(8, seed=3), FusionConfig(feature_dim=DIM, model_dim=16), TrainParams(epochs=1)
    )
    output = run_fusion(fused.model, [case, one_view, empty])
    assert torch.isfinite(output.breast_logits).all()
    assert torch.isfinite(output.finding_logits[batch.valid]).all()
    assert torch.allclose(output.weights.sum(dim=1), torch.ones(3))
    assert float(output.weights[2, -1]) == 1.0  # a breast without findings: the empty token


def test_untrained_module_keeps_the_detectors_finding_logits(make_cases: MakeCases) -> None:
    from mammocad.fuse import CrossViewFusion
    from mammocad.fuse.data import base_logit

    torch.manual_seed(0)
    model = CrossViewFusion(FusionConfig(feature_dim=DIM, model_dim=16)).eval()
    (case,) = make_cases(1, seed=4)
    output = run_fusion(model, [case])
    expected = torch.tensor([base_logit(item) for item in case.findings])
    assert torch.allclose(output.finding_logits[0], expected)


def test_untrained_noisy_or_pooling_is_the_single_view_aggregate(make_cases: MakeCases) -> None:
    """The default pooling starts from today's breast probability — the noisy-OR of the
    reported findings — so training learns a correction to it; candidates below the finding
    threshold are context for the attention, never evidence."""
    from dataclasses import replace

    from mammocad.fuse import CrossViewFusion

    torch.manual_seed(0)
    model = CrossViewFusion(FusionConfig(feature_dim=DIM, model_dim=16)).eval()
    cases = make_cases(6, seed=5)
    # the first finding of every other breast becomes an unreported candidate
    cases = [
        replace(case, findings=(replace(case.findings[0], reported=False), *case.findings[1:]))
        if row % 2
        else case
        for row, case in enumerate(cases)
    ]
    fused = breast_probabilities(model, cases)
    expected = np.array([case.single_view_probability() for case in cases])
    np.testing.assert_allclose(fused, expected, atol=2e-3)
    assert fused[1] < fused[0]  # the candidate did not count


def test_bundles_without_pooling_keep_attention() -> None:
    """fusion configs written before the noisy-OR pooling hold attention-pooled weights."""
    stored = {"feature_dim": DIM, "model_dim": 16, "heads": 4, "dropout": 0.1, "cross_view": True}
    assert FusionConfig.from_dict(stored).pooling == "attention"
    assert FusionConfig(feature_dim=DIM).pooling == "noisy_or"
