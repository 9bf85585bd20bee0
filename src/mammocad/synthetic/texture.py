"""Fibroglandular texture: power-law noise shaped by a density envelope.

Mammographic parenchyma has a power spectrum close to ``1/f^β`` with β ≈ 3 (Burgess et al.,
Med. Phys. 28:419, 2001), so white noise filtered in the Fourier domain by ``f^(-β/2)`` gives
a field with the right statistics. Half of it is generated on a polar grid around the nipple,
which turns the structure into ducts and trabeculae that converge on the nipple.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.structures import FloatArray

BETA = 3.0


def power_law_noise(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    spacing_mm: float,
    beta: float = BETA,
    stretch: float = 1.0,
    largest_mm: float = 60.0,
    x_spacing_mm: float | None = None,
) -> FloatArray:
    """Zero-mean, unit-variance field with power spectrum ∝ ``1/f^beta``.

    ``stretch`` > 1 damps frequencies along x, elongating structures horizontally.
    ``largest_mm`` flattens the spectrum below ``1/largest_mm`` so a few huge blobs do not
    dominate the field. ``x_spacing_mm`` gives columns a different pixel size than rows.
    """
    rows, cols = shape
    # FFTs of 2-3-5-smooth sizes are several times faster; the extra margin is cropped
    fast_rows, fast_cols = fast_length(rows), fast_length(cols)
    white = rng.standard_normal((fast_rows, fast_cols), dtype=np.float32)
    spectrum = np.fft.rfft2(white)
    fy = np.fft.fftfreq(fast_rows, d=spacing_mm).astype(np.float32)[:, None]
    x_step = spacing_mm if x_spacing_mm is None else x_spacing_mm
    fx = np.fft.rfftfreq(fast_cols, d=x_step).astype(np.float32)[None, :]
    freq = np.maximum(np.hypot(fx * stretch, fy), np.float32(1.0 / largest_mm))
    spectrum *= freq ** np.float32(-beta / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(fast_rows, fast_cols))[:rows, :cols]
    field = field - field.mean()
    field /= field.std() + 1e-12
    return field.astype(np.float32)


def fast_length(n: int) -> int:
    """Smallest integer ≥ ``n`` whose only prime factors are 2, 3 and 5."""
    best = 2 * n
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def radial_noise(
    shape: tuple[int, int],
    *,
    centre: tuple[float, float],
    rng: np.random.Generator,
    spacing_mm: float,
    reference_mm: float = 50.0,
) -> FloatArray:
    """Power-law noise made on a polar grid around ``centre`` (pixels), elongated radially.

    The angular axis wraps around the full circle, and the FFT is periodic, so there is no seam.
    Radial steps are twice the pixel size: the structure is elongated radially anyway.
    """
    rows, cols = shape
    cx, cy = centre
    corners = np.array([[0, 0], [cols, 0], [0, rows], [cols, rows]], dtype=np.float64)
    radius_px = float(np.hypot(corners[:, 0] - cx, corners[:, 1] - cy).max()) + 2
    n_r = math.ceil(radius_px / 2)
    n_phi = max(64, round(2 * math.pi * reference_mm / spacing_mm))
    polar = power_law_noise(
        (n_phi, n_r), rng=rng, spacing_mm=spacing_mm, stretch=2.5, x_spacing_mm=2 * spacing_mm
    )
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    map_r = np.hypot(dx, dy) / 2
    map_phi = (np.arctan2(dy, dx) % (2 * math.pi)) * (n_phi / (2 * math.pi))
    warped = cv2.remap(
        polar,
        map_r.astype(np.float32),
        map_phi.astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_WRAP,
    )
    return np.asarray(warped, dtype=np.float32)


def smoothstep(x: npt.NDArray[np.float32], lo: float, hi: float) -> FloatArray:
    """0 below ``lo``, 1 above ``hi``, a cubic S-curve between."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def glandular_fraction_field(
    score: FloatArray, inside: npt.NDArray[np.bool_], fraction: float, softness: float
) -> FloatArray:
    """Soft threshold of ``score`` so that ``fraction`` of the ``inside`` area is glandular.

    The threshold is the score quantile, so the BI-RADS category sets the glandular area
    directly instead of through a fragile absolute level.
    """
    if not inside.any():
        return np.zeros_like(score)
    threshold = float(np.quantile(score[inside], 1.0 - fraction))
    field = 1.0 / (1.0 + np.exp(-(score - threshold) / softness))
    return field.astype(np.float32)


def fine_texture(
    shape: tuple[int, int], *, rng: np.random.Generator, spacing_mm: float
) -> FloatArray:
    """Unit-variance band-pass noise with structure between ~0.15 and ~0.8 mm.

    The power-law field is made on a coarse grid; this supplies the finer scales that a
    0.07-0.1 mm detector resolves (a difference of Gaussians of white noise).
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    fine_sigma = 0.2 / spacing_mm
    fine = cv2.GaussianBlur(white, (0, 0), fine_sigma) if fine_sigma > 0.4 else white
    coarse = cv2.GaussianBlur(white, (0, 0), 1.0 / spacing_mm)
    band = fine - coarse
    sample = band[:: max(1, shape[0] // 256), :: max(1, shape[1] // 256)]
    band /= float(sample.std()) + 1e-6
    return band
