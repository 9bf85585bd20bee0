"""DetectorConfig: defaults, validation, dict round trip."""

from __future__ import annotations

import json

import pytest

from mammocad.detect import DEFAULT_CLASSES, DetectorConfig
from mammocad.structures import FindingLabel


def test_defaults_cover_every_finding_label_plus_the_nipple() -> None:
    config = DetectorConfig()
    assert config.lesion_classes == tuple(label.value for label in FindingLabel)
    assert config.classes == DEFAULT_CLASSES and config.landmark == "nipple"
    assert config.landmark_index == 6 and config.lesion_indices == (0, 1, 2, 3, 4, 5)
    assert config.in_channels == 2 and config.input_size == (1024, 832)
    assert len(config.resolved_anchor_sizes) == len(config.feature_strides) == 4
    fine = DetectorConfig(finest_stride=4)
    assert fine.feature_strides[0] == 4 and len(fine.resolved_anchor_sizes) == 5


def test_round_trip_through_json() -> None:
    config = DetectorConfig(backbone="mobilenet_v3_large", input_size=(2048, 1664), nms_iou=0.4)
    restored = DetectorConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backbone": "vgg16"}, "unknown backbone"),
        ({"classes": ("mass", "calcification")}, "landmark"),
        ({"classes": ("mass", "tumour", "nipple")}, "FindingLabel"),
        ({"anchor_sizes": ((16,), (32,))}, "levels"),
        ({"anchor_sizes": ((16,), (32, 48), (64,), (128,))}, "same number"),
        ({"finest_stride": 16}, "finest_stride"),
        ({"nms_iou": 1.5}, "nms_iou"),
        ({"rpn_fg_iou": 1.2}, "rpn_fg_iou"),
        ({"rpn_fg_iou": 0.5, "rpn_bg_iou": 0.6}, "cannot be background"),
    ],
)
def test_invalid_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**options)  # type: ignore[arg-type]


def test_unknown_keys_say_to_upgrade() -> None:
    with pytest.raises(ValueError, match="upgrade mammocad"):
        DetectorConfig.from_dict({**DetectorConfig().to_dict(), "new_setting": 1})


def test_architecture_is_what_the_weights_depend_on() -> None:
    """A warm start compares these: matcher, sampler and inference settings may differ."""
    base = DetectorConfig()
    tuned = DetectorConfig(rpn_fg_iou=0.5, roi_batch_size_per_image=128, score_threshold=0.01)
    assert tuned.architecture() == base.architecture()
    assert DetectorConfig(fpn_channels=64).architecture() != base.architecture()
    assert DetectorConfig(input_size=(512, 416)).architecture() != base.architecture()
