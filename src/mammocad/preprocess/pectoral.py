"""Pectoral-muscle boundary on lateral views (MLO, ML, LM), chest wall on the LEFT.

On a lateral view the pectoral muscle is a bright, roughly triangular region in the top-left
corner of the breast, bounded by a nearly straight edge from the top of the image to the chest
wall. The search, on the working grid:

1. every straight line from a point on the breast's top row to a point on its chest-wall column
   is scored by the mean brightness step across it (muscle side minus breast side), sampled
   along the line; only lines steeper than ``min_slope`` (the muscle is a tall triangle: on the
   66 DDSM masks the height/width ratio of the muscle is 1.2-7.3) compete;
2. among lines within 10% of the best score the largest triangle wins: the muscle often has a
   saturated core whose inner edge is as sharp as the muscle's own edge, and the real edge is
   the outer one;
3. the line's end points and a bow (a quadratic Bézier curve) are then adjusted locally, since
   the edge is often slightly convex.

Measured against the 66 DDSM human masks in docs/preprocessing.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.preprocess.params import PectoralParams
from mammocad.structures import BoolArray, FloatArray

_SAMPLES = 48  # points per candidate line
_NEAR_BEST = 0.9  # candidates this close to the best score compete on size
_BOWS = np.linspace(-0.1, 0.15, 6, dtype=np.float32)  # control-point offset / chord length
_STRETCH = np.linspace(0.85, 1.15, 7, dtype=np.float32)  # end-point adjustment factors
_ROW = 4096  # sample points per row of the cv2.remap maps
_SPREAD = np.linspace(0.02, 0.9, 8, dtype=np.float32)  # triangle sampling (barycentric steps)
_IN_TISSUE = 0.98  # share of a candidate muscle triangle that must be breast


@dataclass(frozen=True, slots=True, kw_only=True)
class PectoralBoundary:
    """The muscle edge in the working grid, chest wall on the left.

    Coordinates are working-grid *indices*: ``(x, y)`` with pixel centres at integers (OpenCV's
    sampling convention). ``curve`` is ``float32[N, 2]`` from the top edge (first point) down to
    the chest wall (last point); ``corner`` is the top-left corner of the breast (first tissue
    row and column); ``contrast`` the mean brightness step across the edge, display units.
    """

    curve: FloatArray
    corner: tuple[float, float]
    contrast: float

    @property
    def top(self) -> tuple[float, float]:
        return float(self.curve[0, 0]), float(self.curve[0, 1])

    @property
    def bottom(self) -> tuple[float, float]:
        return float(self.curve[-1, 0]), float(self.curve[-1, 1])

    def mask(self, tissue: BoolArray) -> BoolArray:
        """Working-grid mask of the muscle: the region between the corner and the curve."""
        x0, y0 = self.corner
        head = np.array([[x0 - 1, y0 - 1], [self.curve[0, 0], y0 - 1]], dtype=np.float32)
        tail = np.array([[x0 - 1, self.curve[-1, 1]]], dtype=np.float32)
        polygon = np.concatenate([head, self.curve, tail])
        canvas = np.zeros(tissue.shape, dtype=np.uint8)
        # 4 fractional bits keep the sub-pixel curve
        points = np.round(polygon * 16).astype(np.int32)
        cv2.fillPoly(canvas, [points], 1, lineType=cv2.LINE_8, shift=4)
        return np.asarray((canvas > 0) & tissue)


def find_pectoral(
    smooth: FloatArray, tissue: BoolArray, params: PectoralParams
) -> PectoralBoundary | None:
    """The pectoral edge in ``smooth`` (float32 [0, 1], chest wall left), or None if not seen.

    ``tissue`` is the breast mask on the same grid. None means the best edge's contrast is
    under ``params.min_relative_contrast`` times the breast's 10th-90th percentile brightness
    spread: the muscle is not in view, or too faint to trust.
    """
    rows = np.flatnonzero(tissue.any(axis=1))
    cols = np.flatnonzero(tissue.any(axis=0))
    if rows.size < 8 or cols.size < 8:
        return None
    corner = (float(cols[0]), float(rows[0]))
    size = (float(rows[-1] + 1 - rows[0]), float(cols[-1] + 1 - cols[0]))
    offset = max(2.0, 0.006 * max(tissue.shape))  # sampling distance either side of the edge
    line = _coarse_line(smooth, tissue, corner, size, offset, params)
    if line is None:
        return None
    fa, fb, bow = (g.ravel() for g in np.meshgrid(_STRETCH, _STRETCH, _BOWS, indexing="ij"))
    a, b = line[0] * fa, line[1] * fb
    scores = _edge_scores(smooth, tissue, corner, a, b, bow, offset)
    scores[_tissue_share(tissue, corner, a, b) < _IN_TISSUE] = -1.0
    best = int(np.argmax(scores))
    if scores[best] < params.min_relative_contrast * _tissue_spread(smooth, tissue):
        return None
    pick = slice(best, best + 1)
    xs, ys, _, _ = _bezier(corner, a[pick], b[pick], bow[pick])
    curve = np.stack([xs[0], ys[0]], axis=1).astype(np.float32)
    return PectoralBoundary(curve=curve, corner=corner, contrast=float(scores[best]))


def _coarse_line(
    smooth: FloatArray,
    tissue: BoolArray,
    corner: tuple[float, float],
    size: tuple[float, float],
    offset: float,
    params: PectoralParams,
) -> tuple[float, float] | None:
    """(top, left) intercepts, relative to ``corner``, of the best straight edge on a grid."""
    height, width = size
    step = max(1.0, round(width / 40))
    tops = np.arange(3, params.max_width * width, step, dtype=np.float32)
    lefts = np.arange(3, params.max_height * height, step, dtype=np.float32)
    a, b = (grid.ravel() for grid in np.meshgrid(tops, lefts, indexing="ij"))
    plausible = (b >= params.min_slope * a) & (_tissue_share(tissue, corner, a, b) >= _IN_TISSUE)
    a, b = a[plausible], b[plausible]
    if a.size == 0:
        return None
    scores = _edge_scores(smooth, tissue, corner, a, b, np.zeros_like(a), offset)
    contenders = scores >= _NEAR_BEST * scores.max()
    best = int(np.argmax(np.where(contenders, a * b, -1.0)))
    return float(a[best]), float(b[best])


def _tissue_share(
    tissue: BoolArray,
    corner: tuple[float, float],
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """Share of points spread over each candidate triangle that fall on the breast.

    The muscle is tissue from the chest wall to its edge; a triangle reaching into the
    background (e.g. above the rounded top of a CC-like outline) is no muscle.
    """
    s, t = np.meshgrid(_SPREAD, _SPREAD, indexing="ij")
    inside = (s + t) <= 0.95
    s, t = s[inside][None, :], t[inside][None, :]
    xs = corner[0] + a[:, None] * s
    ys = corner[1] + b[:, None] * t
    hits = _sample(tissue.astype(np.float32), xs.astype(np.float32), ys.astype(np.float32))
    return np.asarray((hits > 0.5).mean(axis=1), dtype=np.float32)


def _tissue_spread(smooth: FloatArray, tissue: BoolArray) -> float:
    """10th-90th percentile spread of the breast's brightness (display units, 256 bins)."""
    hist = cv2.calcHist([smooth], [0], tissue.view(np.uint8), [256], [0.0, 1.0]).ravel()
    cumulative = np.cumsum(hist) / max(float(hist.sum()), 1.0)
    low, high = np.searchsorted(cumulative, [0.1, 0.9])
    return max(float(high - low) / 256.0, 1.0 / 256.0)


