"""Measurements the quality checks need that preprocessing does not expose.

Everything is measured on a copy of the display pixels resampled (area average) to
``QualityParams.work_spacing_mm``, with the tissue mask preprocessing found, so a threshold
means the same at 0.07 mm and at 0.36 mm pixel pitch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mammocad.quality.params import QualityParams
from mammocad.structures import BoolArray, FloatArray, PreprocessedImage

_MIN_PIXELS = 64  # fewer tissue pixels than this: texture statistics are meaningless
_FIELD_FILL = 0.95  # non-padding pixels filling this share of their box: padding is a frame


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurements:
    """Tissue statistics in display units (0 black … 1 white) at the working spacing.

    ``top_touch`` / ``bottom_touch``: tissue pixels on the first / last row of the exposed field
    (inside a frame of padding, :func:`_field_rows`) over the number of columns holding tissue.
    ``sharpness``: fine over coarse band energy (see :func:`sharpness`).
    ``smear_along`` / ``smear_across``: the highest and lowest neighbour correlation of the
    high-pass residual over four directions (see :func:`residual_correlations`).
    ``smear_along_no_lines``: the highest once row- and column-aligned scanner lines are taken
    out (see :func:`line_free_smear`; a check only, not a feature of the learned model).
    """

    spacing_mm: float
    p5: float
    p95: float
    black_share: float
    white_share: float
    neighbour_correlation: float
    sharpness: float
    smear_along: float
    smear_across: float
    smear_along_no_lines: float
    top_touch: float
    bottom_touch: float
    pectoral_share: float
    implant_share: float


def measure(prepared: PreprocessedImage, params: QualityParams) -> Measurements:
    """Resample the image and its tissue mask, then measure the tissue."""
    small, tissue, spacing = working_copy(prepared, params)
    size = max(3, round(params.erosion_mm / params.work_spacing_mm)) | 1
    inner = cv2.erode(tissue.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    if np.count_nonzero(inner) < _MIN_PIXELS:
        inner = tissue
    flat = _flat_white(small, params.implant_level)  # implant-like: both measures below read it
    exposed = tissue
    if prepared.image.implant_present:
        exposed = _outside_implant(flat, tissue, rim=size)
    values = small[exposed]
    p5, p95 = np.percentile(values, [5, 95]) if values.size else (0.0, 0.0)
    width = max(int(np.count_nonzero(tissue.any(axis=0))), 1)
    along, across = residual_correlations(small, inner)
    line_px = max(3, round(params.scanner_line_mm / params.work_spacing_mm)) | 1
    pectoral = _pectoral_small(prepared, small.shape)
    top, bottom = _field_rows(prepared, tissue.shape[0])
    return Measurements(
        spacing_mm=spacing,
        p5=float(p5),
        p95=float(p95),
        black_share=_share(values <= 1.0 / 255),
        white_share=_share(values >= 254.0 / 255),
        neighbour_correlation=neighbour_correlation(small, inner),
        sharpness=sharpness(small, inner),
        smear_along=along,
        smear_across=across,
        smear_along_no_lines=line_free_smear(small, inner, line_px),
        top_touch=float(np.count_nonzero(tissue[top])) / width,
        bottom_touch=float(np.count_nonzero(tissue[bottom])) / width,
        pectoral_share=_pectoral_share(prepared),
        implant_share=_implant_share(flat, inner & ~pectoral),
    )


def working_copy(
    prepared: PreprocessedImage, params: QualityParams
) -> tuple[FloatArray, BoolArray, float]:
    """The display pixels and tissue mask at the working spacing, and the source spacing (mm,
    the mean of rows and columns)."""
    pixels = np.asarray(prepared.image.pixels, dtype=np.float32)
    row_mm, col_mm = _spacing(prepared, params)
    # both axes to one spacing: the directional smear test reads a grid that stays anisotropic
    # as motion along its finer axis. The target is never finer than the coarser source axis,
    # which is not upsampled
    target = max(params.work_spacing_mm, row_mm, col_mm)
    small, tissue = _resample(pixels, prepared.tissue_mask, (row_mm / target, col_mm / target))
    return small, tissue, (row_mm + col_mm) / 2


def _spacing(prepared: PreprocessedImage, params: QualityParams) -> tuple[float, float]:
    """(row, column) spacing in mm: the file's, else square from ``assumed_field_mm``."""
    if prepared.image.pixel_spacing_mm is not None:
        row_mm, col_mm = prepared.image.pixel_spacing_mm
        return float(row_mm), float(col_mm)
    spacing = params.assumed_field_mm / prepared.tissue_mask.shape[0]
    return spacing, spacing


