"""Where a finding lies in its breast: distance from the nipple and size, in millimetres.

Radiologists match a lesion across the CC and MLO views of one breast by its distance from
the nipple, which compression changes little between the two projections: studies of
two-view correspondence (e.g. Paquerault et al., Med. Phys. 29(2), 2002) found the radial
nipple distances of the same lesion to agree within about 1–2 cm in most cases.
:mod:`mammocad.fuse.link` therefore compares these distances first.

The nipple of an image is, in order of preference:

1. the detector's nipple landmark (the pipeline puts it into ``PreprocessedImage.nipple``);
2. preprocessing's estimate, the most anterior point of the breast contour (skin-line apex),
   already in ``PreprocessedImage.nipple`` when the detector found none;
3. when both are missing (nipple off the image, odd contour): the middle of the breast
   box's edge opposite the chest wall — the anterior edge of the breast — which is where the
   nipple lies on a well-positioned view.

All points and boxes are in ORIGINAL pixels; millimetres use the image's Pixel Spacing, or
when the file has none (PNG input) its height taken as
:data:`~mammocad.structures.ASSUMED_FIELD_MM` — distances then compare correctly between the
views of one study (same detector), only the millimetre gates are approximate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mammocad.structures import Finding, PreprocessedImage, ViewPosition

#: Projections grouped as the two sides of the cross-view match: craniocaudal-like and
#: lateral/oblique-like (PS3.3 C.8.11.7 View Position values).
CC_LIKE = frozenset({ViewPosition.CC, ViewPosition.XCCL, ViewPosition.XCCM})
MLO_LIKE = frozenset({ViewPosition.MLO, ViewPosition.ML, ViewPosition.LM})


class NippleSource:
    """Where a :class:`ViewFrame`'s nipple came from: ``landmark`` (the detector's or
    preprocessing's nipple) or ``anterior_edge`` (the breast-box fallback)."""

    LANDMARK = "landmark"
    ANTERIOR_EDGE = "anterior_edge"


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewFrame:
    """One image's reference for distances: ``nipple`` ``(x, y)`` in ORIGINAL pixels and the
    pixel spacing ``(row, column)`` in mm."""

    nipple: tuple[float, float]
    spacing_mm: tuple[float, float]
    nipple_source: str

    @classmethod
    def of(cls, item: PreprocessedImage) -> ViewFrame:
        spacing = item.image.spacing_or_assumed_mm
        if item.nipple is not None:
            return cls(nipple=item.nipple, spacing_mm=spacing, nipple_source=NippleSource.LANDMARK)
        x1, y1, x2, y2 = item.breast_box
        # the chest wall is on the right of the original grid when the image was mirrored
        anterior_x = x1 if item.chest_wall_on_right else x2
        return cls(
            nipple=(anterior_x, (y1 + y2) / 2.0),
            spacing_mm=spacing,
            nipple_source=NippleSource.ANTERIOR_EDGE,
        )

    def nipple_distance_mm(self, box: tuple[float, float, float, float]) -> float:
        """Distance from the nipple to the centre of ``box`` (ORIGINAL pixels), in mm."""
        row_mm, col_mm = self.spacing_mm
        dx = ((box[0] + box[2]) / 2.0 - self.nipple[0]) * col_mm
        dy = ((box[1] + box[3]) / 2.0 - self.nipple[1]) * row_mm
        return math.hypot(dx, dy)

    def size_mm(self, box: tuple[float, float, float, float]) -> float:
        """Geometric mean of the box's width and height, in mm (at least 0.1 mm)."""
        row_mm, col_mm = self.spacing_mm
        width = max(box[2] - box[0], 0.0) * col_mm
        height = max(box[3] - box[1], 0.0) * row_mm
        return max(math.sqrt(width * height), 0.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacedFinding:
    """A finding with what linking and fusion need: its ``view`` (CC or MLO side of the
    match), ``nipple_distance_mm``, ``size_mm``, ``features`` (``float32[D]`` RoI
    representation, ``None`` when the detector gave none) and whether it is ``reported``
    (a finding in the result) or only a fusion candidate (below the finding threshold or past
    the per-image cap)."""

    finding: Finding
    view: ViewPosition
    nipple_distance_mm: float
    size_mm: float
    features: npt.NDArray[np.float32] | None = None
    reported: bool = True

    @property
    def is_cc(self) -> bool:
        return self.view in CC_LIKE

    @classmethod
    def place(
        cls,
        finding: Finding,
        *,
        view: ViewPosition,
        frame: ViewFrame,
        features: npt.NDArray[np.float32] | None = None,
        reported: bool = True,
    ) -> PlacedFinding:
        return cls(
            finding=finding,
            view=view,
            nipple_distance_mm=frame.nipple_distance_mm(finding.box),
            size_mm=frame.size_mm(finding.box),
            features=features,
            reported=reported,
        )
