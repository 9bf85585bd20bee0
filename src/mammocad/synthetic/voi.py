"""Stored values that display as a given image through the file's own VOI transformation.

A presentation image is stored so that Modality LUT → VOI LUT → (MONOCHROME1 inversion)
gives the intended display. We invert each VOI transformation of DICOM PS3.3 C.11.2.1.2
exactly: for a display value ``d`` in [0, 1] we solve for the stored value ``x``.
The Modality LUT is the identity (Rescale Slope 1, Intercept 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mammocad.structures import FloatArray
from mammocad.synthetic.enum import PhotometricInterpretation, VoiKind

UInt16Array = npt.NDArray[np.uint16]
_SIGMOID_EPS = 1e-3  # the sigmoid never reaches 0 or 1; clamp the display range just inside


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiEncoding:
    """One file's VOI: a window (LINEAR or SIGMOID) or a VOI LUT (descriptor + data).

    ``extra_windows`` are alternative (centre, width) pairs written after the first, as
    vendors do ("harder"/"softer" views); the first one is the one that reproduces the display.
    """

    kind: VoiKind
    bits_stored: int
    centre: float = 0.0
    width: float = 0.0
    extra_windows: tuple[tuple[float, float], ...] = ()
    lut_first: int = 0
    lut_data: UInt16Array | None = None

    @property
    def max_value(self) -> int:
        return (1 << self.bits_stored) - 1


def choose_voi(kind: VoiKind, bits_stored: int, rng: np.random.Generator) -> VoiEncoding:
    """Random, vendor-like VOI parameters for ``kind`` at ``bits_stored``."""
    top = (1 << bits_stored) - 1
    if kind is VoiKind.WINDOW:
        width = float(round(top * rng.uniform(0.5, 0.85)))
        centre = float(round(rng.uniform(width / 2 + 1, top - width / 2 - 1)))
        extra = tuple(
            (float(round(centre * rng.uniform(0.9, 1.1))), float(round(width * f)))
            for f in rng.uniform(0.6, 1.4, size=int(rng.integers(0, 3)))
        )
        return VoiEncoding(
            kind=kind, bits_stored=bits_stored, centre=centre, width=width, extra_windows=extra
        )
    if kind is VoiKind.SIGMOID:
        width = float(round(top * rng.uniform(0.2, 0.35)))
        centre = float(round(top * rng.uniform(0.45, 0.55)))
        return VoiEncoding(kind=kind, bits_stored=bits_stored, centre=centre, width=width)
    return _choose_lut(bits_stored, rng)


def _choose_lut(bits_stored: int, rng: np.random.Generator) -> VoiEncoding:
    """A strictly increasing S-shaped VOI LUT over 4096 stored values (LUT Descriptor
    ``[4096, first, bits_stored]``; output range ``[0, 2^bits_stored − 1]``)."""
    top = (1 << bits_stored) - 1
    entries = 4096
    first = int(rng.integers(0, top - entries + 2))
    t = np.linspace(0.0, 1.0, entries)
    gain = rng.uniform(3.0, 6.0)
    s_curve = 1 / (1 + np.exp(-gain * (t - rng.uniform(0.45, 0.55))))
    s_curve = (s_curve - s_curve[0]) / (s_curve[-1] - s_curve[0])
    mix = rng.uniform(0.3, 0.7)  # part S-curve, part straight line: strictly increasing
    data = np.round((mix * s_curve + (1 - mix) * t) * top).astype(np.uint16)
    return VoiEncoding(kind=VoiKind.LUT, bits_stored=bits_stored, lut_first=first, lut_data=data)


def to_stored(
    display: FloatArray, voi: VoiEncoding, photometric: PhotometricInterpretation
) -> UInt16Array:
    """Stored values whose VOI output (then inversion, for MONOCHROME1) is ``display``."""
    d = np.clip(display.astype(np.float64), 0.0, 1.0)
    if photometric is PhotometricInterpretation.MONOCHROME1:
        d = 1.0 - d  # the VOI output is inverted for display
    top = voi.max_value
    if voi.kind is VoiKind.WINDOW:
        # PS3.3 C.11.2.1.2.1: y = ((x − (c − 0.5)) / (w − 1) + 0.5) · range, solved for x
        x = np.round((d - 0.5) * (voi.width - 1) + voi.centre - 0.5)
    elif voi.kind is VoiKind.SIGMOID:
        # PS3.3 C.11.2.1.3.1: y = range / (1 + exp(−4 (x − c) / w)), solved for x
        y = np.clip(d, _SIGMOID_EPS, 1 - _SIGMOID_EPS)
        x = np.round(voi.centre - voi.width / 4 * np.log(1 / y - 1))
    else:
        x = _invert_lut(d, voi)
    return np.clip(x, 0, top).astype(np.uint16)


def _invert_lut(d: npt.NDArray[np.float64], voi: VoiEncoding) -> npt.NDArray[np.float64]:
    if voi.lut_data is None:
        raise ValueError("a LUT encoding needs lut_data")
    lut = voi.lut_data.astype(np.float64) / voi.max_value
    index = np.round(np.interp(d, lut, np.arange(len(lut), dtype=np.float64)))
    return index + voi.lut_first
