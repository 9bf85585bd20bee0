"""Training the cross-view module from breast-level labels only.

Loss: binary cross-entropy of the breast logit against "this breast holds a malignant
lesion", positives weighted by the negatives-to-positives ratio of the training set (malignant
breasts are the minority). AdamW, full or mini-batch, a fixed number of epochs, seeded: the
same cases and parameters give the same module on the same machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

from mammocad.fuse.data import BreastCase, collate
from mammocad.fuse.model import CrossViewFusion, FusionConfig, FusionOutput


@dataclass(frozen=True, kw_only=True)
class TrainParams:
    # few epochs at a low rate: on 400 phantom breasts the out-of-fold AUC gain over the
    # single-view aggregate is there after 3–8 epochs and gone by 12 (docs/fusion.md)
    epochs: int = 5
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    model: CrossViewFusion  # in eval mode
    losses: list[float] = field(default_factory=list)  # mean training loss of each epoch
    n_breasts: int = 0
    n_positive: int = 0


def train_fusion(
    cases: Sequence[BreastCase], config: FusionConfig, params: TrainParams | None = None
) -> TrainResult:
    """Fit a :class:`CrossViewFusion` on the labelled ``cases`` (unlabelled ones are skipped).

    Raises:
        ValueError: no labelled breast, or only one class among them.
    """
    params = params or TrainParams()
    labelled = [case for case in cases if case.label is not None]
    labels = torch.tensor([float(case.label or 0) for case in labelled])
    positives = int(labels.sum())
    if not labelled or positives in (0, len(labelled)):
        raise ValueError(
            f"{len(labelled)} labelled breasts, {positives} malignant: training needs both "
            "classes (more studies, or a higher malignant_rate in the data spec)"
        )
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    model = CrossViewFusion(config)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    pos_weight = torch.tensor((len(labelled) - positives) / positives)
    losses = []
    model.train()
    for _ in range(params.epochs):
        order = torch.randperm(len(labelled), generator=generator).tolist()
        total = 0.0
        for start in range(0, len(order), params.batch_size):
            rows = order[start : start + params.batch_size]
            batch = collate([labelled[i] for i in rows], config.feature_dim)
            output = model(batch)
            loss = functional.binary_cross_entropy_with_logits(
                output.breast_logits, labels[rows], pos_weight=pos_weight
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(labelled))
    model.eval()
    return TrainResult(model=model, losses=losses, n_breasts=len(labelled), n_positive=positives)


@torch.no_grad()
def run_fusion(model: CrossViewFusion, cases: Sequence[BreastCase]) -> FusionOutput:
    """The module's output for ``cases`` (eval mode, one padded batch)."""
    model.eval()
    return model(collate(cases, model.config.feature_dim))


def breast_probabilities(
    model: CrossViewFusion, cases: Sequence[BreastCase]
) -> npt.NDArray[np.float64]:
    """``float[len(cases)]``: fused P(malignant breast) of each case."""
    if not cases:
        return np.zeros(0)
    output = run_fusion(model, cases)
    return torch.sigmoid(output.breast_logits).double().numpy()
