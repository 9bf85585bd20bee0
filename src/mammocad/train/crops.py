"""Lesion-centred training windows: more lesions per step, a quarter of the pixels.

A screening phantom or mammogram holds at most a few lesions in a million pixels; trained on
whole images, the second stage sees almost only background and the one nipple, and a CPU step
costs seconds. Training on windows of the model input (e.g. 512×512 of 1024×832), centred on a
random lesion in a share of the draws and on random tissue otherwise, raises the share of
lesion proposals and cuts the cost per step by the pixel ratio. The detector is fully
convolutional and its anchors are in input pixels, so a window keeps the scale inference sees;
inference still runs on the whole input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mammocad.detect.containers import DetectionTarget
from mammocad.train.data import DetectionSample

# a lesion cut to less than half its box is dropped rather than taught from a fragment
# (the same rule as the geometric augmentation)
MIN_VISIBILITY = 0.5


@dataclass(frozen=True, kw_only=True)
class LesionCropper:
    """Cuts a ``size`` window (rows, columns of INPUT pixels) out of a training sample.

    With probability ``lesion_fraction`` — when the sample has a lesion — the window contains
    a lesion drawn at random (anywhere inside the window); otherwise it is centred on a random
    tissue pixel. ``landmark`` is the class index of the nipple, which is not a lesion to aim
    at (it is in almost every image). Boxes are clipped to the window; those left with less
    than :data:`MIN_VISIBILITY` of their area are dropped. Images no larger than the window
    come back unchanged.
    """

    size: tuple[int, int]
    lesion_fraction: float = 0.6
    landmark: int | None = None

    def __post_init__(self) -> None:
        if min(self.size) < 64:
            raise ValueError(f"crop size {self.size} is too small (at least 64×64)")
        if not 0.0 <= self.lesion_fraction <= 1.0:
            raise ValueError("lesion_fraction must lie in [0, 1]")

    def __call__(self, sample: DetectionSample, *, seed: int) -> DetectionSample:
        _, rows, cols = sample.image.shape
        crop_rows, crop_cols = min(self.size[0], rows), min(self.size[1], cols)
        if (crop_rows, crop_cols) == (rows, cols):
            return sample
        rng = np.random.default_rng(seed)
        top, left = self._origin(sample, rng, (rows, cols), (crop_rows, crop_cols))
        window = sample.image[:, top : top + crop_rows, left : left + crop_cols].contiguous()
        target = _crop_target(sample.target, top=top, left=left, size=(crop_rows, crop_cols))
        return DetectionSample(
            image_id=sample.image_id, source=sample.source, image=window, target=target
        )

    def _origin(
        self,
        sample: DetectionSample,
        rng: np.random.Generator,
        shape: tuple[int, int],
        crop: tuple[int, int],
    ) -> tuple[int, int]:
        """(top, left) of the window."""
        lesions = self._lesion_boxes(sample.target)
        if len(lesions) and rng.random() < self.lesion_fraction:
            x0, y0, x1, y1 = lesions[int(rng.integers(len(lesions)))]
            left = _start_covering(rng, low=x0, high=x1, extent=crop[1], limit=shape[1])
            top = _start_covering(rng, low=y0, high=y1, extent=crop[0], limit=shape[0])
            return top, left
        tissue = torch.nonzero(sample.image[0] > 0)
        if len(tissue) == 0:
            centre_row, centre_col = shape[0] // 2, shape[1] // 2
        else:
            centre_row, centre_col = (int(v) for v in tissue[int(rng.integers(len(tissue)))])
        top = int(np.clip(centre_row - crop[0] // 2, 0, shape[0] - crop[0]))
        left = int(np.clip(centre_col - crop[1] // 2, 0, shape[1] - crop[1]))
        return top, left

    def _lesion_boxes(self, target: DetectionTarget) -> np.ndarray:
        boxes = target.boxes.numpy()
        if self.landmark is None:
            return boxes
        return boxes[target.labels.numpy() != self.landmark]


def _start_covering(
    rng: np.random.Generator, *, low: float, high: float, extent: int, limit: int
) -> int:
    """A window start so that [low, high] lies inside [start, start + extent) where it fits;
    a box larger than the window gets a window centred on it."""
    first = max(0, int(np.ceil(high)) - extent)
    last = min(int(np.floor(low)), limit - extent)
    if first > last:
        first = last = round((low + high) / 2 - extent / 2)
    return int(np.clip(rng.integers(first, last + 1), 0, limit - extent))


def _crop_target(
    target: DetectionTarget, *, top: int, left: int, size: tuple[int, int]
) -> DetectionTarget:
    if len(target.boxes) == 0:
        return target
    shifted = target.boxes - torch.tensor([left, top, left, top], dtype=target.boxes.dtype)
    clipped = shifted.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, size[1])
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, size[0])
    keep = _area(clipped) >= MIN_VISIBILITY * _area(shifted).clamp(min=1e-6)
    return DetectionTarget(
        boxes=clipped[keep],
        labels=target.labels[keep],
        malignant=target.malignant[keep],
        annotated=target.annotated,
    )


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
