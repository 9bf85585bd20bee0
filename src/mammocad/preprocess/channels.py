"""The second input channel: a second contrast preparation of the breast (docs/preprocessing.md).

Channel 0 is the display image (the VOI window the radiologist sees). Channel 1 is, by
default, CLAHE (contrast-limited adaptive histogram equalisation, OpenCV) computed inside the
breast at model-input resolution: it stretches local contrast where dense tissue can hide a
mass, and it evens out the brightness differences between vendors, film scanners and breast
densities that a single global window keeps. The alternative ``DENSE_WINDOW`` is a second
linear window from the tissue's median to its 99.5th percentile.

Both are computed on the resized content only, so the CLAHE tiles cover the breast and not the
padding, and the same breast gets the same tiles whatever the original resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.preprocess.params import SecondChannelMethod, SecondChannelParams
from mammocad.structures import BoolArray, FloatArray

_FILL_SIGMA = 0.05  # background fill blur, as a share of the content's longer side


def second_channel(
    display: FloatArray, tissue: BoolArray, params: SecondChannelParams
) -> FloatArray:
    """``float32`` in [0, 1], the same shape as ``display``; 0 outside ``tissue``."""
    if not tissue.any():
        return np.zeros_like(display)
    if params.method is SecondChannelMethod.CLAHE:
        result = _clahe(display, tissue, params)
    else:
        result = _dense_window(display, tissue, params)
    result[~tissue] = 0.0
    return result


def _clahe(display: FloatArray, tissue: BoolArray, params: SecondChannelParams) -> FloatArray:
    image = cv2.convertScaleAbs(display, alpha=255.0)
    # Tiles that straddle the skin line would count the black background in their histogram
    # and push the thin skin-line tissue to white; filling the background with a blurred
    # extension of the nearby tissue keeps those tiles' histograms about tissue.
    image = _fill_background(image, tissue)
    tiles_rows, tiles_cols = params.clahe_tiles
    clahe = cv2.createCLAHE(
        clipLimit=params.clahe_clip_limit, tileGridSize=(tiles_cols, tiles_rows)
    )
    return np.asarray(clahe.apply(image), dtype=np.float32) * np.float32(1 / 255)


def _fill_background(image: np.ndarray, tissue: BoolArray) -> np.ndarray:
    """Normalised convolution (blur of tissue values / blur of tissue weight), computed at
    1/8 size: a wide Gaussian at full input size would cost ~100 ms, at 1/8 size < 1 ms."""
    rows, cols = image.shape
    small_size = (max(1, cols // 8), max(1, rows // 8))
    weight = cv2.resize(tissue.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    values = cv2.resize(image.astype(np.float32) * tissue, small_size, interpolation=cv2.INTER_AREA)
    sigma = max(1.0, _FILL_SIGMA * max(small_size))
    values = cv2.GaussianBlur(values, (0, 0), sigma)
    weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    fill = np.divide(values, weight, out=np.zeros_like(values), where=weight > 1e-3)
    fill = cv2.resize(fill, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return np.where(tissue, image, cv2.convertScaleAbs(fill)).astype(np.uint8)


def _dense_window(
    display: FloatArray, tissue: BoolArray, params: SecondChannelParams
) -> FloatArray:
    bins = 1024
    hist = cv2.calcHist([display], [0], tissue.view(np.uint8), [bins], [0.0, 1.0]).ravel()
    cumulative = np.cumsum(hist) / hist.sum()
    low = np.searchsorted(cumulative, params.window_low_percentile / 100.0) / bins
    high = (np.searchsorted(cumulative, params.window_high_percentile / 100.0) + 1) / bins
    scale = 1.0 / max(high - low, 1.0 / bins)
    window = (display - np.float32(low)) * np.float32(scale)
    return np.clip(window, 0.0, 1.0).astype(np.float32)
