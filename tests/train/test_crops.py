"""Lesion-centred training windows: the lesion stays inside, boxes move with the pixels."""

from __future__ import annotations

import pytest
import torch

from mammocad.detect import DEFAULT_CLASSES, DetectionTarget
from mammocad.train.crops import LesionCropper
from mammocad.train.data import DetectionSample

ROWS, COLS = 256, 208
LESION = (150.0, 180.0, 180.0, 214.0)  # x1, y1, x2, y2, near the bottom right
NIPPLE = (190.0, 100.0, 208.0, 118.0)
NIPPLE_CLASS = DEFAULT_CLASSES.index("nipple")


def sample(*, with_lesion: bool = True) -> DetectionSample:
    """Tissue (0.4) left of column 200, a bright lesion (1.0) and a nipple box."""
    image = torch.zeros(2, ROWS, COLS)
    image[:, :, :200] = 0.4
    boxes, labels = [NIPPLE], [NIPPLE_CLASS]
    if with_lesion:
        x1, y1, x2, y2 = (int(v) for v in LESION)
        image[:, y1:y2, x1:x2] = 1.0
        boxes.append(LESION)
        labels.append(0)
    target = DetectionTarget(
        boxes=torch.tensor(boxes, dtype=torch.float32),
        labels=torch.tensor(labels, dtype=torch.int64),
        malignant=torch.tensor([-1] + [1] * with_lesion, dtype=torch.int64),
        annotated=torch.ones(len(DEFAULT_CLASSES), dtype=torch.bool),
    )
    return DetectionSample(image_id="x", image=image, target=target)


@pytest.mark.parametrize("seed", range(10))
def test_a_lesion_window_contains_the_lesion_where_its_box_says(seed: int) -> None:
    cropper = LesionCropper(size=(96, 96), lesion_fraction=1.0, landmark=NIPPLE_CLASS)
    out = cropper(sample(), seed=seed)
    assert tuple(out.image.shape) == (2, 96, 96)
    lesion = out.target.boxes[out.target.labels == 0]
    assert len(lesion) == 1
    x1, y1, x2, y2 = (int(v) for v in lesion[0])
    assert (x2 - x1, y2 - y1) == (30, 34)  # whole lesion, not clipped
    assert bool((out.image[0, y1:y2, x1:x2] == 1.0).all())
    assert int((out.image[0] == 1.0).sum()) == 30 * 34


@pytest.mark.parametrize("seed", range(10))
def test_tissue_windows_drop_boxes_mostly_outside(seed: int) -> None:
    out = LesionCropper(size=(64, 64), lesion_fraction=0.0)(sample(), seed=seed)
    for box in out.target.boxes:
        x1, y1, x2, y2 = box.tolist()
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
    # every kept box keeps at least half of its pixels: the bright lesion, when kept
    if bool((out.target.labels == 0).any()):
        assert int((out.image[0] == 1.0).sum()) >= 0.5 * 30 * 34
    assert bool((out.image[0] > 0).any())  # centred on tissue


def test_windows_are_reproducible_and_lesion_free_images_work() -> None:
    cropper = LesionCropper(size=(96, 96), landmark=NIPPLE_CLASS)
    first, again = cropper(sample(), seed=3), cropper(sample(), seed=3)
    assert torch.equal(first.image, again.image)
    assert torch.equal(first.target.boxes, again.target.boxes)
    empty = cropper(sample(with_lesion=False), seed=3)
    assert tuple(empty.image.shape) == (2, 96, 96)
    assert not bool((empty.target.labels == 0).any())


def test_an_image_no_larger_than_the_window_is_unchanged() -> None:
    original = sample()
    assert LesionCropper(size=(ROWS, COLS))(original, seed=0) is original


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        LesionCropper(size=(32, 512))
    with pytest.raises(ValueError, match="lesion_fraction"):
        LesionCropper(size=(128, 128), lesion_fraction=1.5)
