"""Cross-view fusion (the ``fuse`` stage, docs/fusion.md): per breast, link CC and MLO
findings by nipple distance, size, class and appearance (:mod:`~mammocad.fuse.link`), and —
when the bundle has fusion weights — refine each finding's malignancy and the breast
probability with a small cross-view attention module trained from breast labels only
(:mod:`~mammocad.fuse.model`, :mod:`~mammocad.fuse.train`)."""

from mammocad.fuse.apply import Fuser, FusionResult
from mammocad.fuse.bundle import LoadedFusion, copy_bundle, load_fusion, save_fusion
from mammocad.fuse.data import BreastCase, breast_cases, collate, load_cases, save_cases
from mammocad.fuse.geometry import PlacedFinding, ViewFrame
from mammocad.fuse.link import LinkParams, link_breast, link_images, link_pairs, pair_cost
from mammocad.fuse.model import CrossViewFusion, FusionBatch, FusionConfig, FusionOutput
from mammocad.fuse.train import TrainParams, TrainResult, breast_probabilities, train_fusion

__all__ = [
    "BreastCase",
    "CrossViewFusion",
    "Fuser",
    "FusionBatch",
    "FusionConfig",
    "FusionOutput",
    "FusionResult",
    "LinkParams",
    "LoadedFusion",
    "PlacedFinding",
    "TrainParams",
    "TrainResult",
    "ViewFrame",
    "breast_cases",
    "breast_probabilities",
    "collate",
    "copy_bundle",
    "link_breast",
    "link_images",
    "link_pairs",
    "load_cases",
    "load_fusion",
    "pair_cost",
    "save_cases",
    "save_fusion",
    "train_fusion",
]
