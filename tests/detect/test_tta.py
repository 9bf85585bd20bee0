"""Mirror test-time augmentation: boxes come back from the mirror, passes average."""

from __future__ import annotations

from typing import ClassVar, cast

import pytest
import torch
from torch import Tensor

from mammocad.detect import MammoDetector
from mammocad.detect.containers import Detections
from mammocad.detect.tta import detect_mirror_averaged, merge_passes, mirror_boxes

ROWS, COLS = 256, 208


def _detections(boxes: list[list[float]], scores: list[float], nipple: float | None = None):
    return Detections(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.int64),
        scores=torch.tensor(scores, dtype=torch.float32),
        malignancy=torch.tensor(scores, dtype=torch.float32) / 2,
        nipple_box=torch.tensor([[0.0, 120.0, 10.0, 130.0]] if nipple else []).reshape(-1, 4),
        nipple_score=torch.tensor([nipple] if nipple else [], dtype=torch.float32),
    )


def _features(n: int, first: float) -> Tensor:
    return torch.arange(n, dtype=torch.float32)[:, None] + first


def test_mirror_boxes_is_its_own_inverse_and_keeps_columns() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert mirror_boxes(boxes, ROWS).tolist() == [[10.0, 196.0, 30.0, 236.0]]
    assert torch.equal(mirror_boxes(mirror_boxes(boxes, ROWS), ROWS), boxes)


def test_a_lesion_seen_twice_keeps_the_mean_a_single_pass_response_half() -> None:
    first = _detections([[10, 10, 50, 50], [100, 100, 120, 120]], [0.8, 0.6])
    second = _detections([[12, 10, 52, 50]], [0.4])
    merged, features = merge_passes(
        (first, _features(2, 0.0)), (second, _features(1, 10.0)), nms_iou=0.3
    )
    assert merged.scores.tolist() == pytest.approx([0.6, 0.3])
    # score-weighted box of the pair: 2/3 of the first, 1/3 of the second
    assert merged.boxes[0].tolist() == pytest.approx([10 + 2 / 3, 10, 50 + 2 / 3, 50])
    assert merged.malignancy.tolist() == pytest.approx([0.3, 0.3])
    assert features[:, 0].tolist() == [0.0, 1.0]  # the stronger detection's features


def test_merged_boxes_go_through_nms_and_the_cap() -> None:
    # two boxes of one pass that the other pass does not confirm, overlapping at IoU 0.6
    first = _detections([[0, 0, 100, 100], [0, 0, 100, 60], [150, 150, 160, 160]], [0.9, 0.8, 0.7])
    merged, features = merge_passes(
        (first, _features(3, 0.0)), (_detections([], []), _features(0, 0.0)), max_detections=1
    )
    assert merged.boxes.tolist() == [[0, 0, 100, 100]] and len(features) == 1
    empty, none = merge_passes(
        (_detections([], [], nipple=0.5), _features(0, 0.0)),
        (_detections([], [], nipple=0.9), _features(0, 0.0)),
    )
    assert (
        len(empty) == 0 and len(none) == 0 and empty.nipple_score.tolist() == pytest.approx([0.9])
    )


class _MirrorStub:
    """Stands in for the model: a lesion at LESION on the image, seen at its mirror position
    on the mirrored input (weaker), plus a response to texture in the mirror only."""

    LESION: ClassVar[list[float]] = [40.0, 30.0, 80.0, 70.0]

    def __init__(self) -> None:
        self.roi_heads = type("Heads", (), {"nms_thresh": 0.3, "detections_per_img": 20})()
        self.seen: list[Tensor] = []

    def detect_with_features(self, images: list[Tensor]) -> tuple[list[Detections], list[Tensor]]:
        self.seen = images
        lesion = torch.tensor([self.LESION])
        mirrored = mirror_boxes(lesion, ROWS).tolist()[0]
        return (
            [
                _detections([self.LESION], [0.9]),
                _detections([mirrored, [5, 5, 15, 15]], [0.7, 0.5]),
            ],
            [_features(1, 0.0), _features(2, 10.0)],
        )


