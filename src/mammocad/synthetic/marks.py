"""Burned-in annotations: the view label text and a lead marker, as some vendors leave them.

They are drawn in the stored orientation (text must stay readable) in a corner on the
nipple side, where the breast leaves the image empty.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.structures import FloatArray
from mammocad.synthetic.enum import BurnedInKind, ChestWallSide
from mammocad.synthetic.truth import Box, BurnedIn

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _emptiest_corner(
    image: FloatArray, chest_wall: ChestWallSide, width: int, height: int
) -> list[tuple[int, int]]:
    """Top-left corners of the top and bottom boxes on the nipple side, emptiest first."""
    rows, cols = image.shape
    margin = max(4, cols // 60)
    x = margin if chest_wall is ChestWallSide.RIGHT else cols - margin - width
    spots = [(x, margin), (x, rows - margin - height)]
    return sorted(
        spots, key=lambda p: float(image[p[1] : p[1] + height, p[0] : p[0] + width].sum())
    )


def _put_text(
    image: FloatArray,
    text: str,
    origin: tuple[int, int],
    scale: float,
    thickness: int,
    value: float,
) -> None:
    """Anti-aliased text of grey ``value`` (OpenCV draws text on 8-bit images only)."""
    mask = np.zeros(image.shape, dtype=np.uint8)
    cv2.putText(mask, text, origin, _FONT, scale, 255, thickness, cv2.LINE_AA)
    alpha = mask.astype(np.float32) / 255.0
    image += alpha * (value - image)


def burn_in_label(image: FloatArray, text: str, chest_wall: ChestWallSide) -> BurnedIn:
    """Write ``text`` (e.g. ``"L MLO"``) in white into the emptiest nipple-side corner."""
    _rows, cols = image.shape
    scale = cols / 700.0
    thickness = max(1, round(2 * scale))
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = _emptiest_corner(image, chest_wall, width, height + baseline)[0]
    _put_text(image, text, (x, y + height), scale, thickness, 1.0)
    box = (float(x), float(y), float(x + width), float(y + height + baseline))
    return BurnedIn(kind=BurnedInKind.TEXT, text=text, box=box)


def _overlaps(box: Box, other: Box | None) -> bool:
    if other is None:
        return False
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def burn_in_marker(
    image: FloatArray,
    letter: str,
    chest_wall: ChestWallSide,
    rng: np.random.Generator,
    avoid: Box | None = None,
) -> BurnedIn:
    """A lead marker: a bright disc with the side letter cut out, in a free corner that does
    not overlap ``avoid`` (the label)."""
    _rows, cols = image.shape
    radius = max(4, round(cols * rng.uniform(0.014, 0.02)))
    size = 2 * radius
    spots = _emptiest_corner(image, chest_wall, size, size)
    free = [p for p in spots if not _overlaps((p[0], p[1], p[0] + size, p[1] + size), avoid)]
    x, y = (free or spots)[0]
    centre = (x + radius, y + radius)
    cv2.circle(image, centre, radius, float(rng.uniform(0.85, 0.97)), -1, cv2.LINE_AA)
    scale = radius / 16.0
    (w, h), _ = cv2.getTextSize(letter, _FONT, scale, max(1, radius // 6))
    origin = (centre[0] - w // 2, centre[1] + h // 2)
    _put_text(image, letter, origin, scale, max(1, radius // 6), 0.15)
    box = (float(x), float(y), float(x + 2 * radius), float(y + 2 * radius))
    return BurnedIn(kind=BurnedInKind.MARKER, text=letter, box=box)