def _edge_scores(
    smooth: FloatArray,
    tissue: BoolArray,
    corner: tuple[float, float],
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    bow: npt.NDArray[np.float32],
    offset: float,
) -> npt.NDArray[np.float32]:
    """Mean brightness step across each candidate curve, counted only where breast lies beyond.

    Points whose outer sample falls outside the breast (the skin line, the image edge) add
    nothing, so a line cannot score by running along the skin.
    """
    xs, ys, nx, ny = _bezier(corner, a, b, bow)
    inner = _sample(smooth, xs - offset * nx, ys - offset * ny)
    outer = _sample(smooth, xs + offset * nx, ys + offset * ny)
    beyond = _sample(tissue.astype(np.float32), xs + (offset + 1) * nx, ys + (offset + 1) * ny)
    step = (inner - outer) * (beyond > 0.5)
    return np.asarray(step.mean(axis=1), dtype=np.float32)


def _bezier(
    corner: tuple[float, float],
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    bow: npt.NDArray[np.float32],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Points and outward unit normals of quadratic Bézier curves from (x0+a, y0) to (x0, y0+b).

    The control point sits at the chord's midpoint moved by ``bow`` chord lengths along the
    chord's outward normal (towards the nipple); ``bow = 0`` is the straight line.
    """
    x0, y0 = np.float32(corner[0]), np.float32(corner[1])
    t = ((np.arange(_SAMPLES, dtype=np.float32) + 0.5) / _SAMPLES)[None, :]
    a, b, bow = a[:, None], b[:, None], bow[:, None]
    # the chord's outward unit normal is (b, a) / |chord|, so bow * |chord| * normal = bow * (b, a)
    # P(t) = S + 2t(C - S) + t^2 (S - 2C + E), with S = (x0 + a, y0), E = (x0, y0 + b)
    first_x, first_y = 2 * (bow * b - a / 2), 2 * (b / 2 + bow * a)
    second_x, second_y = -2 * bow * b, -2 * bow * a
    xs = x0 + a + t * (first_x + t * second_x)
    ys = y0 + t * (first_y + t * second_y)
    tx = first_x + 2 * t * second_x
    ty = first_y + 2 * t * second_y
    norm = np.hypot(tx, ty) + np.float32(1e-6)
    f32 = np.float32
    return xs.astype(f32), ys.astype(f32), (ty / norm).astype(f32), (-tx / norm).astype(f32)


def _sample(image: FloatArray, xs: FloatArray, ys: FloatArray) -> FloatArray:
    """Bilinear samples at pixel-centre coordinates ``(x, y)`` (0 outside the image)."""
    # cv2.remap wants maps under 32767 rows: lay the points out in rows of _ROW points
    count = xs.size
    padded = -(-count // _ROW) * _ROW
    maps = []
    for coordinate in (xs, ys):
        flat = np.zeros(padded, dtype=np.float32)
        flat[:count] = coordinate.ravel()
        maps.append(flat.reshape(-1, _ROW))
    values = cv2.remap(
        image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return np.asarray(values, dtype=np.float32).ravel()[:count].reshape(xs.shape)
