"""Lesion detection: a two-stage detector over the preprocessed two-channel input.

``build_detector(DetectorConfig(...))`` gives a :class:`MammoDetector` (boxes in INPUT pixels);
``Detector.from_bundle(path)`` loads a saved bundle for inference and reports findings in
ORIGINAL pixels. See docs/detector.md.
"""

from mammocad.detect.bundle import (
    BundleManifest,
    LoadedBundle,
    load_bundle,
    read_manifest,
    save_bundle,
    write_model_card,
)
from mammocad.detect.config import DEFAULT_CLASSES, LESION_CLASSES, NIPPLE, DetectorConfig
from mammocad.detect.containers import (
    UNKNOWN_MALIGNANCY,
    Detections,
    DetectionTarget,
    DetectorOutput,
)
from mammocad.detect.model import MammoDetector, build_detector
from mammocad.detect.predict import Detector, ImagePrediction

__all__ = [
    "DEFAULT_CLASSES",
    "LESION_CLASSES",
    "NIPPLE",
    "UNKNOWN_MALIGNANCY",
    "BundleManifest",
    "DetectionTarget",
    "Detections",
    "Detector",
    "DetectorConfig",
    "DetectorOutput",
    "ImagePrediction",
    "LoadedBundle",
    "MammoDetector",
    "build_detector",
    "load_bundle",
    "read_manifest",
    "save_bundle",
    "write_model_card",
]
