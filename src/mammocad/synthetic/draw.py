"""Lesion patches on the output grid (pixel units), one function per lesion appearance.

Each function returns small patches placed around a sub-pixel centre. ``DENSITY`` patches add
tissue density (in units of fibroglandular tissue, so they hide in dense breasts as real
masses do); ``BRIGHT`` patches add display brightness directly (calcium is far denser than
any soft tissue).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.structures import FloatArray
from mammocad.synthetic.texture import power_law_noise, smoothstep


class Layer(Enum):
    DENSITY = "density"
    BRIGHT = "bright"


@dataclass(frozen=True, slots=True, kw_only=True)
class Patch:
    """``values`` to add at rows ``y0…`` and columns ``x0…`` of the canonical output grid."""

    values: FloatArray
    x0: int
    y0: int
    layer: Layer


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """Pixel offsets from a sub-pixel centre over a square patch of half-size ``radius``."""

    x0: int
    y0: int
    dx: FloatArray
    dy: FloatArray

    @classmethod
    def around(cls, centre: tuple[float, float], radius: float) -> Frame:
        cx, cy = centre
        half = math.ceil(radius) + 2
        x0, y0 = math.floor(cx) - half, math.floor(cy) - half
        size = 2 * half + 1
        xs = np.arange(size, dtype=np.float32) + x0 + 0.5 - cx
        ys = np.arange(size, dtype=np.float32) + y0 + 0.5 - cy
        return cls(
            x0=x0,
            y0=y0,
            dx=np.broadcast_to(xs[None, :], (size, size)),
            dy=np.broadcast_to(ys[:, None], (size, size)),
        )

    def rotated(self, degrees: float) -> tuple[FloatArray, FloatArray]:
        """Offsets along and across an axis at ``degrees``."""
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        return self.dx * c + self.dy * s, -self.dx * s + self.dy * c

    def patch(self, values: npt.ArrayLike, layer: Layer = Layer.DENSITY) -> Patch:
        array = np.asarray(values, dtype=np.float32)
        return Patch(values=array, x0=self.x0, y0=self.y0, layer=layer)


def _dome(r: FloatArray, edge_px: float) -> FloatArray:
    """Projected thickness of a sphere (√(1−r²)), with an edge blurred over ``edge_px``."""
    core = np.sqrt(np.clip(1.0 - r * r, 0.0, None))
    if edge_px <= 0.3:
        return core
    return np.asarray(cv2.GaussianBlur(core, (0, 0), edge_px), dtype=np.float32)


def _edge_harmonics(rng: np.random.Generator, roughness: float, orders: int) -> FloatArray:
    """Random radius modulation: amplitudes and phases of harmonics 2…orders+1."""
    k = np.arange(2, orders + 2, dtype=np.float32)
    amplitude = rng.normal(0.0, roughness, size=orders) / np.sqrt(k)
    phase = rng.uniform(0, 2 * math.pi, size=orders)
    return np.stack([k, amplitude, phase]).astype(np.float32)


def _outline_radius(angle: FloatArray, harmonics: FloatArray) -> FloatArray:
    result = np.ones_like(angle)
    for k, amplitude, phase in harmonics.T:
        result += amplitude * np.cos(k * angle + phase)
    return np.clip(result, 0.55, None)


def round_mass(
    rng: np.random.Generator,
    centre: tuple[float, float],
    *,
    radius: float,
    contrast: float,
    ratio: float,
    roughness: float,
    edge_px: float,
) -> Patch:
    """Round, oval or lobulated mass: an ellipsoid with a sharp (circumscribed) margin."""
    frame = Frame.around(centre, radius * 1.3)
    along, across = frame.rotated(rng.uniform(0, 180))
    r = np.hypot(along / radius, across * ratio / radius)
    if roughness > 0:
        r /= _outline_radius(np.arctan2(across, along), _edge_harmonics(rng, roughness, 2))
    return frame.patch(contrast * _dome(r, edge_px))


def irregular_mass(
    rng: np.random.Generator,
    centre: tuple[float, float],
    *,
    radius: float,
    contrast: float,
    edge_px: float,
) -> Patch:
    """Irregular mass with an indistinct margin: a dome with a ragged outline."""
    frame = Frame.around(centre, radius * 1.6)
    angle = np.arctan2(frame.dy, frame.dx)
    outline = _outline_radius(angle, _edge_harmonics(rng, 0.22, 7))
    r = np.hypot(frame.dx, frame.dy) / (radius * outline)
    return frame.patch(contrast * _dome(r, edge_px) ** 0.6)


def _polyline(
    rng: np.random.Generator, start: tuple[float, float], angle: float, length: float, wander: float
) -> list[tuple[float, float]]:
    """A gently curving line: ``length`` pixels from ``start`` in 5 steps."""
    points = [start]
    x, y = start
    for _ in range(5):
        angle += rng.normal(0.0, wander)
        x += length / 5 * math.cos(angle)
        y += length / 5 * math.sin(angle)
        points.append((x, y))
    return points


def radiating_lines(
    rng: np.random.Generator,
    centre: tuple[float, float],
    *,
    inner: float,
    outer: float,
    count: int,
    width_px: float,
    contrast: float,
) -> Patch:
    """Thin tapering lines radiating from ``centre`` between radii ``inner`` and ``outer``:
    the spicules of a spiculated mass, or the strands of an architectural distortion."""
    frame = Frame.around(centre, outer * 1.25)
    canvas = np.zeros(frame.dx.shape, dtype=np.float32)
    cx, cy = centre[0] - frame.x0 - 0.5, centre[1] - frame.y0 - 0.5
    scale = 16.0  # cv2 sub-pixel shift of 4 bits
    for angle in rng.uniform(0, 2 * math.pi, size=count):
        start_r = inner * rng.uniform(0.8, 1.1)
        start = (cx + start_r * math.cos(angle), cy + start_r * math.sin(angle))
        length = max(outer * rng.uniform(0.5, 1.0) - start_r, 1.0)
        points = _polyline(rng, start, float(angle), length, wander=0.08)
        value = contrast * rng.uniform(0.6, 1.0)
        for i, (p, q) in enumerate(itertools.pairwise(points)):
            thickness = max(1, round(width_px * (1 - i / 5)))
            p_int = (int(p[0] * scale), int(p[1] * scale))
            q_int = (int(q[0] * scale), int(q[1] * scale))
            cv2.line(canvas, p_int, q_int, value * (1 - 0.12 * i), thickness, cv2.LINE_8, 4)
    return frame.patch(cv2.GaussianBlur(canvas, (0, 0), max(0.5, 0.4 * width_px)))


def tissue_blob(
    rng: np.random.Generator,
    centre: tuple[float, float],
    *,
    radius: float,
    contrast: float,
    ratio: float,
) -> Patch:
    """Focal asymmetry: a plateau of extra fibroglandular density with fat interspersed and
    no convex margin."""
    frame = Frame.around(centre, radius * 1.4)
    along, across = frame.rotated(rng.uniform(0, 180))
    r = np.hypot(along / radius, across * ratio / radius)
    r /= _outline_radius(np.arctan2(across, along), _edge_harmonics(rng, 0.15, 4))
    plateau = 1.0 - smoothstep(r, 0.55, 1.0)
    size = frame.dx.shape
    texture = power_law_noise(size, rng=rng, spacing_mm=1.0, largest_mm=radius / 1.5 + 1)
    return frame.patch(contrast * plateau * (0.6 + 0.4 * np.tanh(texture)))


def lymph_node(
    rng: np.random.Generator,
    centre: tuple[float, float],
    *,
    radius: float,
    contrast: float,
    ratio: float,
    hilum: bool,
    edge_px: float,
) -> Patch:
    """Oval node; a normal one has a fatty (lucent) hilum notched into one long side."""
    frame = Frame.around(centre, radius * 1.3)
    along, across = frame.rotated(rng.uniform(20, 160))
    node = _dome(np.hypot(along / radius, across * ratio / radius), edge_px)
    if hilum:
        side = radius / ratio
        r_hilum = np.hypot(along / (0.45 * radius), (across - 0.75 * side) / (0.5 * side))
        node *= 1.0 - 0.8 * (1.0 - smoothstep(r_hilum, 0.6, 1.0))
    return frame.patch(contrast * node)


def pull_towards(
    field: FloatArray, centre: tuple[float, float], *, radius: float, strength: float
) -> None:
    """Warp ``field`` in place so tissue within ``radius`` is drawn in towards ``centre``:
    the tethering and retraction around an architectural distortion."""
    frame = Frame.around(centre, radius * 1.5)
    rows, cols = field.shape
    x0, y0 = max(frame.x0, 0), max(frame.y0, 0)
    x1 = min(frame.x0 + frame.dx.shape[1], cols)
    y1 = min(frame.y0 + frame.dx.shape[0], rows)
    if x1 <= x0 or y1 <= y0:
        return
    dx = frame.dx[y0 - frame.y0 : y1 - frame.y0, x0 - frame.x0 : x1 - frame.x0]
    dy = frame.dy[y0 - frame.y0 : y1 - frame.y0, x0 - frame.x0 : x1 - frame.x0]
    r = np.hypot(dx, dy) / radius
    # each output pixel samples from further out, so the pattern contracts towards the centre
    gain = 1.0 + strength * np.exp(-r * r)
    map_x = (centre[0] - 0.5 + dx * gain).astype(np.float32)
    map_y = (centre[1] - 0.5 + dy * gain).astype(np.float32)
    warped = cv2.remap(
        field, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    field[y0:y1, x0:x1] = warped
