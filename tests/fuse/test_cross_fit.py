"""A risk model stacked on fused probabilities must see what the fusion module gives on new
patients: on its own training breasts a module fits even random labels, cross-fitted it
cannot (`mammocad train risk`, docs/risk.md)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from mammocad.commands.train_risk import cross_fitted_fusion
from mammocad.eval.study_metrics import roc_auc
from mammocad.fuse import FusionConfig, TrainParams, breast_probabilities, train_fusion
from mammocad.fuse.bundle import LoadedFusion

from .conftest import SYNTHETIC_DIM, MakeCases


def test_cross_fitted_fused_probabilities_are_not_in_sample(make_cases: MakeCases) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cases = [
        replace(case, label=int(rng.random() < 0.5), patient_id=str(row))
        for row, case in enumerate(make_cases(80, seed=0))
    ]
    labels = np.array([case.label for case in cases])
    params = TrainParams(epochs=60, learning_rate=1e-2, batch_size=32)
    config = FusionConfig(feature_dim=SYNTHETIC_DIM, model_dim=32, dropout=0.0)
    module = train_fusion(cases, config, params).model
    fusion = LoadedFusion(
        model=module,
        candidate_score=0.02,
        section={"training_data": {"params": params.__dict__}},
    )
    in_sample = roc_auc(breast_probabilities(module, cases), labels)
    cross_fitted = roc_auc(np.array(cross_fitted_fusion(fusion, cases, folds=5)), labels)
    assert in_sample > 0.95, in_sample  # memorised random labels
    assert cross_fitted < 0.75, cross_fitted  # nothing that holds for unseen patients
