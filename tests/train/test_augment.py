"""Augmentation keeps the chest wall on the left, the padding at the bottom, and boxes on
their lesions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mammocad.detect import DEFAULT_CLASSES, DetectionTarget
from mammocad.train.augment import Augmenter
from mammocad.train.data import DetectionSample

pytest.importorskip("albumentations", reason="augmentation needs albumentations")

ROWS, COLS, CONTENT_ROWS, CONTENT_COLS = 128, 104, 100, 80
LESION = (30, 40, 50, 56)  # x1, y1, x2, y2


def sample(with_lesion: bool = True) -> DetectionSample:
    """Flat tissue (0.4) over the top-left 100 × 80 px, a bright 20 × 16 px lesion (1.0)."""
    image = torch.zeros(2, ROWS, COLS)
    image[:, :CONTENT_ROWS, :CONTENT_COLS] = 0.4
    x1, y1, x2, y2 = LESION
    if with_lesion:
        image[:, y1:y2, x1:x2] = 1.0
    boxes = [list(map(float, LESION))] if with_lesion else []
    target = DetectionTarget(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.int64),
        malignant=torch.ones(len(boxes), dtype=torch.int64),
        annotated=torch.ones(len(DEFAULT_CLASSES), dtype=torch.bool),
    )
    return DetectionSample(image_id="x", image=image, target=target)


@pytest.mark.parametrize("seed", range(12))
def test_geometry_keeps_the_layout_and_the_box_on_the_lesion(seed: int) -> None:
    out = Augmenter()(sample(), seed=seed)
    image = out.image.numpy()
    assert out.image.shape == (2, ROWS, COLS) and out.image.dtype == torch.float32
    tissue = image[0] > 0
    # chest wall on the left: tissue still touches column 0, the padding is at right/bottom
    assert tissue[:, 0].any()
    assert not tissue[-2:].any() and not tissue[:, -2:].any()
    assert image.min() >= 0.0 and image.max() <= 1.0
    bright = np.argwhere(image[0] > 0.75)
    if len(out.target.boxes) == 0:  # shifted out of view: the lesion must have gone too
        assert len(bright) < 0.5 * (LESION[2] - LESION[0]) * (LESION[3] - LESION[1])
        return
    (y_lo, x_lo), (y_hi, x_hi) = bright.min(axis=0), bright.max(axis=0) + 1
    np.testing.assert_allclose(out.target.boxes[0].tolist(), [x_lo, y_lo, x_hi, y_hi], atol=2.0)
    assert out.target.labels.tolist() == [0] and out.target.malignant.tolist() == [1]


def test_flips_are_vertical_only() -> None:
    flips = 0
    for seed in range(20):
        box = Augmenter(scale_limit=0.0, shift_limit=0.0)(sample(), seed=seed).target.boxes[0]
        assert box[0] == LESION[0] and box[2] == LESION[2]  # x never changes
        if box[1] != LESION[1]:
            # the breast (rows 0–99), not the padded image, is flipped
            assert box.tolist() == [30, CONTENT_ROWS - 56, 50, CONTENT_ROWS - 40]
            flips += 1
    assert 0 < flips < 20


def test_same_seed_same_result_and_lesion_free_samples() -> None:
    augment = Augmenter()
    first, again = augment(sample(), seed=7), augment(sample(), seed=7)
    assert torch.equal(first.image, again.image)
    assert torch.equal(first.target.boxes, again.target.boxes)
    assert not torch.equal(first.image, augment(sample(), seed=8).image)
    empty = augment(sample(with_lesion=False), seed=1)
    assert empty.target.boxes.shape == (0, 4) and empty.target.labels.shape == (0,)
