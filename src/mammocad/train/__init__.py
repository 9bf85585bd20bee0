"""Training recipes. The detector: :func:`train_detector` over :class:`DetectionSample` data.

Only torch, torchvision, numpy and OpenCV are needed to train from saved samples; albumentations
(augmentation), MLflow (tracking), matplotlib (plots) and Rich (progress) are used when present
and asked for.
"""

from mammocad.train.checkpoint import TrainState, load_checkpoint, save_checkpoint, seed_everything
from mammocad.train.config import BundleSpec, TrackingConfig, TrainConfig
from mammocad.train.data import (
    DataSource,
    DetectionDataset,
    DetectionSample,
    load_samples,
    save_samples,
)
from mammocad.train.detector import TrainResult, train_detector
from mammocad.train.toy import make_toy_samples

__all__ = [
    "BundleSpec",
    "DataSource",
    "DetectionDataset",
    "DetectionSample",
    "TrackingConfig",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "load_checkpoint",
    "load_samples",
    "make_toy_samples",
    "save_checkpoint",
    "save_samples",
    "seed_everything",
    "train_detector",
]