def _resample(
    pixels: FloatArray, tissue: BoolArray, factors: tuple[float, float]
) -> tuple[FloatArray, BoolArray]:
    """Area-average by (row, column) ``factors`` (at most 1)."""
    row_factor, col_factor = factors
    if row_factor >= 1.0 and col_factor >= 1.0:
        return pixels, tissue
    size = (
        max(16, round(pixels.shape[1] * min(col_factor, 1.0))),
        max(16, round(pixels.shape[0] * min(row_factor, 1.0))),
    )
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    # a pixel is tissue when most of the area it averages is
    share = cv2.resize(tissue.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.float32), share >= 0.5


def _field_rows(prepared: PreprocessedImage, rows: int) -> tuple[int, int]:
    """First and last row of the exposed field on a grid of ``rows`` rows.

    Padding (Pixel Padding Value, PS3.3 C.7.5.1.1.2) that frames a rectangular field (the
    collimation, a digitiser's border) is not image: a breast cut off by the collimator
    touches the field's edge, never the frame's. Padding in place of the air follows the
    breast's outline and does not fill its box (as ``preprocess.tissue`` tells them apart);
    there the image's own rows are the edges. The field's rows are taken inwards, so a
    working row half on the frame is not read as the edge."""
    padding = prepared.image.padding_mask
    if padding is None or padding.all():
        return 0, rows - 1
    field = np.flatnonzero(~padding.all(axis=1))
    columns = np.flatnonzero(~padding.all(axis=0))
    box = (field[-1] - field[0] + 1) * (columns[-1] - columns[0] + 1)
    if np.count_nonzero(~padding) < _FIELD_FILL * box:
        return 0, rows - 1
    scale = rows / padding.shape[0]
    top = min(int(np.ceil(field[0] * scale)), rows - 1)
    bottom = max(int(np.floor((field[-1] + 1) * scale)) - 1, top)
    return top, bottom


def _share(flags: BoolArray) -> float:
    return float(np.count_nonzero(flags)) / flags.size if flags.size else 0.0


def neighbour_correlation(small: FloatArray, inner: BoolArray) -> float:
    """Correlation of horizontally adjacent tissue pixels; 0 for white noise, near 1 for anatomy."""
    return _lag_correlation(small, inner, 0, 1)


def residual_correlations(small: FloatArray, inner: BoolArray) -> tuple[float, float]:
    """Highest and lowest neighbour correlation of the fine residual over 0, 45, 90, 135 degrees.

    The residual (image minus a 1-pixel Gaussian) is mostly detector noise and fine texture,
    nearly uncorrelated in every direction. A motion smear correlates it along the motion and
    leaves it uncorrelated across: a high maximum with a low minimum. Film scanner line
    artefacts also make it anisotropic, but anti-correlated across the lines (minimum < 0).
    """
    residual = _fine_residual(small)
    values = [_lag_correlation(residual, inner, dy, dx) for dy, dx in _DIRECTIONS]
    return max(values), min(values)


def line_free_smear(small: FloatArray, inner: BoolArray, length: int) -> float:
    """Highest neighbour correlation of the fine residual over the four directions once
    row- and column-aligned lines are taken out (:func:`_without_lines`, ``length`` pixels).

    A film digitiser's scanner lines run exactly along the rows (or columns) and far across
    the film, so the residual keeps its correlation along them over any distance; a motion
    smear correlates it only over the smear (1.5-4 mm). What is left after the lines are taken
    out is what a motion smear has to explain.
    """
    residual = _without_lines(_fine_residual(small), inner, length)
    return max(_lag_correlation(residual, inner, dy, dx) for dy, dx in _DIRECTIONS)


def _fine_residual(small: FloatArray) -> FloatArray:
    return np.asarray(small - cv2.GaussianBlur(small, (0, 0), 1.0), dtype=np.float32)


