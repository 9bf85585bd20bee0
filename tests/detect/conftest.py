"""A tiny detector and a harness that fixes its proposals and class scores, so the
post-processing rules can be tested on known numbers through the public ``forward``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from mammocad.detect import DetectorConfig, MammoDetector, build_detector

SIZE = (256, 208)


@pytest.fixture
def tiny_config() -> DetectorConfig:
    return DetectorConfig(
        backbone="resnet18",
        input_size=SIZE,
        fpn_channels=32,
        norm_groups=8,
        box_head_dim=64,
        malignancy_hidden=16,
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=150,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
        roi_batch_size_per_image=64,
    )


@pytest.fixture
def tiny_model(tiny_config: DetectorConfig) -> MammoDetector:
    torch.manual_seed(0)
    return build_detector(tiny_config)


class FixedPredictor(nn.Module):
    """Stands in for ``FastRCNNPredictor``: the same class logits and zero box deltas for
    every image, one row per proposal."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        rows = features.shape[0] // self.logits.shape[0]
        logits = self.logits.repeat(rows, 1)
        return logits, torch.zeros(logits.shape[0], logits.shape[1] * 4)


@pytest.fixture
def logits_for(tiny_config: DetectorConfig) -> Callable[[list[tuple[str, float]]], Tensor]:
    """``logits_for([(name, value), …])``: one row per proposal, ``name`` at logit ``value``,
    background and every other class at 0."""

    def make(winners: list[tuple[str, float]]) -> Tensor:
        table = torch.zeros(len(winners), len(tiny_config.classes) + 1)
        for row, (name, value) in enumerate(winners):
            table[row, tiny_config.classes.index(name) + 1] = value
        return table

    return make


@pytest.fixture
def make_images() -> Callable[..., list[Tensor]]:
    """``make_images(count)``: seeded random two-channel inputs of the tiny input size."""

    def make(count: int = 2) -> list[Tensor]:
        generator = torch.Generator().manual_seed(1)
        return [torch.rand(2, *SIZE, generator=generator) for _ in range(count)]

    return make


@pytest.fixture
def rigged(
    tiny_model: MammoDetector, monkeypatch: pytest.MonkeyPatch
) -> Callable[[list[list[float]], Tensor], MammoDetector]:
    """``rigged(proposals, logits)`` → the tiny model in eval mode whose RPN returns exactly
    ``proposals`` (input pixels) and whose classifier returns ``logits`` with zero box deltas,
    so every detection box is one of the proposals, unchanged."""

    def make(proposals: list[list[float]], logits: Tensor) -> MammoDetector:
        boxes = torch.tensor(proposals, dtype=torch.float32)

        def fixed_rpn(images, features, targets=None):
            return [boxes.clone() for _ in images.image_sizes], {}

        monkeypatch.setattr(tiny_model.rpn, "forward", fixed_rpn)
        tiny_model.roi_heads.box_predictor = FixedPredictor(logits)
        return tiny_model.eval()

    return make
