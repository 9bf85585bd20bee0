"""The clean display picture the viewer draws findings over.

The API's ``overlay.png`` has the findings burned in (so the viewer could not hide them) and
``input.png`` is the cropped, flipped, resized model input (so boxes in ORIGINAL pixels do not
land on it). The viewer needs the stored image itself: the uploaded file rendered as the
pipeline reads it (Modality LUT → VOI LUT → MONOCHROME1 inversion, ``mammocad.io``), on the
ORIGINAL grid, never mirrored or cropped, downscaled so its long side is at most
:data:`MAX_SIDE` (the viewer scales boxes by ``columns`` / ``rows`` of the result, not by the
picture's size). Rendered once per image and kept beside the study's other pictures, so it is
deleted with the study.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from mammocad.commands.analyze import safe_name
from mammocad.io import read_image
from mammocad.report.pictures import to_uint8

#: long side of the display picture in pixels (as ``render_overlay``'s default)
MAX_SIDE = 2048
PICTURES_FOLDER = "pictures"


def display_path(study_dir: Path, sop_instance_uid: str) -> Path:
    """Where the display picture of an image is kept: ``<study>/pictures/<sop>.display.png``."""
    return study_dir / PICTURES_FOLDER / f"{safe_name(sop_instance_uid)}.display.png"


def render_display(source: Path, *, max_side: int = MAX_SIDE) -> np.ndarray | None:
    """8-bit grey picture of the stored image in ``source``; ``None`` when it cannot be read.

    Returns:
        uint8[h, w] with ``h / w`` the stored ``rows / columns`` (long side ≤ ``max_side``).
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    image = read_image(source)
    if image.pixels is None:
        return None
    rows, columns = image.pixels.shape
    factor = min(1.0, max_side / max(rows, columns))
    grey = to_uint8(image.pixels)
    if factor < 1.0:
        size = (max(1, round(columns * factor)), max(1, round(rows * factor)))
        grey = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return grey


def cached_display(source: Path, target: Path) -> Path | None:
    """``target`` rendered from ``source`` unless it exists; ``None`` when unreadable.

    Written to a temporary file and renamed, so two requests for the same picture never see
    half a PNG.
    """
    if target.is_file():
        return target
    if not source.is_file():
        return None
    grey = render_display(source)
    if grey is None:
        return None
    ok, encoded = cv2.imencode(".png", grey)
    if not ok:
        raise OSError(f"could not encode the display picture of {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(encoded.tobytes())
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