def _without_lines(residual: FloatArray, inner: BoolArray, length: int) -> FloatArray:
    """``residual`` less its running mean over ``length`` pixels of ``inner`` along each row,
    then along each column: what is constant along a row or column over that length (a
    scanner line) goes, a smear much shorter than it is averaged away in the mean and stays.
    The mean is over ``inner`` pixels only (normalised convolution), so the tissue's edge and
    the background do not leak into it."""
    weight = inner.astype(np.float32)
    lined = np.where(inner, residual, 0.0).astype(np.float32)
    for size in ((length, 1), (1, length)):  # (width, height): along rows, then along columns
        total = cv2.boxFilter(lined, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
        count = cv2.boxFilter(weight, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
        lined = np.where(inner, lined - total / np.maximum(count, 1.0), 0.0).astype(np.float32)
    return lined


_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _lag_correlation(image: FloatArray, inner: BoolArray, dy: int, dx: int) -> float:
    rows, cols = image.shape
    x0, x1 = max(0, -dx), cols - max(0, dx)
    first = (slice(0, rows - dy), slice(x0, x1))
    second = (slice(dy, rows), slice(x0 + dx, x1 + dx))
    both = inner[first] & inner[second]
    a, b = image[first][both], image[second][both]
    if a.size < _MIN_PIXELS or a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def sharpness(small: FloatArray, inner: BoolArray) -> float:
    """Scale-normalised Laplacian energy at 1 working pixel over that at 4 pixels.

    Variance of the Laplacian at a fixed physical scale, divided by the same at a coarser
    scale so that exposure and contrast cancel: a 1.5-4 mm motion smear removes the fine band
    but barely touches the coarse one.
    """
    if np.count_nonzero(inner) < _MIN_PIXELS:
        return 1.0
    fine = cv2.Laplacian(cv2.GaussianBlur(small, (0, 0), 1.0), cv2.CV_32F)[inner]
    coarse = cv2.Laplacian(cv2.GaussianBlur(small, (0, 0), 4.0), cv2.CV_32F)[inner] * 16.0
    return float(np.std(fine)) / max(float(np.std(coarse)), 1e-9)


def _pectoral_share(prepared: PreprocessedImage) -> float:
    if prepared.pectoral_mask is None:
        return 0.0
    area = max(int(np.count_nonzero(prepared.tissue_mask)), 1)
    return float(np.count_nonzero(prepared.pectoral_mask)) / area


def _pectoral_small(prepared: PreprocessedImage, shape: tuple[int, ...]) -> BoolArray:
    if prepared.pectoral_mask is None:
        return np.zeros(shape, dtype=bool)
    if prepared.pectoral_mask.shape == shape:
        return prepared.pectoral_mask
    size = (shape[1], shape[0])
    return (
        cv2.resize(prepared.pectoral_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        > 0
    )


def _implant_share(flat: BoolArray, inner: BoolArray) -> float:
    """Share of the tissue that is near white and flat (``flat``: a silicone or saline
    implant, :func:`_flat_white`)."""
    if np.count_nonzero(inner) < _MIN_PIXELS:
        return 0.0
    return float(np.count_nonzero(flat & inner)) / float(np.count_nonzero(inner))


def _flat_white(small: FloatArray, level: float) -> BoolArray:
    """Pixels whose neighbourhood is near white and flat, as an implant shows."""
    mean = cv2.GaussianBlur(small, (0, 0), 3.0)
    spread = np.sqrt(np.maximum(cv2.GaussianBlur(small * small, (0, 0), 3.0) - mean * mean, 0))
    flat: BoolArray = (mean >= level) & (spread < 0.02)
    return flat


def _outside_implant(flat: BoolArray, tissue: BoolArray, *, rim: int) -> BoolArray:
    """The tissue less the implant, for the exposure measures of an image whose header says
    an implant is present (Breast Implant Present YES, PS3.3 C.8.11.7): a radiopaque implant
    is white and flat by nature, and counted as tissue it reads as under-exposure. Its rim
    (``rim`` pixels: the erosion of the texture measures, blurred by the working resolution)
    goes with it. Without that header
    nothing is taken out: a washed-out breast is white and flat too. When too little tissue
    is left, all of it is measured."""
    implant = (flat & tissue).astype(np.uint8)
    covered = cv2.dilate(implant, np.ones((rim, rim), np.uint8)) > 0
    rest: BoolArray = tissue & ~covered
    return rest if np.count_nonzero(rest) >= _MIN_PIXELS else tissue
