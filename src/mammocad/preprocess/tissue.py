"""Breast (tissue) mask on the working grid: breast and pectoral muscle, never labels.

Two thresholds on a median-smoothed ``uint8`` working image:

1. a *noise* threshold a few background-noise widths above the background level finds the
   breast roughly (the largest component after an opening that cuts thin scratches, film
   borders, ruler ticks and bridges to labels);
2. the final threshold sits ``threshold_fraction`` of the way from the background level to the
   median value of that rough breast. On scanned film the skin line is surrounded by a scanner
   halo a few grey levels above the background; human outlines (the DDSM tissue masks) follow
   the visible skin, which a threshold relative to the tissue brightness finds and a
   noise-relative one does not.

A film scanned inside a darker frame (or padded with black) has a second, brighter background,
the film base: it shows as a flat plateau lining the rough breast, and becomes the background
for a second rough pass (:func:`_film_base_level`).

Film borders and bright detector/collimator edges are removed as *bands*: lines along an image
edge that are almost fully bright, followed inward by a line that is much less so. The chest
wall is not a band, because the tissue continues inward.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mammocad.errors import PreprocessError, RejectionCode
from mammocad.preprocess.geometry import breast_box
from mammocad.preprocess.grid import U8Array
from mammocad.preprocess.params import TissueParams
from mammocad.structures import BoolArray

_BAND_MAX_FRACTION = 0.06  # film borders are at most this share of the image side
_BAND_COVERAGE = 0.85  # share of a border line that must be bright to be a band line
_MIN_CONTRAST = 10  # grey levels (of 255) between background and median tissue
_MIN_TEXTURE = 3  # grey levels between the 1st and 99th percentile of the breast
_RIM_FRACTION = 0.015  # width of the rim inspected for a film-base plateau, of the long side
_PLATEAU_SHARE = 0.2  # share of the rough breast at the rim's level that makes it a plateau
_FIELD_FILL = 0.95  # non-padding pixels filling this share of their box: padding is a frame


@dataclass(frozen=True, slots=True, kw_only=True)
class TissueSegmentation:
    """The tissue mask on the working grid, the median-smoothed working image it was found on,
    and the grey levels (of 255) that produced it."""

    mask: BoolArray
    smooth: U8Array
    background_level: float
    threshold: float
    tissue_median: float


def segment_tissue(
    small: U8Array, *, padding: BoolArray | None, params: TissueParams
) -> TissueSegmentation:
    """Segment the breast on a ``uint8`` working image (see the module docstring).

    Raises:
        PreprocessError: ``NO_TISSUE`` when nothing breast-like stands out of the background.
    """
    smooth = np.asarray(cv2.medianBlur(small, 5), dtype=np.uint8)
    valid = None if padding is None else np.logical_not(padding)
    kernel_size = max(3, round(params.opening_fraction * max(small.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))

    rough, background, rough_threshold = _rough_breast(smooth, valid, kernel, params)
    low, tissue_median, high = (float(v) for v in np.percentile(smooth[rough], [1, 50, 99]))
    if high - low < _MIN_TEXTURE:
        raise _no_tissue("the image is uniform, without any structure")
    if tissue_median - background < _MIN_CONTRAST:
        raise _no_tissue("the brightest region hardly differs from the background")
    threshold = max(
        rough_threshold, background + params.threshold_fraction * (tissue_median - background)
    )
    mask = _breast_component(smooth, threshold, valid, kernel)
    if mask is None or mask.mean() < params.min_tissue_fraction:
        raise _no_tissue("the bright region is too small to be a breast")
    return TissueSegmentation(
        mask=mask,
        smooth=smooth,
        background_level=float(background),
        threshold=float(threshold),
        tissue_median=tissue_median,
    )


def _rough_breast(
    smooth: U8Array, valid: BoolArray | None, kernel: np.ndarray, params: TissueParams
) -> tuple[BoolArray, float, float]:
    """The breast found with the noise threshold, its background level and that threshold."""
    background, noise = _background_level(smooth, valid)
    threshold = background + max(params.noise_sigmas * noise, 4.0)
    rough = _breast_component(smooth, threshold, valid, kernel)
    if rough is None:
        raise _no_tissue("no region brighter than the background was found")
    plateau = _film_base_level(smooth, rough, noise)
    if plateau is not None:
        # a film scanned inside a darker frame: the film base is the breast's background
        background = plateau
        threshold = background + max(params.noise_sigmas * noise, 4.0)
        rough = _breast_component(smooth, threshold, valid, kernel)
        if rough is None:
            raise _no_tissue("no region brighter than the film base was found")
    return rough, background, threshold


def _film_base_level(smooth: U8Array, rough: BoolArray, noise: float) -> float | None:
    """The level of a flat plateau lining the rough breast, if there is one, else None.

    A film digitised inside a darker frame (or padded with black, as mini-MIAS is) has two
    backgrounds: the frame, and the film base around the breast. The first threshold then
    keeps the whole film. The film base shows as a flat plateau along the rough region's
    rim covering a large share of it; a skin line is a ramp and never does.
    """
    ring_width = max(2.0, _RIM_FRACTION * max(smooth.shape))
    padded = cv2.copyMakeBorder(rough.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    rim = rough & (depth <= ring_width)
    if not rim.any():
        return None
    level = float(np.median(smooth[rim]))
    values = smooth[rough].astype(np.float32)
    tolerance = max(2.0, 2.0 * noise)
    share = float(np.count_nonzero(np.abs(values - level) <= tolerance)) / values.size
    bright = float(np.percentile(values, 90))
    if share >= _PLATEAU_SHARE and level < 0.5 * bright:
        return level
    return None


def _no_tissue(reason: str) -> PreprocessError:
    return PreprocessError(
        RejectionCode.NO_TISSUE,
        f"No breast tissue found: {reason}; check that the file is a mammogram with the breast "
        "in view and that its VOI window is not blank.",
    )


def _background_level(smooth: U8Array, valid: BoolArray | None) -> tuple[float, float]:
    """Background grey level (the dominant peak below Otsu's threshold) and its noise width.

    Padding (Pixel Padding Value, PS3.3 C.7.5.1.1.2) that follows the breast's outline is the
    air, and counts as background at black (the level :mod:`mammocad.io` renders it at,
    whatever value a caller stored): a vendor that suppresses the air stores all of it as
    padding (GE Senographe FOR PRESENTATION files say Pixel Padding Value 0), and without it
    the darkest peak left is fatty tissue, which puts the threshold inside the breast. Padding
    that only frames a rectangular field (:func:`_padding_follows_outline`) stays out: the air
    is inside the field, and a large black frame would outweigh it.

    The noise width is the peak's half width at half maximum on its bright side (a Gaussian's
    HWHM is 1.18 sigma), which ignores the long bright tail of the histogram.
    """
    mask = None if valid is None else valid.astype(np.uint8)
    hist = cv2.calcHist([smooth], [0], mask, [256], [0, 256]).ravel()
    if hist.sum() == 0:
        raise _no_tissue("every pixel is padding")
    if valid is not None and _padding_follows_outline(valid):
        hist[0] += valid.size - np.count_nonzero(valid)
    otsu = _otsu_from_histogram(hist)
    hist = cv2.GaussianBlur(hist.reshape(1, -1), (7, 1), 0).ravel()
    peak = int(np.argmax(hist[: otsu + 1]))
    above = np.flatnonzero(hist[peak:] <= hist[peak] / 2)
    half_width = float(above[0]) if above.size else 1.0
    return float(peak), max(half_width, 1.0) / 1.18


def _padding_follows_outline(valid: BoolArray) -> bool:
    """True when the non-padding pixels leave a share of their bounding box empty.

    Padding around a rectangular field (the collimation, a digitiser's border) leaves the
    box full; padding in place of the air leaves the breast's shape, which fills a box far
    less (a half ellipse about 80 %).
    """
    x0, y0, x1, y1 = breast_box(valid)
    return bool(np.count_nonzero(valid) < _FIELD_FILL * (x1 - x0) * (y1 - y0))


def _otsu_from_histogram(hist: np.ndarray) -> int:
    """Otsu's threshold from a 256-bin histogram (so padding can be left out of it)."""
    levels = np.arange(256, dtype=np.float64)
    weight = np.cumsum(hist, dtype=np.float64)
    total = weight[-1]
    moment = np.cumsum(hist * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (moment[-1] * weight / total - moment) ** 2 / (weight * (total - weight))
    between = np.nan_to_num(between, nan=0.0, posinf=0.0)
    return int(np.argmax(between))


def _breast_component(
    smooth: U8Array, threshold: float, valid: BoolArray | None, kernel: np.ndarray
) -> BoolArray | None:
    """Largest component of ``smooth > threshold`` after band removal and opening, filled."""
    foreground = smooth > threshold
    if valid is not None:
        foreground &= valid
    _clear_border_bands(foreground)
    opened = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    # fill holes: dark fat lobules or a dark lesion core are still breast
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(component)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return np.asarray(filled > 0)


def _clear_border_bands(foreground: BoolArray) -> None:
    """Clear film borders / collimator edges in place (see the module docstring)."""
    rows, cols = foreground.shape
    views = (
        (foreground, rows),  # top rows
        (foreground[::-1], rows),  # bottom rows
        (foreground.T, cols),  # left columns
        (foreground.T[::-1], cols),  # right columns
    )
    for lines, length in views:
        depth = max(2, round(_BAND_MAX_FRACTION * length))
        coverage = lines[:depth].mean(axis=1)
        bright = coverage >= _BAND_COVERAGE
        if not bright[0]:
            continue
        if bright.all():
            continue  # bright all the way in: tissue (a chest wall), not a border
        width = int(np.argmin(bright))
        inner = coverage[width : width + 4]
        drop = int(np.argmin(inner))
        if inner[drop] < 0.6 * coverage[:width].mean():
            lines[: width + drop + 1] = False
