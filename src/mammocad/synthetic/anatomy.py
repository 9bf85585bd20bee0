"""Normal anatomy of one view: breast coverage, skin, fibroglandular tissue, pectoral muscle.

Intensities are those of a presentation image (DICOM PS3.3 C.8.11.7: FOR PRESENTATION):
0 is black (air, background), fat is dark grey, fibroglandular tissue and muscle are light,
calcium is white. Smooth fields are made on a coarse work grid (≈0.36 mm) and upsampled; edges,
skin and noise are made on the output grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mammocad.structures import FloatArray
from mammocad.synthetic.geometry import PointsMm, ViewGeometry
from mammocad.synthetic.texture import (
    fine_texture,
    glandular_fraction_field,
    power_law_noise,
    radial_noise,
    smoothstep,
)

WORK_SPACING_MM = 0.364
# fine texture and vessels need ~0.15 mm detail, not the 0.07 mm of the finest detector grid
DETAIL_SPACING_MM = 0.14
_SHIFT = 4  # sub-pixel bits for cv2.fillPoly


def rasterize(polygon: PointsMm, rows: int, cols: int, spacing_mm: float) -> FloatArray:
    """Anti-aliased coverage in [0, 1] of a polygon given in mm (pixel-edge coordinates)."""
    # OpenCV puts integer coordinates at pixel centres, hence the half-pixel shift
    points = np.round((polygon / spacing_mm - 0.5) * (1 << _SHIFT)).astype(np.int32)
    canvas = np.zeros((rows, cols), dtype=np.uint8)
    cv2.fillPoly(canvas, [points], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return canvas.astype(np.float32) / 255.0


def distance_mm(coverage: FloatArray, spacing_mm: float) -> FloatArray:
    """Distance in mm from each breast pixel to the skin (0 outside the breast).

    OpenCV counts the image border as inside, which is right here: the breast goes on past
    the chest wall edge and, on MLO, past the axilla at the top.
    """
    inside = (coverage > 0.5).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5) * np.float32(spacing_mm)
    # a binary mask's distance steps by whole pixels along oblique edges; smooth the steps
    smooth = np.asarray(cv2.GaussianBlur(distance, (0, 0), 1.0), dtype=np.float32)
    return smooth * (inside > 0)


def pixel_grid_mm(rows: int, cols: int, spacing_mm: float) -> tuple[FloatArray, FloatArray]:
    """x and y (mm) of pixel centres."""
    xs = (np.arange(cols, dtype=np.float32) + 0.5) * spacing_mm
    ys = (np.arange(rows, dtype=np.float32) + 0.5) * spacing_mm
    return xs[None, :], ys[:, None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Appearance:
    """Grey levels of one breast (display units) and its glandular share."""

    glandular_fraction: float
    fat_level: float
    gland_span: float
    edge_mm: float
    skin_mm: float
    skin_gain: float
    pectoral_level: float
    noise_sigma: float


def sample_appearance(rng: np.random.Generator, glandular_fraction: float) -> Appearance:
    return Appearance(
        glandular_fraction=float(np.clip(glandular_fraction + rng.normal(0, 0.04), 0.04, 0.95)),
        fat_level=rng.uniform(0.24, 0.34),
        gland_span=rng.uniform(0.4, 0.5),
        edge_mm=rng.uniform(7.0, 14.0),
        skin_mm=rng.uniform(1.0, 1.8),
        skin_gain=rng.uniform(0.08, 0.14),
        pectoral_level=rng.uniform(0.52, 0.68),
        noise_sigma=rng.uniform(0.006, 0.012),
    )


@dataclass(slots=True, kw_only=True)
class Anatomy:
    """Layers of one view on the output grid (canonical orientation), ``float32[rows, cols]``."""

    coverage: FloatArray  # breast (incl. nipple) coverage, anti-aliased
    distance: FloatArray  # mm to the skin
    thick: FloatArray  # relative tissue thickness: < 1 in the thinner periphery
    pectoral: FloatArray | None  # pectoral muscle coverage (MLO)
    gland: FloatArray  # fibroglandular share in [0, 1]
    spacing_mm: float


def _envelope(geom: ViewGeometry, shape: tuple[int, int], spacing: float) -> FloatArray:
    """Where glandular tissue gathers: behind the nipple, centrally, away from skin and chest."""
    xs, ys = pixel_grid_mm(*shape, spacing)
    nx, ny = geom.nipple
    depth = max(nx, 20.0)
    top = max(float(geom.skin[:, 1].min()), 0.0)
    bottom = min(float(geom.skin[:, 1].max()), geom.height_mm)
    sigma_v = 0.32 * max(bottom - top, 40.0)
    u = (nx - xs) - 0.42 * depth
    v = ys - (ny - 0.08 * sigma_v)  # a little towards lateral / superior
    return np.exp(-0.5 * (u / (0.4 * depth)) ** 2 - 0.5 * (v / sigma_v) ** 2).astype(np.float32)


def _gland_work(
    geom: ViewGeometry, appearance: Appearance, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Glandular share and relative thickness on the work grid."""
    spacing = WORK_SPACING_MM
    shape = (math.ceil(geom.height_mm / spacing), math.ceil(geom.width_mm / spacing))
    coverage = rasterize(geom.outline, *shape, spacing)
    distance = distance_mm(coverage, spacing)
    envelope = _envelope(geom, shape, spacing) * smoothstep(distance, 1.5, 14.0)
    xs, _ = pixel_grid_mm(*shape, spacing)
    envelope *= smoothstep(xs, 2.0, 16.0)  # retroglandular fat in front of the chest wall
    if geom.pectoral is not None:
        pectoral = rasterize(geom.pectoral, *shape, spacing)
        envelope *= 1.0 - cv2.GaussianBlur(pectoral, (0, 0), 12.0 / spacing)
    centre = (geom.nipple[0] / spacing, geom.nipple[1] / spacing)
    radial = radial_noise(shape, centre=centre, rng=rng, spacing_mm=spacing)
    # the polar grid converges on the nipple: fade it out there, or every nipple would look
    # like a spiculated lesion
    xs, ys = pixel_grid_mm(*shape, spacing)
    near = smoothstep(np.hypot(xs - geom.nipple[0], ys - geom.nipple[1]), 8.0, 35.0)
    blobs = power_law_noise(shape, rng=rng, spacing_mm=spacing, stretch=1.6)
    score = 0.8 * near * radial + 0.6 * blobs + 2.2 * envelope
    gland = glandular_fraction_field(
        score, coverage > 0.5, appearance.glandular_fraction, softness=0.45
    )
    # dense tissue is not uniform: thinner and thicker parts, overlapping structures
    grain = power_law_noise(shape, rng=rng, spacing_mm=spacing, beta=3.2, largest_mm=25.0)
    textured = gland * (0.84 + 0.16 * np.tanh(grain)) + 0.05 * np.tanh(blobs)
    # compressed tissue thins out over the last centimetre before the skin
    thick = 0.62 + 0.38 * smoothstep(distance, 0.0, appearance.edge_mm)
    return np.asarray(textured, dtype=np.float32), thick


