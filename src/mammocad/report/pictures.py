"""PNG pictures of pipeline intermediates (masks, model inputs) for people to look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt


def to_uint8(image: npt.NDArray[np.floating] | npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """[0, 1] floats or booleans → 8-bit grey (booleans become 0/255)."""
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_png(path: Path, image: npt.NDArray[np.uint8]) -> None:
    """Write a grey (H, W) or colour (H, W, 3, BGR) uint8 picture; raises OSError on failure,
    with the system's errno (a full disk is ENOSPC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # encoded here and written by Python: cv2.imwrite reports a full disk as a bare False, or
    # as success when only the file's last write fails, and the caller must tell it apart
    encoded, data = cv2.imencode(".png", image)
    if not encoded:
        raise OSError(f"could not encode {path} as PNG (shape {image.shape}, {image.dtype})")
    path.write_bytes(data.tobytes())


def input_picture(model_input: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The two-channel model input side by side (display channel | second channel)."""
    if model_input.ndim != 3:
        raise ValueError(f"expected a [C, H, W] model input, got shape {model_input.shape}")
    channels = [to_uint8(channel) for channel in model_input]
    separator = np.full((model_input.shape[1], 8), 128, dtype=np.uint8)
    parts: list[npt.NDArray[np.uint8]] = []
    for channel in channels:
        if parts:
            parts.append(separator)
        parts.append(channel)
    return np.hstack(parts)
