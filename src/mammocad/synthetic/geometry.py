"""Breast outlines for CC and MLO, and the breast frame that links the two views.

Everything here is in millimetres on the *canonical* grid of a view: chest wall on the left
image edge (x = 0), nipple pointing right; on CC the lateral side is up, on MLO the superior
side (axilla, pectoral muscle) is up. Rendering mirrors right breasts afterwards.

A lesion is placed in the breast frame by its ``depth`` (distance from the nipple towards the
chest wall along the nipple axis) and an offset across that axis: the medial-lateral offset on
CC, and on MLO the projection of the superior-inferior and medial-lateral offsets on the oblique
detector plane (PS3.3 C.8.11.7 describes the views; the obliquity is the C-arm angle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from mammocad.structures import ViewPosition
from mammocad.synthetic.variants import Grid

PointsMm = npt.NDArray[np.float64]  # float64[N, 2] of (x, y) in mm on the canonical grid


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastShape:
    """Size and shape of one compressed breast, shared by its CC and MLO views (mm, degrees)."""

    cc_depth_mm: float  # chest wall to nipple on CC
    width_mm: float  # CC extent across the nipple axis at the chest wall
    top_share: float  # share of the CC width above the nipple axis (lateral side)
    exponent: float  # superellipse exponent: 2 is an ellipse, larger is boxier
    cc_tilt_deg: float
    mlo_depth_mm: float
    mlo_nipple_share: float  # height of the MLO nipple / image height
    mlo_top_mm: float  # extent of the upper outline above the nipple (runs off the top edge)
    mlo_bottom_share: float  # height where the lower outline meets the chest wall / image height
    mlo_top_exponent: float  # < 2: straight axillary border from the axilla to the nipple
    mlo_droop_mm: float  # how far the anterior breast sags below the superellipse
    pectoral_width_share: float  # pectoral width at the top edge / image width
    pectoral_height_share: float  # pectoral height on the chest wall / image height
    pectoral_curve: float  # < 1: convex muscle edge
    obliquity_deg: float  # C-arm angle of the MLO
    thickness_mm: float  # compressed thickness (Body Part Thickness)
    nipple_mm: float  # nipple diameter


def sample_breast_shape(rng: np.random.Generator, grid: Grid) -> BreastShape:
    """Draw a plausible breast for ``grid``'s field of view (about 23 × 18 cm)."""
    height, width = grid.height_mm, grid.width_mm
    cc_depth = width * rng.uniform(0.42, 0.8)
    return BreastShape(
        cc_depth_mm=cc_depth,
        width_mm=height * rng.uniform(0.55, 0.88),
        top_share=rng.uniform(0.45, 0.56),
        exponent=rng.uniform(1.9, 2.6),
        cc_tilt_deg=rng.uniform(-4.0, 4.0),
        mlo_depth_mm=min(cc_depth * rng.uniform(1.02, 1.15), width * 0.86),
        mlo_nipple_share=rng.uniform(0.46, 0.6),
        mlo_top_mm=height * rng.uniform(0.55, 0.72),
        mlo_bottom_share=rng.uniform(0.86, 1.02),
        mlo_top_exponent=rng.uniform(1.35, 1.8),
        mlo_droop_mm=rng.uniform(0.0, 18.0),
        pectoral_width_share=rng.uniform(0.16, 0.32),
        pectoral_height_share=rng.uniform(0.32, 0.58),
        pectoral_curve=rng.uniform(0.7, 1.05),
        obliquity_deg=rng.uniform(40.0, 60.0),
        thickness_mm=rng.uniform(35.0, 75.0),
        nipple_mm=rng.uniform(6.0, 11.0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewGeometry:
    """Outline of one view on its canonical grid; all lengths in mm.

    ``outline`` is the closed breast polygon (it may run past the image edges: the body goes
    on beyond the chest wall edge, and the axilla beyond the top edge on MLO). ``nipple`` is
    the most anterior point of the skin, on the nipple itself.
    """

    view: ViewPosition
    height_mm: float
    width_mm: float
    outline: PointsMm
    skin: PointsMm  # the skin part of the outline, from the top end to the bottom end
    nipple: tuple[float, float]
    nipple_mm: float
    pectoral: PointsMm | None
    obliquity_deg: float

    def offset_mm(self, lateral_mm: float, superior_mm: float) -> float:
        """Up-offset from the nipple axis of a lesion at the given breast-frame offsets."""
        if self.view is ViewPosition.CC:
            return lateral_mm
        angle = math.radians(self.obliquity_deg)
        return superior_mm * math.cos(angle) + lateral_mm * math.sin(angle)

    def point_mm(self, depth_mm: float, offset_mm: float) -> tuple[float, float]:
        """Canonical (x, y) in mm of a point ``depth_mm`` behind the nipple, ``offset_mm`` up."""
        return self.nipple[0] - depth_mm, self.nipple[1] - offset_mm

    def skin_point(self, depth_mm: float, upper: bool) -> tuple[float, float] | None:
        """Point of the skin ``depth_mm`` behind the nipple, above or below the nipple axis."""
        x_target = self.nipple[0] - depth_mm
        side = self.skin[:, 1] < self.nipple[1] if upper else self.skin[:, 1] > self.nipple[1]
        candidates = self.skin[side]
        if len(candidates) == 0:
            return None
        best = candidates[np.argmin(np.abs(candidates[:, 0] - x_target))]
        if abs(best[0] - x_target) > 2.0:
            return None
        return float(best[0]), float(best[1])


def _half_superellipse(
    depth: float, top: float, bottom: float, exponents: tuple[float, float], n: int = 2001
) -> PointsMm:
    """Points from the top end (0, −top) through the apex (depth, 0) to (0, bottom); the upper
    and lower halves may have different exponents (the MLO axillary side is straighter)."""
    t = np.linspace(-math.pi / 2, math.pi / 2, n)
    power = np.where(t < 0, 2.0 / exponents[0], 2.0 / exponents[1])
    x = depth * np.abs(np.cos(t)) ** power
    y = np.where(t < 0, -top, bottom) * np.abs(np.sin(t)) ** power
    return np.stack([x, y], axis=1)


def _rotate(points: PointsMm, degrees: float) -> PointsMm:
    """Rotate about the origin; positive turns +x towards +y (down on the image)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return points @ np.array([[c, s], [-s, c]])


def _with_nipple(skin: PointsMm, nipple_mm: float) -> tuple[PointsMm, tuple[float, float]]:
    """Add a small protrusion at the most anterior skin point; return skin and nipple tip."""
    apex = int(np.argmax(skin[:, 0]))
    ax, ay = skin[apex]
    half = nipple_mm / 2
    dist = np.abs(skin[:, 1] - ay)
    height = 0.3 * nipple_mm
    bump = height * np.clip(1 - (dist / half) ** 2, 0, None) ** 0.5
    bumped = skin.copy()
    bumped[:, 0] = np.maximum(skin[:, 0], np.where(dist < half, ax + bump - 0.3, -np.inf))
    return bumped, (float(ax + height - 0.3), float(ay))


def _close(skin: PointsMm) -> PointsMm:
    """Close the skin curve behind the chest wall edge (x < 0), where the body continues."""
    far = min(float(skin[:, 0].min()), 0.0) - 50.0
    tail = np.array([[far, skin[-1, 1]], [far, skin[0, 1]]])
    return np.concatenate([skin, tail])


def cc_geometry(shape: BreastShape, grid: Grid, *, centre_mm: float | None = None) -> ViewGeometry:
    """CC outline: a half superellipse on the chest wall, lateral side up."""
    centre = grid.height_mm / 2 if centre_mm is None else centre_mm
    skin = _half_superellipse(
        shape.cc_depth_mm,
        shape.width_mm * shape.top_share,
        shape.width_mm * (1 - shape.top_share),
        (shape.exponent, shape.exponent),
    )
    skin = _rotate(skin, shape.cc_tilt_deg) + np.array([0.0, centre])
    skin, nipple = _with_nipple(skin, shape.nipple_mm)
    return ViewGeometry(
        view=ViewPosition.CC,
        height_mm=grid.height_mm,
        width_mm=grid.width_mm,
        outline=_close(skin),
        skin=skin,
        nipple=nipple,
        nipple_mm=shape.nipple_mm,
        pectoral=None,
        obliquity_deg=0.0,
    )


def _pectoral(shape: BreastShape, grid: Grid) -> PointsMm:
    """Pectoral muscle: a triangle with a convex edge in the top chest-wall corner."""
    top = shape.pectoral_width_share * grid.width_mm
    height = shape.pectoral_height_share * grid.height_mm
    y = np.linspace(0.0, height, 64)
    x = top * (1 - y / height) ** shape.pectoral_curve
    edge = np.stack([x, y], axis=1)
    corner = np.array([[-50.0, height + 1.0], [-50.0, -50.0], [top + 2.0, -50.0]])
    return np.concatenate([edge, corner])


def mlo_geometry(
    shape: BreastShape, grid: Grid, *, depth_mm: float | None = None, shift_mm: float = 0.0
) -> ViewGeometry:
    """MLO outline: the axillary border runs straight from the top edge down to the nipple, the
    lower breast sags and turns back to the chest wall at the inframammary fold."""
    depth = shape.mlo_depth_mm if depth_mm is None else depth_mm
    nipple_y = shape.mlo_nipple_share * grid.height_mm - shape.mlo_droop_mm + shift_mm
    bottom = max(shape.mlo_bottom_share * grid.height_mm + shift_mm - nipple_y, 20.0)
    skin = _half_superellipse(
        depth, shape.mlo_top_mm, bottom, (shape.mlo_top_exponent, shape.exponent)
    )
    # the sag grows towards the nipple and vanishes at the chest wall
    skin[:, 1] += shape.mlo_droop_mm * (skin[:, 0] / depth) ** 2
    skin = skin + np.array([0.0, nipple_y])
    skin, nipple = _with_nipple(skin, shape.nipple_mm)
    return ViewGeometry(
        view=ViewPosition.MLO,
        height_mm=grid.height_mm,
        width_mm=grid.width_mm,
        outline=_close(skin),
        skin=skin,
        nipple=nipple,
        nipple_mm=shape.nipple_mm,
        pectoral=_pectoral(shape, grid),
        obliquity_deg=shape.obliquity_deg,
    )


def view_geometry(
    shape: BreastShape, grid: Grid, view: ViewPosition, *, cut_off: str | None = None
) -> ViewGeometry:
    """The outline of ``view``; ``cut_off`` ("anterior" or "vertical") pushes the breast past
    the image edge on purpose (a positioning defect)."""
    depth = shape.cc_depth_mm if view is ViewPosition.CC else shape.mlo_depth_mm
    if cut_off == "anterior":
        # nipple 5-20 % of the breast depth beyond the anterior edge
        depth = grid.width_mm + depth * 0.12
    # a vertical cut-off slides the breast so that a quarter to a third of it leaves the image
    shift = 0.28 * grid.height_mm if cut_off == "vertical" else 0.0
    if view is ViewPosition.CC:
        centre = grid.height_mm / 2 + shift
        return cc_geometry(replace(shape, cc_depth_mm=depth), grid, centre_mm=centre)
    if view is ViewPosition.MLO:
        return mlo_geometry(shape, grid, depth_mm=depth, shift_mm=shift)
    raise ValueError(f"the phantom renders CC and MLO views only, not {view.value}")
