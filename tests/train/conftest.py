"""A detector small enough to train for a few steps in seconds on two CPU cores."""

from __future__ import annotations

import importlib.util

import pytest

from mammocad.detect import DetectorConfig
from mammocad.train import TrackingConfig, TrainConfig


@pytest.fixture
def tiny_config() -> DetectorConfig:
    return DetectorConfig(
        backbone="resnet18",
        input_size=(128, 104),
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
def quick_train() -> TrainConfig:
    """Two short epochs, no tracking, no progress bar, a few bootstrap rounds; augmentation
    when albumentations is installed (it is in the dev environment)."""
    return TrainConfig(
        augment=importlib.util.find_spec("albumentations") is not None,
        epochs=2,
        batch_size=4,
        learning_rate=1e-3,
        warmup_steps=2,
        froc_bootstrap=5,
        progress=False,
        tracking=TrackingConfig(enabled=False),
    )
