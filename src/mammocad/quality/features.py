"""The feature vector of the learned quality model: the gate's measurements plus cheap image
statistics of the tissue at the working spacing.

The order of :data:`FEATURE_NAMES` is part of the model file: a model stores the names it was
trained on and refuses to run on a vector built with other names.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.quality.measure import Measurements, working_copy
from mammocad.quality.params import QualityParams
from mammocad.structures import BoolArray, FloatArray, PreprocessedImage

#: measurements taken as they are (``spacing_mm`` is left out: it tells the source, not quality)
MEASURED = (
    "p5",
    "p95",
    "black_share",
    "white_share",
    "neighbour_correlation",
    "sharpness",
    "smear_along",
    "smear_across",
    "top_touch",
    "bottom_touch",
    "pectoral_share",
    "implant_share",
)
HISTOGRAM_BINS = 8  # coarse histogram of the tissue's display values over [0, 1]
EXTRA = (
    "tissue_share",
    "tissue_mean",
    "tissue_std",
    "noise_level",
    "edge_fine",
    "edge_coarse",
    "edge_ratio",
    *(f"hist_{i}" for i in range(HISTOGRAM_BINS)),
)
FEATURE_NAMES: tuple[str, ...] = (*MEASURED, *EXTRA)
_MIN_PIXELS = 64


def features(prepared: PreprocessedImage, params: QualityParams, m: Measurements) -> FloatArray:
    """``float64[len(FEATURE_NAMES)]`` for one preprocessed image and its measurements."""
    small, tissue, _ = working_copy(prepared, params)
    values = [float(getattr(m, name)) for name in MEASURED]
    values.extend(_tissue_statistics(small, tissue))
    return np.asarray(values, dtype=np.float64)


def _tissue_statistics(small: FloatArray, tissue: BoolArray) -> list[float]:
    inside = small[tissue]
    if inside.size < _MIN_PIXELS:
        # too little tissue to measure texture: values of a flat image, the share tells the rest
        flat = [float(tissue.mean()), 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        return flat + [0.0] * HISTOGRAM_BINS
    # noise: median absolute deviation of the finest residual, robust to edges and lesions
    residual = small - cv2.GaussianBlur(small, (0, 0), 1.0)
    noise = 1.4826 * float(np.median(np.abs(residual[tissue])))
    fine, coarse = _edge_energy(small, tissue, 1.0), _edge_energy(small, tissue, 3.0)
    histogram, _ = np.histogram(inside, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return [
        float(tissue.mean()),
        float(inside.mean()),
        float(inside.std()),
        noise,
        fine,
        coarse,
        fine / max(coarse, 1e-6),
        *(histogram / inside.size).tolist(),
    ]


def _edge_energy(small: FloatArray, tissue: BoolArray, sigma: float) -> float:
    """Mean gradient magnitude at ``sigma`` working pixels (0.4 and 1.2 mm by default)."""
    smooth = cv2.GaussianBlur(small, (0, 0), sigma)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.sqrt(gx * gx + gy * gy)[tissue].mean())
