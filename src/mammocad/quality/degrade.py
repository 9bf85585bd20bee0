"""Degraded copies of a good mammogram, made on the fly to train and test the learned gate.

Each degradation returns new display pixels and the issue code it should raise. They work on
the tissue preprocessing found, so a real film becomes a noise, blank, burned-out,
under-exposed or motion-blurred image of the same breast outline and background.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mammocad.structures import BoolArray, FloatArray
from mammocad.synthetic.defects import burn_out, motion_blur

Degrade = Callable[[FloatArray, BoolArray, np.random.Generator, float], FloatArray]


def noise(pixels: FloatArray, tissue: BoolArray, rng: np.random.Generator, _: float) -> FloatArray:
    """The breast replaced by white noise of its own mean: a read-out without an image."""
    level = rng.normal(float(pixels[tissue].mean()), rng.uniform(0.08, 0.25), pixels.shape)
    return np.where(tissue, np.clip(level, 0.0, 1.0), pixels).astype(np.float32)


def blank(pixels: FloatArray, tissue: BoolArray, rng: np.random.Generator, _: float) -> FloatArray:
    """The breast flat at one grey with a trace of noise: nothing but the outline exposed."""
    flat = rng.uniform(0.2, 0.8) + rng.normal(0.0, 0.002, pixels.shape)
    return np.where(tissue, flat, pixels).astype(np.float32)


def burned(pixels: FloatArray, tissue: BoolArray, rng: np.random.Generator, _: float) -> FloatArray:
    """Over-exposure as the phantom makes it (gamma 2.2-3.2, then scaled down to 0.25-0.4)."""
    return burn_out(pixels, rng)


def underexposed(
    pixels: FloatArray, tissue: BoolArray, rng: np.random.Generator, _: float
) -> FloatArray:
    """The breast washed out to near white (0.85-0.92 and up), its contrast compressed."""
    floor = rng.uniform(0.85, 0.92)
    return np.where(tissue, floor + (1.0 - floor) * pixels, pixels).astype(np.float32)


def blurred(
    pixels: FloatArray, tissue: BoolArray, rng: np.random.Generator, spacing_mm: float
) -> FloatArray:
    """A 1.5-4 mm motion smear in a random direction, as the phantom makes it."""
    return motion_blur(np.asarray(pixels, dtype=np.float32), rng, spacing_mm)


#: issue code each degradation should raise, by degradation
DEGRADATIONS: dict[str, tuple[Degrade, str]] = {
    "noise": (noise, "no_anatomy"),
    "blank": (blank, "blank"),
    "burned_out": (burned, "overexposed"),
    "underexposed": (underexposed, "underexposed"),
    "motion_blur": (blurred, "motion_blur"),
}
