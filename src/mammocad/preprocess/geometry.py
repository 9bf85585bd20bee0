"""Crop, mirror, resize and pad into the model input, keeping the exact :class:`Transform`.

Only the crop is ever resampled: the full image is never mirrored or copied (a full pass over
a 3328×2560 float32 image costs ~7 ms here). Mirroring the original and cropping ``crop_box``
of the mirrored grid is the same as cropping the mirrored box of the original and mirroring
the result, which is what :func:`to_input` does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mammocad.structures import BoolArray, FloatArray, Transform


def breast_box(tissue: BoolArray) -> tuple[float, float, float, float]:
    """``[x1, y1, x2, y2]`` pixel-edge bounding box of the tissue mask (original grid)."""
    x, y, w, h = cv2.boundingRect(tissue.view(np.uint8))
    if w == 0 or h == 0:
        raise ValueError("the tissue mask is empty; there is no breast box")
    return float(x), float(y), float(x + w), float(y + h)


def make_transform(
    *,
    box: tuple[float, float, float, float],
    original_size: tuple[int, int],
    flipped: bool,
    margin: float,
    input_size: tuple[int, int],
) -> Transform:
    """The crop of ``box`` (original grid) plus ``margin`` × its longer side, fitted into
    ``input_size`` with its aspect ratio kept (content top-left, padding right and bottom).

    ``scale_x`` and ``scale_y`` are the exact ratios of the integer content size to the crop
    size, i.e. what ``cv2.resize`` does, so the transform is exact to float rounding.
    """
    rows, cols = original_size
    x1, y1, x2, y2 = box
    pad = margin * max(x2 - x1, y2 - y1)
    left, right = max(0, math.floor(x1 - pad)), min(cols, math.ceil(x2 + pad))
    top, bottom = max(0, math.floor(y1 - pad)), min(rows, math.ceil(y2 + pad))
    if flipped:
        left, right = cols - right, cols - left
    crop_rows, crop_cols = bottom - top, right - left
    fit = min(input_size[0] / crop_rows, input_size[1] / crop_cols)
    content_rows = min(input_size[0], max(1, round(crop_rows * fit)))
    content_cols = min(input_size[1], max(1, round(crop_cols * fit)))
    return Transform(
        original_size=(rows, cols),
        flipped=flipped,
        crop_box=(left, top, right, bottom),
        scale_x=content_cols / crop_cols,
        scale_y=content_rows / crop_rows,
        input_size=input_size,
    )


def to_input(pixels: FloatArray, transform: Transform) -> FloatArray:
    """``float32[H, W]`` model-input plane: the crop, mirrored if needed, resized, zero-padded."""
    return _place(_content(pixels.astype(np.float32, copy=False), transform), transform)


def mask_to_input(small: BoolArray, factor: int, transform: Transform) -> BoolArray:
    """A working-grid mask (original grid reduced by ``factor``) → the model-input grid.

    Sampled straight from the working grid with the exact affine map of ``transform`` (one
    bilinear warp of the content, ~1 ms) instead of resampling the full-resolution mask.
    """
    content_rows, content_cols = transform.content_size
    x0, y0, _, _ = transform.crop_box
    sx, sy, k = transform.scale_x, transform.scale_y, float(factor)
    # input index (u, v) → mirrored edge coordinate (u + 0.5) / sx + x0 → original → working index
    if transform.flipped:
        cols = transform.original_size[1]
        row_x = [-1.0 / (sx * k), 0.0, (cols - 0.5 / sx - x0) / k - 0.5]
    else:
        row_x = [1.0 / (sx * k), 0.0, (0.5 / sx + x0) / k - 0.5]
    row_y = [0.0, 1.0 / (sy * k), (0.5 / sy + y0) / k - 0.5]
    warped = cv2.warpAffine(
        small.view(np.uint8) * np.uint8(255),
        np.array([row_x, row_y], dtype=np.float64),
        (content_cols, content_rows),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(_place(np.asarray(warped), transform) > 127)


def _content(plane: np.ndarray, transform: Transform) -> np.ndarray:
    cols = transform.original_size[1]
    x0, y0, x1, y1 = transform.crop_box
    if transform.flipped:
        x0, x1 = cols - x1, cols - x0
    content_rows, content_cols = transform.content_size
    crop = plane[y0:y1, x0:x1]
    if crop.shape != (content_rows, content_cols):
        # INTER_AREA averages when shrinking (no aliasing of calcifications into noise)
        crop = cv2.resize(crop, (content_cols, content_rows), interpolation=cv2.INTER_AREA)
    return cv2.flip(crop, 1) if transform.flipped else np.ascontiguousarray(crop)


def _place(content: np.ndarray, transform: Transform) -> np.ndarray:
    rows, cols = transform.input_size
    plane = np.zeros((rows, cols), dtype=content.dtype)
    plane[: content.shape[0], : content.shape[1]] = content
    return plane
