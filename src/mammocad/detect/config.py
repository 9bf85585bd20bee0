"""Detector settings: one frozen dataclass, recorded verbatim in every model bundle.

Sizes are in INPUT pixels (the preprocessed model input, see :mod:`mammocad.structures`). At the
default input of 1024×832 a typical full-field mammogram (≈ 230 mm tall) is ≈ 0.25 mm per pixel,
so a 5 mm calcification cluster spans ≈ 20 px, a 10–30 mm mass 40–120 px and a large asymmetry up
to ≈ 350 px. The anchors below are chosen for that range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from mammocad.structures import FindingLabel

BACKBONES = ("resnet18", "resnet34", "resnet50", "mobilenet_v3_large")
LESION_CLASSES: tuple[str, ...] = tuple(label.value for label in FindingLabel)
NIPPLE = "nipple"
DEFAULT_CLASSES: tuple[str, ...] = (*LESION_CLASSES, NIPPLE)

# Two anchor scales per FPN level (an octave apart from level to level, half an octave inside
# one), 16 px (a small calcification cluster) up to 256 px; objects up to ≈ 360 px still reach
# IoU 0.5 with the largest anchor, and the matcher keeps a best anchor for every truth anyway.
_ANCHORS_STRIDE_8 = ((16, 24), (32, 48), (64, 96), (128, 256))
# A stride-4 level (P2) adds 8–12 px anchors for single coarse calcifications, at ≈ 4× the
# FPN/RPN cost of the finest level (see docs/detector.md).
_ANCHORS_STRIDE_4 = ((8, 12), *_ANCHORS_STRIDE_8)


#: The settings that make the weights what they are: the layers and their shapes, the input the
#: model was trained on and what its outputs mean. The others (matchers, samplers, loss weights,
#: inference cut-offs) only steer a training or a prediction, so a warm start may change them.
ARCHITECTURE = (
    "backbone",
    "norm_groups",
    "in_channels",
    "classes",
    "landmark",
    "input_size",
    "finest_stride",
    "fpn_channels",
    "anchor_sizes",
    "aspect_ratios",
    "box_head_dim",
    "malignancy_hidden",
)


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Architecture and inference settings of :class:`mammocad.detect.MammoDetector`.

    Class indices everywhere in :mod:`mammocad.detect` are positions in ``classes`` (0-based);
    background is internal to the model. ``landmark`` (the nipple) is trained as a class so that
    it is learnt as a hard negative, but it is never reported as a finding.
    """

    backbone: str = "resnet18"
    norm_groups: int = 32  # GroupNorm groups (reduced per layer to a divisor of its channels)
    in_channels: int = 2
    classes: tuple[str, ...] = DEFAULT_CLASSES
    landmark: str = NIPPLE
    input_size: tuple[int, int] = (1024, 832)  # (rows, columns) of the model input
    finest_stride: int = 8  # 8: FPN levels P3–P6; 4: P2–P6 (slower, for tiny calcifications)
    fpn_channels: int = 128
    anchor_sizes: tuple[tuple[int, ...], ...] | None = None  # None: the default for the stride
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width
    rpn_fg_iou: float = 0.7
    rpn_bg_iou: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 1000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 300
    rpn_nms_iou: float = 0.7
    roi_fg_iou: float = 0.5
    roi_bg_iou: float = 0.5
    roi_batch_size_per_image: int = 256
    roi_positive_fraction: float = 0.25
    box_head_dim: int = 512
    malignancy_hidden: int = 128
    malignancy_loss_weight: float = 1.0
    score_threshold: float = 0.05
    nms_iou: float = 0.3  # class-agnostic: one lesion, one finding
    detections_per_image: int = 20
    nipple_score_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.finest_stride not in (4, 8):
            raise ValueError("finest_stride must be 4 or 8")
        if self.landmark not in self.classes:
            raise ValueError(f"the landmark class {self.landmark!r} must be one of the classes")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {self.classes}")
        unknown = set(self.lesion_classes) - set(LESION_CLASSES)
        if unknown:
            raise ValueError(
                f"lesion classes {sorted(unknown)} are not FindingLabel values {LESION_CLASSES}"
            )
        if self.anchor_sizes is None:
            default = _ANCHORS_STRIDE_8 if self.finest_stride == 8 else _ANCHORS_STRIDE_4
            object.__setattr__(self, "anchor_sizes", default)
        self._check_numbers()

    def _check_numbers(self) -> None:
        sizes = self.resolved_anchor_sizes
        if len(sizes) != len(self.feature_strides):
            raise ValueError(
                f"anchor_sizes has {len(sizes)} levels but the backbone gives "
                f"{len(self.feature_strides)} (strides {self.feature_strides})"
            )
        if len({len(level) for level in sizes}) != 1:
            raise ValueError("every FPN level needs the same number of anchor sizes")
        if self.in_channels < 1 or self.norm_groups < 1 or self.fpn_channels < 1:
            raise ValueError("in_channels, norm_groups and fpn_channels must be positive")
        rows, cols = self.input_size
        if rows < 32 or cols < 32:
            raise ValueError(f"input_size {self.input_size} is too small (at least 32×32)")
        for name in (
            "score_threshold",
            "nms_iou",
            "nipple_score_threshold",
            "rpn_nms_iou",
            "rpn_fg_iou",
            "rpn_bg_iou",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if self.rpn_bg_iou > self.rpn_fg_iou:
            raise ValueError(
                f"rpn_bg_iou {self.rpn_bg_iou} is above rpn_fg_iou {self.rpn_fg_iou}: an anchor "
                "cannot be background at an overlap that makes it a lesion"
            )

    @property
    def resolved_anchor_sizes(self) -> tuple[tuple[int, ...], ...]:
        if self.anchor_sizes is None:  # only before __post_init__ ran
            raise ValueError("anchor sizes are not resolved yet")
        return self.anchor_sizes

    @property
    def feature_strides(self) -> tuple[int, ...]:
        """Strides (input pixels per feature cell) of the FPN levels fed to the RPN."""
        return (4, 8, 16, 32, 64) if self.finest_stride == 4 else (8, 16, 32, 64)

    @property
    def landmark_index(self) -> int:
        return self.classes.index(self.landmark)

    @property
    def lesion_classes(self) -> tuple[str, ...]:
        return tuple(name for name in self.classes if name != self.landmark)

    @property
    def lesion_indices(self) -> tuple[int, ...]:
        return tuple(i for i, name in enumerate(self.classes) if name != self.landmark)

    def architecture(self) -> dict[str, Any]:
        """The :data:`ARCHITECTURE` settings: equal for two configs whose weights are
        interchangeable."""
        return {name: getattr(self, name) for name in ARCHITECTURE}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` restores an equal config."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Build from :meth:`to_dict` output (lists become tuples; unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown detector settings {sorted(unknown)}: the bundle was written by a newer "
                "mammocad; upgrade mammocad to load it"
            )
        values = dict(data)
        for key in ("classes", "input_size", "aspect_ratios"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("anchor_sizes") is not None:
            values["anchor_sizes"] = tuple(tuple(level) for level in values["anchor_sizes"])
        return cls(**values)
