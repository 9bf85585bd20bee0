"""Calcification clusters (ACR BI-RADS Atlas, 5th ed., calcification morphology/distribution).

Specks are far smaller than a pixel of the small grid, so they are drawn on a finer grid and
area-averaged down: a 0.2 mm speck on a 0.36 mm pixel keeps its true integrated brightness
(partial volume), as a detector would record it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.structures import FloatArray
from mammocad.synthetic.draw import Frame, Layer, Patch

_FINE_MM = 0.035  # drawing grid for specks


def _speck_centres_scattered(rng: np.random.Generator, count: int, radius: float) -> FloatArray:
    """Benign distribution: a few specks scattered over a round area."""
    r = radius * np.sqrt(rng.uniform(0, 1, size=count))
    a = rng.uniform(0, 2 * math.pi, size=count)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1).astype(np.float32)


def _speck_centres_branching(
    rng: np.random.Generator, count: int, radius: float
) -> tuple[FloatArray, FloatArray]:
    """Malignant distribution: specks along 1-3 branching ductal segments; returns centres
    and the local duct direction (radians) of each speck."""
    branches = int(rng.integers(1, 4))
    trunk = rng.uniform(0, 2 * math.pi)
    centres, directions = [], []
    for b in range(branches):
        angle = trunk + (0.0 if b == 0 else rng.normal(0, 0.6))
        start = (
            rng.normal(0, 0.25 * radius, size=2)
            if b
            else -radius * np.array([math.cos(trunk), math.sin(trunk)])
        )
        n = max(1, count // branches)
        t = np.sort(rng.uniform(0, 2 * radius if b == 0 else radius, size=n))
        jitter = rng.normal(0, 0.12 * radius, size=(n, 2))
        line = start + t[:, None] * np.array([math.cos(angle), math.sin(angle)]) + jitter
        centres.append(line)
        directions.append(np.full(n, angle))
    return (
        np.concatenate(centres).astype(np.float32),
        np.concatenate(directions).astype(np.float32),
    )


def _specks(rng: np.random.Generator, subtype: str, radius_mm: float) -> npt.NDArray[np.float64]:
    """Rows of (x mm, y mm, angle rad, diameter mm, elongation) of each speck."""
    if subtype == "coarse":
        count = int(rng.integers(2, 7))
        offsets = _speck_centres_scattered(rng, count, radius_mm)
        angles: npt.NDArray[np.floating] = rng.uniform(0, 2 * math.pi, size=count)
        sizes = rng.uniform(0.7, 2.4, size=count)
        ratios = rng.uniform(1.0, 1.3, size=count)
    else:
        offsets, ducts = _speck_centres_branching(rng, int(rng.integers(10, 36)), radius_mm)
        count = len(offsets)
        sizes = rng.uniform(0.15, 0.55, size=count)
        if subtype == "fine_linear":  # rods along the duct
            angles, ratios = ducts, rng.uniform(2.0, 4.5, size=count)
        else:  # varied shapes in every direction
            angles, ratios = rng.uniform(0, 2 * math.pi, size=count), rng.uniform(1.0, 2.6, count)
    return np.column_stack([offsets, angles, sizes, ratios]).astype(np.float64)


def calcification_cluster(
    rng: np.random.Generator,
    centre: tuple[float, float],
    *,
    spacing_mm: float,
    extent_mm: float,
    contrast: float,
    subtype: str,
) -> Patch:
    """A cluster of specks. ``subtype``: ``coarse`` (benign: few, large, round),
    ``fine_pleomorphic`` or ``fine_linear`` (malignant: many tiny specks in a ductal line)."""
    factor = max(1, round(spacing_mm / _FINE_MM))
    frame = Frame.around(centre, extent_mm / spacing_mm * 0.75 + 2)
    size = frame.dx.shape[0]
    fine = np.zeros((size * factor, size * factor), dtype=np.float32)
    to_fine = factor / spacing_mm  # mm → fine pixels
    origin = np.array([centre[0] - frame.x0, centre[1] - frame.y0]) * factor
    for x, y, angle, diameter, ratio in _specks(rng, subtype, extent_mm / 2):
        axes = (
            max(1, int(diameter * to_fine / 2 * math.sqrt(ratio))),
            max(1, int(diameter * to_fine / 2 / math.sqrt(ratio))),
        )
        point = (int(origin[0] + x * to_fine), int(origin[1] + y * to_fine))
        value = contrast * rng.uniform(0.6, 1.0)
        cv2.ellipse(fine, point, axes, math.degrees(angle), 0, 360, value, -1, cv2.LINE_8)
        if subtype == "fine_pleomorphic":  # a second lobe makes an angular, irregular speck
            lobe = (int(point[0] + rng.normal(0, axes[0])), int(point[1] + rng.normal(0, axes[1])))
            lobe_axes = (max(1, int(axes[0] * rng.uniform(0.4, 0.8))), max(1, int(axes[1] * 0.7)))
            cv2.ellipse(fine, lobe, lobe_axes, rng.uniform(0, 360), 0, 360, value, -1, cv2.LINE_8)
    small = cv2.resize(fine, (size, size), interpolation=cv2.INTER_AREA) if factor > 1 else fine
    # detector blur (MTF) keeps single-pixel specks from looking like salt noise
    return frame.patch(cv2.GaussianBlur(small, (0, 0), 0.5), Layer.BRIGHT)
