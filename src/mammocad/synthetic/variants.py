"""Vendor-style variants of the written files, chosen per study from the seed.

Real mammograms differ between vendors in ways a reader must cope with: photometric
interpretation, the VOI transformation, bit depth, transfer syntax, which laterality and view
attributes are present, and on which side a right breast is stored. A variant fixes one choice
on every axis for one study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from mammocad.errors import SynthesisError
from mammocad.synthetic.enum import PhotometricInterpretation, TagStyle, VoiKind

Size = Literal["small", "full"]
SIZES: tuple[str, ...] = ("small", "full")

#: Lossless transfer syntaxes a variant may use (DICOM PS3.5 Section 10 and Annex A.4).
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    ExplicitVRLittleEndian,
)
BITS_STORED: tuple[int, ...] = (12, 14, 16)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """Detector pixel grid: ``rows`` × ``columns`` pixels of ``spacing_mm`` (square pixels)."""

    name: str
    rows: int
    columns: int
    spacing_mm: float
    manufacturer: str
    model_name: str

    @property
    def height_mm(self) -> float:
        return self.rows * self.spacing_mm

    @property
    def width_mm(self) -> float:
        return self.columns * self.spacing_mm


# Field of view of both real grids is about 23 cm × 18-19 cm; the small grid keeps that field
# with ~5× coarser pixels so a whole study renders in a fraction of a second.
HOLOGIC_LIKE = Grid(
    name="hologic_like",
    rows=3328,
    columns=2560,
    spacing_mm=0.07,
    manufacturer="mammocad phantom",
    model_name="Selenia-like 3328x2560",
)
GE_LIKE = Grid(
    name="ge_like",
    rows=2294,
    columns=1914,
    spacing_mm=0.1,
    manufacturer="mammocad phantom",
    model_name="Senographe-like 2294x1914",
)
SMALL = Grid(
    name="small",
    rows=640,
    columns=512,
    spacing_mm=0.364,
    manufacturer="mammocad phantom",
    model_name="small 640x512",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """Every vendor-dependent choice for the files of one study.

    ``right_chest_wall_left`` is the quirk of some vendors that store right breasts with the
    chest wall on the left image edge (the usual hanging puts it on the right).
    """

    grid: Grid
    photometric: PhotometricInterpretation
    voi: VoiKind
    bits_stored: int
    transfer_syntax_uid: str
    tag_style: TagStyle
    right_chest_wall_left: bool
    burned_in_label: bool
    lead_marker: bool

    def __post_init__(self) -> None:
        if self.bits_stored not in BITS_STORED:
            raise SynthesisError(
                f"bits_stored must be one of {BITS_STORED}, got {self.bits_stored}"
            )
        if self.transfer_syntax_uid not in TRANSFER_SYNTAXES:
            names = ", ".join(UID(uid).name for uid in TRANSFER_SYNTAXES)
            raise SynthesisError(
                f"transfer syntax {self.transfer_syntax_uid} is not one the phantom writes;"
                f" use one of: {names}"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "grid": self.grid.name,
            "manufacturer_model_name": self.grid.model_name,
            "photometric_interpretation": self.photometric.value,
            "voi": self.voi.value,
            "bits_stored": self.bits_stored,
            "transfer_syntax_uid": str(self.transfer_syntax_uid),
            "transfer_syntax": UID(self.transfer_syntax_uid).name,
            "tag_style": self.tag_style.value,
            "right_chest_wall_left": self.right_chest_wall_left,
            "burned_in_label": self.burned_in_label,
            "lead_marker": self.lead_marker,
        }


GRIDS: dict[str, Grid] = {grid.name: grid for grid in (HOLOGIC_LIKE, GE_LIKE, SMALL)}


def variant_from_dict(data: dict[str, object]) -> Variant:
    """Inverse of :meth:`Variant.to_dict` (for reading ``truth.json``)."""
    return Variant(
        grid=GRIDS[str(data["grid"])],
        photometric=PhotometricInterpretation(str(data["photometric_interpretation"])),
        voi=VoiKind(str(data["voi"])),
        bits_stored=int(str(data["bits_stored"])),
        transfer_syntax_uid=str(data["transfer_syntax_uid"]),
        tag_style=TagStyle(str(data["tag_style"])),
        right_chest_wall_left=bool(data["right_chest_wall_left"]),
        burned_in_label=bool(data["burned_in_label"]),
        lead_marker=bool(data["lead_marker"]),
    )


def grid_for(size: str, rng: np.random.Generator) -> Grid:
    """The pixel grid for ``size``: ``small``, or one of the two real grids for ``full``."""
    if size == "small":
        return SMALL
    if size == "full":
        return HOLOGIC_LIKE if rng.random() < 0.5 else GE_LIKE
    raise SynthesisError(f"size must be one of {SIZES}, got {size!r}")


def choose_variant(size: str, rng: np.random.Generator) -> Variant:
    """Draw one variant; every axis independently so all combinations occur."""
    grid = grid_for(size, rng)
    return Variant(
        grid=grid,
        photometric=PhotometricInterpretation(
            rng.choice([p.value for p in PhotometricInterpretation], p=[0.3, 0.7])
        ),
        voi=VoiKind(rng.choice([v.value for v in VoiKind], p=[0.5, 0.25, 0.25])),
        bits_stored=int(rng.choice(BITS_STORED, p=[0.5, 0.3, 0.2])),
        transfer_syntax_uid=TRANSFER_SYNTAXES[int(rng.integers(len(TRANSFER_SYNTAXES)))],
        tag_style=TagStyle(rng.choice([t.value for t in TagStyle], p=[0.6, 0.2, 0.2])),
        right_chest_wall_left=bool(rng.random() < 0.15),
        burned_in_label=bool(rng.random() < 0.5),
        lead_marker=bool(rng.random() < 0.4),
    )