def render_anatomy(
    geom: ViewGeometry,
    *,
    rows: int,
    cols: int,
    spacing_mm: float,
    appearance: Appearance,
    rng: np.random.Generator,
) -> Anatomy:
    """Coverage, distance to skin, pectoral muscle and glandular share on the output grid."""
    coverage = rasterize(geom.outline, rows, cols, spacing_mm)
    pectoral = None
    if geom.pectoral is not None:
        sharp = rasterize(geom.pectoral, rows, cols, spacing_mm) * coverage
        blurred = cv2.GaussianBlur(sharp, (0, 0), max(0.4 / spacing_mm, 0.5))
        pectoral = np.asarray(blurred, dtype=np.float32)
    gland_work, thick_work = _gland_work(geom, appearance, rng)
    gland = resize_to(gland_work, rows, cols)
    detail, detail_spacing = detail_grid(rows, cols, spacing_mm)
    gland += resize_to(_vessels(geom, detail, detail_spacing, rng), rows, cols) * coverage
    return Anatomy(
        coverage=coverage,
        distance=_skin_distance(geom, coverage, spacing_mm),
        thick=resize_to(thick_work, rows, cols),
        pectoral=pectoral,
        gland=gland,
        spacing_mm=spacing_mm,
    )


def _vessel_path(geom: ViewGeometry, rng: np.random.Generator) -> PointsMm:
    """A blood vessel: enters at the chest wall and meanders towards the nipple region."""
    top = max(float(geom.skin[:, 1].min()), 0.0)
    bottom = min(float(geom.skin[:, 1].max()), geom.height_mm)
    y = rng.uniform(top + 0.2 * (bottom - top), bottom - 0.2 * (bottom - top))
    target_y = geom.nipple[1] + rng.normal(0.0, 0.15 * (bottom - top))
    length = geom.nipple[0] * rng.uniform(0.45, 0.85)
    xs = np.linspace(0.0, length, 80)
    # a smooth meander: two slow waves of a few millimetres
    waves = sum(
        rng.uniform(1.5, 5.0) * np.sin(2 * np.pi * xs / rng.uniform(25.0, 70.0) + rng.uniform(0, 6))
        for _ in range(2)
    )
    ys = y + (target_y - y) * xs / geom.nipple[0] + waves
    return np.stack([xs, ys], axis=1)