def test_detect_mirror_averaged_maps_the_mirror_pass_back() -> None:
    stub = _MirrorStub()
    image = torch.rand(2, ROWS, COLS)
    merged, _ = detect_mirror_averaged(cast(MammoDetector, stub), image)
    assert torch.equal(stub.seen[1], image.flip(-2))  # no padding: the whole input flips
    assert merged.boxes[0].tolist() == pytest.approx(_MirrorStub.LESION)
    assert merged.scores.tolist() == pytest.approx([0.8, 0.25])
    # the texture response came from the mirror: back in the image it is at the bottom
    assert merged.boxes[1].tolist() == pytest.approx([5, ROWS - 15, 15, ROWS - 5])


def test_detect_mirror_averaged_runs_the_real_model(tiny_model: MammoDetector) -> None:
    tiny_model.eval()
    image = torch.rand(2, ROWS, COLS)
    merged, features = detect_mirror_averaged(tiny_model, image)
    assert len(features) == len(merged) <= tiny_model.roi_heads.detections_per_img
    assert bool((merged.scores[:-1] >= merged.scores[1:]).all())
    assert bool((merged.boxes[:, 3] <= ROWS).all()) and bool((merged.boxes[:, 1] >= 0).all())


def test_the_mirror_flips_the_breast_and_leaves_the_padding_at_the_bottom() -> None:
    """Training flips the breast's rows only (train.augment); the mirror pass flipped the whole
    padded input, so the model saw the padding on top, as no training image has it (review)."""
    content = 200
    stub = _MirrorStub()
    image = torch.zeros(2, ROWS, COLS)
    image[:, :content] = torch.rand(2, content, COLS) * 0.5 + 0.25
    merged, _ = detect_mirror_averaged(cast(MammoDetector, stub), image)
    mirror = stub.seen[1]
    assert torch.equal(mirror[:, :content], image[:, :content].flip(-2))
    assert bool((mirror[:, content:] == 0).all())
    # the stub reports the lesion at its mirror position within ROWS; mapped back with the
    # breast's rows it lands elsewhere, so the passes no longer agree on it
    assert merged.boxes[0].tolist() == pytest.approx(_MirrorStub.LESION)
    mapped = [5, content - 15, 15, content - 5]
    assert mapped in [pytest.approx(box) for box in merged.boxes.tolist()]


def test_a_mirror_box_running_into_the_padding_stays_in_the_image() -> None:
    content = 200

    class Spilling(_MirrorStub):
        def detect_with_features(self, images):  # type: ignore[no-untyped-def]
            found, features = super().detect_with_features(images)
            found[1] = _detections([[40, 190, 80, 230]], [0.6])  # rows 200-230 are padding
            return found, [features[0], _features(1, 10.0)]

    image = torch.zeros(2, ROWS, COLS)
    image[:, :content] = 0.5
    merged, _ = detect_mirror_averaged(cast(MammoDetector, Spilling()), image)
    assert bool((merged.boxes[:, 1] >= 0).all()) and bool((merged.boxes[:, 3] <= content).all())
    assert [40, 0, 80, 10] in [pytest.approx(box) for box in merged.boxes.tolist()]


def test_a_mirror_box_wholly_in_the_padding_is_no_detection() -> None:
    content = 200

    class InPadding(_MirrorStub):
        def detect_with_features(self, images):  # type: ignore[no-untyped-def]
            found, features = super().detect_with_features(images)
            found[1] = _detections([[40, 210, 80, 240], [5, 5, 15, 15]], [0.6, 0.5])
            return found, [features[0], _features(2, 10.0)]

    image = torch.zeros(2, ROWS, COLS)
    image[:, :content] = 0.5
    merged, features = detect_mirror_averaged(cast(MammoDetector, InPadding()), image)
    assert bool((merged.boxes[:, 3] > merged.boxes[:, 1]).all())
    assert len(merged) == 2 and len(features) == 2  # the plain lesion and the texture box
