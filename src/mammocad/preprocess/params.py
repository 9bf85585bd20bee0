"""Preprocessing parameters, stored in a model bundle's manifest.

The preprocessing used at inference must be the one the model was trained with, so every knob
lives here, in frozen keyword-only dataclasses that round-trip through plain JSON
(:meth:`PreprocessParams.to_dict` / :meth:`PreprocessParams.from_dict`). ``from_dict`` is
strict: an unknown or a missing key is an error, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, Self, TypeVar

_T = TypeVar("_T")


class SecondChannelMethod(StrEnum):
    """How channel 1 of the model input is made (see :mod:`mammocad.preprocess.channels`)."""

    CLAHE = "clahe"  # contrast-limited adaptive histogram equalisation inside the tissue
    DENSE_WINDOW = "dense_window"  # a second linear window over the densest tissue values


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TissueParams:
    """Breast (tissue) segmentation, done on a copy reduced to at most ``work_size`` pixels.

    The threshold sits ``threshold_fraction`` of the way from the background level to the median
    tissue value, and never below ``noise_sigmas`` background noise widths: tuned on the DDSM
    tissue masks (docs/preprocessing.md), where human skin lines sit just above the scanner halo.
    """

    work_size: int = 512
    threshold_fraction: float = 0.15
    noise_sigmas: float = 3.0
    opening_fraction: float = 0.014  # opening kernel, as a fraction of the working long side
    min_tissue_fraction: float = 0.01  # below this share of the image: no breast found

    def __post_init__(self) -> None:
        if self.work_size < 64:
            raise ValueError(f"work_size must be at least 64 pixels, got {self.work_size}")
        _check_unit("threshold_fraction", self.threshold_fraction)
        _check_positive("noise_sigmas", self.noise_sigmas)
        _check_unit("opening_fraction", self.opening_fraction)
        _check_unit("min_tissue_fraction", self.min_tissue_fraction)


@dataclass(frozen=True, slots=True, kw_only=True)
class PectoralParams:
    """Pectoral-muscle search on lateral views (MLO, ML, LM), chest wall on the left.

    The muscle edge is searched as a straight line from the top edge to the chest wall within
    the top ``max_height`` of the breast height and the left ``max_width`` of its width, then
    refined row by row.
    """

    max_height: float = 0.85
    max_width: float = 0.8
    min_slope: float = 0.9  # the edge's height / width on the image, at least
    # mean brightness step across the edge / the breast's 10th-90th percentile spread; the
    # weakest true edge on the DDSM masks scores 0.062 (docs/preprocessing.md)
    min_relative_contrast: float = 0.05

    def __post_init__(self) -> None:
        _check_positive("min_slope", self.min_slope)
        _check_unit("max_height", self.max_height)
        _check_unit("max_width", self.max_width)
        _check_unit("min_relative_contrast", self.min_relative_contrast)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecondChannelParams:
    """Channel 1 of the model input; docs/preprocessing.md says why CLAHE is the default."""

    method: SecondChannelMethod = SecondChannelMethod.CLAHE
    clahe_clip_limit: float = 2.0
    clahe_tiles: tuple[int, int] = (8, 8)  # (rows, columns) of tiles over the breast content
    window_low_percentile: float = 50.0  # DENSE_WINDOW: tissue percentile mapped to 0
    window_high_percentile: float = 99.5  # DENSE_WINDOW: tissue percentile mapped to 1

    def __post_init__(self) -> None:
        _check_positive("clahe_clip_limit", self.clahe_clip_limit)
        if len(self.clahe_tiles) != 2 or min(self.clahe_tiles) < 1:
            raise ValueError(f"clahe_tiles must be two positive integers, got {self.clahe_tiles}")
        if not 0.0 <= self.window_low_percentile < self.window_high_percentile <= 100.0:
            raise ValueError(
                "window percentiles must satisfy 0 <= low < high <= 100, got "
                f"{self.window_low_percentile} and {self.window_high_percentile}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessParams:
    """Everything :func:`mammocad.preprocess.preprocess_image` needs besides the image.

    ``input_size`` is the (rows, columns) of the padded model input; the breast keeps its aspect
    ratio and sits at the top-left, padded right and bottom. ``crop_margin`` is added around the
    tissue bounding box, as a fraction of the box's longer side.
    """

    input_size: tuple[int, int] = (1024, 832)
    crop_margin: float = 0.02
    tissue: TissueParams = field(default_factory=TissueParams)
    pectoral: PectoralParams = field(default_factory=PectoralParams)
    second_channel: SecondChannelParams = field(default_factory=SecondChannelParams)

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ValueError(f"input_size must be (rows, columns) >= 32, got {self.input_size}")
        _check_unit("crop_margin", self.crop_margin)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists for tuples, strings for enums)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on unknown or missing keys."""
        return _from_plain(cls, data, "preprocessing")


_NESTED: dict[str, type] = {
    "tissue": TissueParams,
    "pectoral": PectoralParams,
    "second_channel": SecondChannelParams,
}


def _to_plain(obj: object) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, item.name)
        if item.name in _NESTED:
            value = _to_plain(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        result[item.name] = value
    return result


def _from_plain(cls: type[_T], data: Mapping[str, Any], where: str) -> _T:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} parameters must be a mapping, got {type(data).__name__}")
    names = {item.name: item for item in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    missing = sorted(set(names) - set(data))
    if unknown or missing:
        raise ValueError(
            f"{where} parameters do not match this mammocad version (unknown: {unknown}, "
            f"missing: {missing}); use the mammocad release the model bundle was made with"
        )
    values: dict[str, Any] = {}
    for name, raw in data.items():
        if name in _NESTED:
            values[name] = _from_plain(_NESTED[name], raw, f"{where}.{name}")
        elif name == "method":
            values[name] = SecondChannelMethod(raw)
        elif isinstance(raw, list):
            values[name] = tuple(raw)
        else:
            values[name] = raw
    return cls(**values)
