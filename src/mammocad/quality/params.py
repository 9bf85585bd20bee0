"""Thresholds of the heuristic quality gate, stored in a model bundle's manifest.

Frozen keyword-only dataclass that round-trips through plain JSON (:meth:`QualityParams.to_dict`
/ :meth:`QualityParams.from_dict`); ``from_dict`` is strict like the preprocessing parameters:
an unknown or missing key is an error, never a silent default. docs/quality.md says how each
threshold was calibrated (phantom defects from :mod:`mammocad.synthetic` and the real films in
``shared/data``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from mammocad.structures import ASSUMED_FIELD_MM


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityParams:
    """Every knob of :func:`mammocad.quality.assess_quality`.

    Measurements are made on a copy resampled to ``work_spacing_mm`` so that thresholds mean the
    same at any detector pitch; ``assumed_field_mm`` gives the pixel spacing of a file that
    carries none (image height / field height, a typical 24 cm detector or film).
    """

    work_spacing_mm: float = 0.4
    assumed_field_mm: float = ASSUMED_FIELD_MM
    erosion_mm: float = 3.0  # texture is measured this far inside the skin line
    # neighbour correlation of the tissue pixels: anatomy is smooth at 0.4 mm (>= 0.9 on every
    # phantom and film), detector read-out noise is not (about 0)
    min_neighbour_correlation: float = 0.6
    min_spread: float = 0.02  # 5th-95th percentile spread of the tissue: below is blank
    clipped_share: float = 0.3  # share of tissue clipped black (over) or white (under)
    max_dark_p95: float = 0.35  # burned out: even the densest tissue stays this dark
    min_bright_p5: float = 0.85  # under-exposed: even the fattest tissue is this bright
    # the breast touching the bottom (MLO) or top/bottom (CC) edge, as a share of its width
    cut_off_mlo_bottom: float = 0.82
    cut_off_cc_edge: float = 0.3
    min_pectoral_share: float = 0.005  # of the tissue, on lateral views
    # motion blur (all three): fine over coarse Laplacian energy below ``max_blur_sharpness``
    # (benchmark phantoms: good 0.385-0.44, blurred 0.22-0.34), the fine residual correlated
    # along one direction (``min_smear_along``; good <= 0.48, blurred >= 0.59) but less across
    # it (``min_smear_anisotropy``; good <= 0.37, blurred >= 0.49), and never anti-correlated
    # (``min_smear_across``: film scanner line artefacts reach -0.31 on mini-MIAS); and the
    # correlation along still >= ``min_smear_along`` once what is constant along a row or
    # column over ``scanner_line_mm`` is taken out: a digitiser's scanner lines run the length
    # of the film, a 1.5-4 mm smear does not (mini-MIAS films meeting the other three: <= 0.52
    # after; blurred copies and phantoms they catch: >= 0.57; benchmarks/quality_lines.py)
    max_blur_sharpness: float = 0.35
    min_smear_along: float = 0.55
    min_smear_anisotropy: float = 0.42
    min_smear_across: float = -0.05
    scanner_line_mm: float = 16.0
    implant_level: float = 0.93  # display value of a radiopaque implant
    implant_share: float = 0.08  # share of the tissue that is flat and that bright
    expected_views: tuple[str, ...] = ("CC", "MLO")
    warning_penalty: float = 0.2
    error_penalty: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "work_spacing_mm",
            "assumed_field_mm",
            "erosion_mm",
            "max_blur_sharpness",
            "scanner_line_mm",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "min_neighbour_correlation",
            "min_spread",
            "clipped_share",
            "max_dark_p95",
            "min_bright_p5",
            "cut_off_mlo_bottom",
            "cut_off_cc_edge",
            "min_pectoral_share",
            "min_smear_along",
            "min_smear_anisotropy",
            "implant_level",
            "implant_share",
            "warning_penalty",
            "error_penalty",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        if not -1.0 <= self.min_smear_across <= 1.0:
            raise ValueError(f"min_smear_across must lie in [-1, 1], got {self.min_smear_across!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (a list for ``expected_views``)."""
        data = asdict(self)
        data["expected_views"] = list(self.expected_views)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on unknown or missing keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"quality parameters must be a mapping, got {type(data).__name__}")
        names = {item.name for item in fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ValueError(
                f"quality parameters do not match this mammocad version (unknown: {unknown}, "
                f"missing: {missing}); use the mammocad release the model bundle was made with"
            )
        values = dict(data)
        values["expected_views"] = tuple(values["expected_views"])
        return cls(**values)
