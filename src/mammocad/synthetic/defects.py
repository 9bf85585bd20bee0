"""Technical defects of an image, for exercising quality control.

Motion blur and burn-out change the rendered anatomy; noise and blank replace it; a cut-off
breast is a geometry change (see :func:`mammocad.synthetic.geometry.view_geometry`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mammocad.structures import FloatArray
from mammocad.synthetic.enum import Defect

#: Defects after which the image shows no anatomy, so it carries no lesion or nipple truth.
NO_ANATOMY = frozenset({Defect.NOISE, Defect.BLANK})


def motion_blur(image: FloatArray, rng: np.random.Generator, spacing_mm: float) -> FloatArray:
    """Smear along a random direction by 1.5-4 mm, as a breast moving during the exposure."""
    length = max(3, round(rng.uniform(1.5, 4.0) / spacing_mm))
    kernel = np.zeros((length, length), dtype=np.float32)
    angle = rng.uniform(0, math.pi)
    centre = (length - 1) / 2
    dx, dy = math.cos(angle) * centre, math.sin(angle) * centre
    p = (round(centre - dx), round(centre - dy))
    q = (round(centre + dx), round(centre + dy))
    cv2.line(kernel, p, q, 1.0, 1, cv2.LINE_AA)
    kernel /= kernel.sum()
    blurred = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(blurred, dtype=np.float32)


def burn_out(image: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Over-exposure: the thin periphery merges with the black background and the tissue
    contrast collapses, as when too many photons reach the detector."""
    gamma = rng.uniform(2.2, 3.2)
    level = rng.uniform(0.25, 0.4)
    return (level * np.clip(image, 0.0, 1.0) ** gamma).astype(np.float32)


def white_noise(shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    """Noise and nothing else (a detector read-out without an image)."""
    noise = rng.normal(rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.25), size=shape)
    return np.clip(noise, 0.0, 1.0).astype(np.float32)


def blank(shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    """A uniform image: nothing was exposed."""
    return np.full(shape, rng.uniform(0.0, 0.08), dtype=np.float32)


def apply_to_anatomy(
    image: FloatArray, defects: tuple[Defect, ...], rng: np.random.Generator, spacing_mm: float
) -> FloatArray:
    """Defects that degrade the rendered anatomy, in a fixed order."""
    if Defect.MOTION_BLUR in defects:
        image = motion_blur(image, rng, spacing_mm)
    if Defect.BURNED_OUT in defects:
        image = burn_out(image, rng)
    return image


def replace_anatomy(
    image: FloatArray, defects: tuple[Defect, ...], rng: np.random.Generator
) -> FloatArray:
    """Defects that replace the image: blank wins over noise when both are asked for."""
    if Defect.BLANK in defects:
        return blank((image.shape[0], image.shape[1]), rng)
    if Defect.NOISE in defects:
        return white_noise((image.shape[0], image.shape[1]), rng)
    return image