def _skin_distance(geom: ViewGeometry, coverage: FloatArray, spacing_mm: float) -> FloatArray:
    """Distance to the skin; on coarse grids measured on a 2× finer one and averaged down,
    or the skin line would show the staircase of the pixel grid along oblique edges."""
    factor = 2 if spacing_mm > 0.15 else 1
    if factor <= 1:
        return distance_mm(coverage, spacing_mm)
    rows, cols = coverage.shape
    fine = rasterize(geom.outline, rows * factor, cols * factor, spacing_mm / factor)
    distance = distance_mm(fine, spacing_mm / factor)
    area = cv2.resize(distance, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.asarray(area, dtype=np.float32)


def detail_grid(rows: int, cols: int, spacing_mm: float) -> tuple[tuple[int, int], float]:
    """Shape and spacing of the grid for fine detail: the output grid, or a coarser one when
    the output is finer than ``DETAIL_SPACING_MM``."""
    if spacing_mm >= DETAIL_SPACING_MM:
        return (rows, cols), spacing_mm
    factor = spacing_mm / DETAIL_SPACING_MM
    return (math.ceil(rows * factor), math.ceil(cols * factor)), DETAIL_SPACING_MM


def resize_to(values: FloatArray, rows: int, cols: int) -> FloatArray:
    """Bilinear resize (a no-op when the shape already matches)."""
    if values.shape == (rows, cols):
        return values
    resized = cv2.resize(values, (cols, rows), interpolation=cv2.INTER_LINEAR)
    # (only ever enlarges: detail and work grids are never finer than the output)
    return np.asarray(resized, dtype=np.float32)


def _vessels(
    geom: ViewGeometry, shape: tuple[int, int], spacing_mm: float, rng: np.random.Generator
) -> FloatArray:
    """One to three thin, slightly denser tubes: normal anatomy a detector must not flag."""
    canvas = np.zeros(shape, dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        points = np.round((_vessel_path(geom, rng) / spacing_mm - 0.5) * (1 << _SHIFT))
        width = max(1, round(rng.uniform(0.6, 1.2) / spacing_mm))
        value = float(rng.uniform(0.08, 0.18))
        cv2.polylines(canvas, [points.astype(np.int32)], False, value, width, cv2.LINE_8, _SHIFT)
    blurred = cv2.GaussianBlur(canvas, (0, 0), max(0.6, 0.25 / spacing_mm))
    return np.asarray(blurred, dtype=np.float32)


def _pectoral_tone(
    anatomy: Anatomy, appearance: Appearance, rng: np.random.Generator
) -> FloatArray:
    """Muscle grey level: darker at its thin free edge, brighter deeper in (thicker muscle).

    The tone is smooth, so it is made on a grid 8× coarser and upsampled (a 6 mm blur at
    full resolution would cost seconds).
    """
    if anatomy.pectoral is None:
        raise ValueError("only MLO views have a pectoral muscle")
    rows, cols = anatomy.gland.shape
    factor = max(1, int(1.0 / anatomy.spacing_mm))
    coarse = cv2.resize(
        anatomy.pectoral, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA
    )
    depth = np.asarray(
        cv2.GaussianBlur(coarse, (0, 0), 6.0 / (anatomy.spacing_mm * factor)), dtype=np.float32
    )
    fibres = power_law_noise(
        depth.shape, rng=rng, spacing_mm=anatomy.spacing_mm * factor, stretch=0.4, largest_mm=40.0
    )
    tone = appearance.pectoral_level - 0.1 + 0.16 * depth + 0.02 * fibres
    upsampled = cv2.resize(tone, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return np.asarray(upsampled, dtype=np.float32)


def soft_clip(values: FloatArray, knee: float = 0.8) -> FloatArray:
    """Identity below ``knee``, then a tanh shoulder that approaches 1 (detector saturation)."""
    head = 1.0 - knee
    over = values > knee
    values[over] = knee + head * np.tanh((values[over] - knee) / head)
    return values


def compose(
    anatomy: Anatomy,
    appearance: Appearance,
    *,
    density: FloatArray,
    bright: FloatArray,
    skin_extra_mm: FloatArray | None,
    rng: np.random.Generator,
) -> FloatArray:
    """Display image in [0, 1]: fat and gland, lesion density, muscle, skin, calcium, noise."""
    dist, thick = anatomy.distance, anatomy.thick
    rows, cols = dist.shape
    detail, spacing = detail_grid(rows, cols, anatomy.spacing_mm)
    fine = resize_to(fine_texture(detail, rng=rng, spacing_mm=spacing), rows, cols)
    # in place: these are full-resolution arrays, up to 8.5 Mpixel each
    fine *= anatomy.gland + 0.4
    fine *= 0.025
    image = anatomy.gland + density
    image += fine
    image *= appearance.gland_span
    image *= 0.7 + 0.3 * thick
    image += appearance.fat_level * thick
    if anatomy.pectoral is not None:
        tone = _pectoral_tone(anatomy, appearance, rng) + 0.5 * appearance.gland_span * density
        image += anatomy.pectoral * (tone - image)
    skin_mm = appearance.skin_mm if skin_extra_mm is None else appearance.skin_mm + skin_extra_mm
    soft = max(0.25, 0.6 * anatomy.spacing_mm)
    # the skin: a linear ramp from 1 inside the skin thickness to 0, ``2 soft`` mm wide
    rim = np.clip((skin_mm + soft - dist) * (0.5 / soft), 0.0, 1.0)
    # thickened skin is oedematous and denser as well as thicker
    gain = appearance.skin_gain + (0.0 if skin_extra_mm is None else 0.07 * skin_extra_mm)
    rim *= gain
    image += rim
    image += bright
    image = soft_clip(image) * anatomy.coverage
    # detector noise; on the finest grids it is drawn at the detail grid, so it comes out
    # slightly correlated, as the detector's own blur makes it
    grain = resize_to(rng.standard_normal(detail, dtype=np.float32), rows, cols)
    grain *= 0.25 + 0.75 * anatomy.coverage
    grain *= appearance.noise_sigma
    image += grain
    return np.clip(image, 0.0, 1.0, out=image)
