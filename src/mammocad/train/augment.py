"""Training augmentation with albumentations (bbox-aware), keeping the chest wall on the left.

Geometry: the breast (the rows above the zero padding) is flipped top↔bottom (a left–right
flip would put the chest wall on the right, which inference never sees), scaled about the
top-left corner (so the chest wall stays at x = 0) and shifted vertically; then brightness,
contrast and Gaussian noise — on tissue only, because preprocessing pads with exact zeros and
the model should keep seeing that. albumentations is imported lazily: training runs without it
(``TrainConfig.augment=False``) on machines that only have torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from mammocad.detect.containers import DetectionTarget
from mammocad.detect.tta import content_rows
from mammocad.train.data import DetectionSample

# a lesion cut to less than half its box by a shift or scale is dropped rather than taught
# from a fragment
_MIN_VISIBILITY = 0.5


def _albumentations() -> Any:
    try:
        import albumentations
    except ImportError as error:
        raise ImportError(
            "augmentation needs albumentations: pip install 'mammocad[ml]', "
            "or train with TrainConfig(augment=False)"
        ) from error
    return albumentations


@dataclass(frozen=True, kw_only=True)
class Augmenter:
    """Random, reproducible augmentation of a :class:`DetectionSample`.

    Every call takes its own ``seed``, so the result depends only on (seed, sample) — not on
    call order or data-loader worker — and a resumed run replays the same augmentations.
    """

    flip_probability: float = 0.5
    scale_limit: float = 0.1  # ± relative size change
    shift_limit: float = 0.04  # ± vertical shift, fraction of the height
    brightness_limit: float = 0.08
    contrast_limit: float = 0.1
    noise_std: float = 0.015

    def __post_init__(self) -> None:
        _albumentations()  # fail at construction, not in the middle of an epoch

    def __call__(self, sample: DetectionSample, *, seed: int) -> DetectionSample:
        A = _albumentations()
        _, rows, cols = sample.image.shape
        pixels = np.ascontiguousarray(sample.image.permute(1, 2, 0).numpy(), dtype=np.float32)
        # the rows the mirror test-time augmentation flips too (one rule for both)
        breast_rows = content_rows(sample.image)
        rng = np.random.default_rng(seed)
        geometry = A.Compose(
            self._geometry(A, rows, cols, breast_rows),
            bbox_params=A.BboxParams(
                format="pascal_voc",
                label_fields=["box_index"],
                min_visibility=_MIN_VISIBILITY,
                clip=True,
            ),
            seed=int(rng.integers(2**31)),
        )
        target = sample.target
        moved = geometry(
            image=pixels, bboxes=target.boxes.numpy(), box_index=np.arange(len(target.boxes))
        )
        image = moved["image"]
        padding = ~image.any(axis=2)
        photometric = A.Compose(self._photometric(A), seed=int(rng.integers(2**31)))
        image = np.clip(photometric(image=image)["image"], 0.0, 1.0)
        image[padding] = 0.0
        keep = torch.as_tensor(np.asarray(moved["box_index"], dtype=np.int64))
        boxes = torch.as_tensor(np.asarray(moved["bboxes"], dtype=np.float32)).reshape(-1, 4)
        return DetectionSample(
            image_id=sample.image_id,
            source=sample.source,
            image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            target=DetectionTarget(
                boxes=boxes,
                labels=target.labels[keep],
                malignant=target.malignant[keep],
                annotated=target.annotated,
            ),
        )

    def _geometry(self, A: Any, rows: int, cols: int, breast_rows: int) -> list[Any]:
        pad = {"border_mode": cv2.BORDER_CONSTANT, "fill": 0.0}
        return [
            # flip the breast only, so the padding stays at the bottom as in preprocessing
            A.Crop(x_min=0, y_min=0, x_max=cols, y_max=breast_rows),
            A.VerticalFlip(p=self.flip_probability),
            A.PadIfNeeded(min_height=rows, min_width=cols, position="top_left", **pad),
            # resizing scales about the top-left corner: the chest wall stays at x = 0
            A.RandomScale(scale_limit=self.scale_limit, p=0.5),
            A.PadIfNeeded(min_height=rows, min_width=cols, position="top_left", **pad),
            A.Crop(x_min=0, y_min=0, x_max=cols, y_max=rows),
            A.Affine(
                translate_percent={"x": (0.0, 0.0), "y": (-self.shift_limit, self.shift_limit)},
                p=0.5,
                **pad,
            ),
        ]

    def _photometric(self, A: Any) -> list[Any]:
        return [
            A.RandomBrightnessContrast(
                brightness_limit=self.brightness_limit, contrast_limit=self.contrast_limit, p=0.5
            ),
            A.GaussNoise(std_range=(0.0, self.noise_std), p=0.3),
        ]
