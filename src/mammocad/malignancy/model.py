"""The lesion classifier and the window it reads.

A box ``[x1, y1, x2, y2]`` in model-input pixels becomes a square window centred on it, of side
``context × max(w, h, min_side)``: the lesion plus a ring of surrounding tissue, where margins
and spicules show. :func:`crop_windows` resamples each window to ``crop_size²`` with
``torchvision.ops.roi_align`` (bilinear, ``aligned=True``): the same operation in training and
at inference, whatever the box size, and outside the image it reads zeros, as the input's own
padding does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    in_channels: int = 2
    crop_size: int = 48
    context: float = 2.0
    min_side: float = 16.0
    widths: tuple[int, ...] = (32, 64, 128)
    norm_groups: int = 8
    norm: str = "batch"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.crop_size < 16 or self.crop_size % 2 ** len(self.widths):
            raise ValueError(
                f"crop_size {self.crop_size} must be ≥ 16 and divisible by "
                f"{2 ** len(self.widths)} (one halving per stage)"
            )
        if self.context < 1.0 or self.min_side <= 0:
            raise ValueError("context must be ≥ 1 and min_side > 0")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {self.norm!r}")
        if self.norm == "group" and any(width % self.norm_groups for width in self.widths):
            raise ValueError(f"every width must be divisible by norm_groups={self.norm_groups}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown classifier settings: {sorted(unknown)}")
        values = dict(data)
        if "widths" in values:
            values["widths"] = tuple(int(w) for w in values["widths"])
        return cls(**values)


def window_boxes(boxes: Tensor, config: ClassifierConfig) -> Tensor:
    """``float[N, 4]`` boxes → the square context windows the classifier reads."""
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    half = side.clamp(min=config.min_side) * config.context / 2
    return torch.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], 1)


def crop_windows(images: Tensor, boxes: Sequence[Tensor], config: ClassifierConfig) -> Tensor:
    """``images`` ``float[B, C, H, W]`` and one ``float[N_b, 4]`` box tensor per image →
    ``float[ΣN_b, C, S, S]`` windows (``S = config.crop_size``), in box order."""
    windows = [window_boxes(b.to(images.dtype), config) for b in boxes]
    size = config.crop_size
    return roi_align(images, windows, output_size=(size, size), sampling_ratio=2, aligned=True)


def _norm(config: ClassifierConfig, channels: int) -> nn.Module:
    if config.norm == "group":
        return nn.GroupNorm(config.norm_groups, channels)
    return nn.BatchNorm2d(channels)


def _stage(in_channels: int, out_channels: int, config: ClassifierConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        _norm(config, out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        _norm(config, out_channels),
        nn.ReLU(inplace=True),
    )


class LesionClassifier(nn.Module):
    """``float[N, C, S, S]`` windows → ``float[N]`` malignancy logits.

    Four stride-2 stages of two 3×3 convolutions with GroupNorm (batches mix a few lesions
    with background; batch statistics would be noisy), global average pooling, dropout, one
    linear unit.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        stages = []
        channels = self.config.in_channels
        for width in self.config.widths:
            stages.append(_stage(channels, width, self.config))
            channels = width
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(self.config.dropout),
            nn.Linear(channels, 1),
        )

    def forward(self, windows: Tensor) -> Tensor:
        # each window standardised per channel: what separates a spiculated from a round mass
        # is its shape against the surrounding tissue, not how dense that tissue is
        mean = windows.mean(dim=(2, 3), keepdim=True)
        std = windows.std(dim=(2, 3), keepdim=True)
        return self.head(self.features((windows - mean) / (std + 0.05))).squeeze(1)
