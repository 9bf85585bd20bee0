"""PNG / PGM / TIFF / JPEG mammograms (mini-MIAS, DDSM derivatives, dataset exports).

A raster file has no header worth the name, so its metadata comes, in this order, from the
caller's keyword arguments, a sidecar ``<file>.json`` next to the image (e.g.
``mdb001.png.json``), and the file name (``A_0010_1.RIGHT_MLO.png``, source ``filename``).
Sidecar keys (all optional; others are ignored)::

    {"laterality": "L" | "R", "view": "CC" | "MLO" | ..., "patient_id": "...",
     "study_instance_uid": "1.2...", "series_instance_uid": "1.2...",
     "sop_instance_uid": "1.2...", "accession_number": "...",
     "pixel_spacing_mm": 0.2 | [row_mm, column_mm]}

Identifiers that are not given are derived deterministically, so the same file always gets the
same UIDs (pydicom ``generate_uid`` with ``entropy_srcs``): the SOP Instance UID from the SHA-256
of the file's bytes, the Study Instance UID from the patient ID when one is given (all images
of a patient form one study) and otherwise from the SHA-256 (one study per image).

Pixels: 8-bit files are display images already (value / 255); 16-bit and float files carry no
VOI, so, as DICOM files without one, they are mapped linearly from their minimum to their
maximum. Colour files whose channels are equal are read as gray; others are rejected.

Size: the matrix is read from the file's header (:func:`raster_matrix`) and checked against
the DICOM limits (:mod:`mammocad.io.checks`) before OpenCV decodes anything: a PNG of a few KB
can declare 32768×32767 pixels, and decoding it would take gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import PIL.Image
from pydicom.uid import generate_uid

from mammocad.errors import IngestError, RejectionCode
from mammocad.io.checks import MATRIX_LIMITS_TEXT, exceeds_matrix_limits
from mammocad.io.naming import parse_text
from mammocad.io.options import DEFAULT_OPTIONS, ReadOptions
from mammocad.io.sources import HEAD_SIZE, FileKind, Source, sniff
from mammocad.structures import FloatArray, Image, Laterality, TagSource, ViewPosition

logger = logging.getLogger(__name__)

RasterInput = str | os.PathLike[str] | bytes | Source
_SIDE_WORDS = {"L": Laterality.L, "LEFT": Laterality.L, "R": Laterality.R, "RIGHT": Laterality.R}
_TEXT_KEYS = (
    "patient_id",
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "accession_number",
)


def parse_laterality(value: Laterality | str) -> Laterality:
    """``L``/``R`` (also ``left``/``right``), or ValueError."""
    if isinstance(value, Laterality):
        return value
    side = _SIDE_WORDS.get(str(value).strip().upper())
    if side is None:
        raise ValueError(f"laterality must be 'L' or 'R', got {value!r}")
    return side


def parse_view(value: ViewPosition | str) -> ViewPosition:
    """A :class:`ViewPosition` value (``CC``, ``MLO``...), or ValueError."""
    if isinstance(value, ViewPosition):
        return value
    try:
        return ViewPosition(str(value).strip().upper())
    except ValueError:
        allowed = ", ".join(v.value for v in ViewPosition)
        raise ValueError(f"view must be one of {allowed}, got {value!r}") from None


def parse_spacing(value: Any) -> tuple[float, float]:
    """One number (square pixels) or ``[row, column]`` in mm, both positive; or ValueError."""
    values = [value, value] if isinstance(value, int | float) else list(value)
    if len(values) != 2 or not all(isinstance(v, int | float) and v > 0 for v in values):
        raise ValueError(f"pixel_spacing_mm must be a positive number or two, got {value!r}")
    return float(values[0]), float(values[1])


def _load_sidecar(source: RasterInput, sidecar: Mapping[str, Any] | None) -> dict[str, Any]:
    if sidecar is not None:
        return dict(sidecar)
    if isinstance(source, Source):
        if source.sidecar is None:
            return {}
        text, label = source.sidecar.read_bytes(), source.sidecar.name
    elif isinstance(source, bytes):
        return {}
    else:
        path = Path(f"{os.fspath(source)}.json")
        if not path.is_file():
            return {}
        text, label = path.read_bytes(), str(path)
    try:
        loaded = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestError(
            RejectionCode.UNREADABLE,
            f"The sidecar {label} is not valid JSON ({exc}): fix or remove it.",
        ) from exc
    if not isinstance(loaded, dict):
        raise IngestError(
            RejectionCode.UNREADABLE, f"The sidecar {label} must hold a JSON object: fix it."
        )
    return loaded


def _apply_metadata(image: Image, given: dict[str, Any], file_name: str | None) -> None:
    """Caller's values (already merged over the sidecar), then the file name."""
    try:
        for key in _TEXT_KEYS:
            if given.get(key) is not None:
                setattr(image, key, str(given[key]))
        if given.get("laterality") is not None:
            image.laterality = parse_laterality(given["laterality"])
            image.laterality_source = TagSource.OTHER
        if given.get("view") is not None:
            image.view = parse_view(given["view"])
            image.view_source = TagSource.OTHER
        if given.get("pixel_spacing_mm") is not None:
            image.pixel_spacing_mm = parse_spacing(given["pixel_spacing_mm"])
    except (ValueError, TypeError) as exc:
        raise IngestError(
            RejectionCode.UNREADABLE, f"The image's metadata are invalid: {exc}; fix the sidecar."
        ) from exc
    evidence = parse_text(file_name)
    if image.laterality is None and evidence.laterality is not None:
        image.laterality, image.laterality_source = evidence.laterality, TagSource.FILENAME
    if image.view is None and evidence.view is not None:
        image.view, image.view_source = evidence.view, TagSource.FILENAME


def _derive_uids(image: Image, raw: bytes) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    if image.sop_instance_uid is None:
        image.sop_instance_uid = generate_uid(entropy_srcs=["mammocad raster image", digest])
    if image.study_instance_uid is None:
        basis = f"patient {image.patient_id}" if image.patient_id else f"image {digest}"
        image.study_instance_uid = generate_uid(entropy_srcs=["mammocad raster study", basis])


def _gray(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[2] in (3, 4):
        colour = array[..., :3]
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(
            colour[..., 0], colour[..., 2]
        ):
            return np.ascontiguousarray(colour[..., 0])
    raise IngestError(
        RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
        f"The raster image has shape {array.shape} with differing colour channels; mammocad "
        "reads grayscale mammograms only: send the original grayscale image.",
    )


def _tiff_matrix(raw: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD, the page OpenCV decodes."""
    order = "<" if raw[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", raw, 4)
        (count,) = struct.unpack_from(order + "H", raw, offset)
        size: dict[int, int] = {}
        for entry in range(offset + 2, offset + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", raw, entry)
            if tag in (256, 257) and kind in (3, 4):  # SHORT or LONG
                (size[tag],) = struct.unpack_from(
                    order + ("H" if kind == 3 else "I"), raw, entry + 8
                )
    except struct.error:  # offsets beyond the end of the file
        return None
    return (size[257], size[256]) if len(size) == 2 else None


def raster_matrix(raw: bytes) -> tuple[int, int] | None:
    """``(rows, columns)`` from the header of a PNG, PGM/PPM, TIFF or JPEG file, without
    decoding it; ``None`` when the header gives no size (damaged, or not such a file).

    OpenCV cannot read a header alone; Pillow's ``Image.open`` reads only the header. Where
    Pillow refuses a file OpenCV decodes — a float64 TIFF, a PNG with a bad CRC in an
    ancillary chunk — the TIFF's first directory (the page OpenCV decodes) or the PNG's IHDR
    is read here instead.
    """
    try:
        with warnings.catch_warnings():
            # only the size is wanted: its decompression-bomb guard (89 Mpx) would warn on a
            # 9600×12000 film scan (the limits that apply are mammocad's own, in
            # check_raster_matrix), and its EXIF and other complaints are not ours to report
            warnings.simplefilter("ignore")
            with PIL.Image.open(io.BytesIO(raw)) as opened:
                columns, rows = opened.size
                return rows, columns
    except PIL.Image.DecompressionBombError as error:  # over 2 × 89 Mpx: beyond our limits
        raise _too_large(f"over {2 * (PIL.Image.MAX_IMAGE_PIXELS or 0)} pixels") from error
    except (OSError, ValueError, SyntaxError):  # UnidentifiedImageError is an OSError
        if raw.startswith(b"\x89PNG\r\n\x1a\n") and raw[12:16] == b"IHDR" and len(raw) >= 24:
            # Pillow refuses a bad CRC in an ancillary chunk (tEXt, pHYs), which libpng, and
            # so OpenCV, only warns about: the size is the IHDR's, the first chunk
            columns, rows = struct.unpack(">II", raw[16:24])
            return rows, columns
        return _tiff_matrix(raw) if raw[:2] in (b"II", b"MM") else None


def _too_large(size: str) -> IngestError:
    return IngestError(
        RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
        f"The image is {size}, larger than any mammogram ({MATRIX_LIMITS_TEXT}): the file is "
        "damaged or not a mammogram; export the image again from its source.",
    )


def check_raster_matrix(matrix: tuple[int, int] | None) -> None:
    """IngestError when the header gave no size (:func:`raster_matrix`), or one larger than
    the DICOM limits (which keep one hostile file from exhausting memory)."""
    if matrix is None:
        raise IngestError(
            RejectionCode.UNREADABLE,
            "The raster image is corrupt or cut short (its header gives no image size): copy "
            "or export it again.",
        )
    rows, columns = matrix
    if exceeds_matrix_limits(rows, columns):
        raise _too_large(f"{rows}×{columns}")


def raster_pixels(raw: bytes, *, min_matrix: int) -> FloatArray:
    """Decode with OpenCV (IMREAD_UNCHANGED) and map to float32 [0, 1] (module docstring).

    Check the header's size first (:func:`check_raster_matrix`): this decodes whatever it is
    given.
    """
    array = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise IngestError(
            RejectionCode.UNREADABLE,
            "The raster image is corrupt or cut short (OpenCV cannot decode it): copy or "
            "export it again.",
        )
    gray = _gray(array)
    if min(gray.shape) < min_matrix:
        raise IngestError(
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            f"The image is {gray.shape[0]}×{gray.shape[1]}, too small to be a mammogram: "
            "send the full-resolution image.",
        )
    if gray.dtype == np.uint8:
        return (gray.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    values = gray.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return scaled.astype(np.float32)


def _label(source: RasterInput) -> str | None:
    if isinstance(source, bytes):
        return None
    return source.name if isinstance(source, Source) else os.fspath(source)


def _read_raw(source: RasterInput, name: str | None) -> tuple[bytes, str | None, str | None]:
    if isinstance(source, bytes):
        return source, name, PurePosixPath(name).name if name else None
    if isinstance(source, Source):
        return source.read_bytes(), name or source.name, source.file_name
    path = Path(source)
    return path.read_bytes(), name or str(path), path.name


def _given(**values: Any) -> dict[str, Any]:
    """Validated caller metadata (ValueError on misuse)."""
    parsers: dict[str, Any] = {
        "laterality": parse_laterality,
        "view": parse_view,
        "pixel_spacing_mm": parse_spacing,
    }
    return {
        key: parsers[key](value) if key in parsers else str(value)
        for key, value in values.items()
        if value is not None
    }


def describe_raster(
    source: RasterInput,
    *,
    name: str | None = None,
    sidecar: Mapping[str, Any] | None = None,
    **metadata: Any,
) -> tuple[Image, bytes | None]:
    """Identifiers, laterality, view and spacing of a raster file, without decoding pixels.

    Returns the image (rejected when the file or its sidecar cannot be read) and the file's
    bytes (``None`` when unreadable). ``metadata`` takes the keyword arguments of
    :func:`read_raster`.
    """
    given = _given(**metadata)
    image = Image(source=name)
    try:
        raw, image.source, file_name = _read_raw(source, name)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        image.source = name or _label(source)
        image.reject(
            RejectionCode.UNREADABLE,
            f"The file could not be read ({exc}): check that it exists and is readable.",
        )
        return image, None
    try:
        merged = _load_sidecar(source, sidecar)
        merged.update(given)
        _apply_metadata(image, merged, file_name)
        _derive_uids(image, raw)
    except IngestError as exc:
        image.reject(exc.code, exc.message)
    return image, raw


def read_raster(
    source: RasterInput,
    *,
    name: str | None = None,
    laterality: Laterality | str | None = None,
    view: ViewPosition | str | None = None,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    sidecar: Mapping[str, Any] | None = None,
    options: ReadOptions = DEFAULT_OPTIONS,
) -> Image:
    """Read a raster mammogram; never raises for a bad file (it is rejected instead).

    Keyword values win over the sidecar (``sidecar`` given here, else ``<file>.json``), which
    wins over the file name. Invalid keyword values raise ValueError (that is API misuse).
    Returns ``pixels`` float32[rows, columns] in [0, 1] on the file's own grid.
    """
    image, raw = describe_raster(
        source,
        name=name,
        sidecar=sidecar,
        laterality=laterality,
        view=view,
        patient_id=patient_id,
        study_instance_uid=study_instance_uid,
        sop_instance_uid=sop_instance_uid,
        pixel_spacing_mm=pixel_spacing_mm,
    )
    if raw is None or not image.is_processed:
        return image
    try:
        kind = sniff(raw[:HEAD_SIZE])
        if kind is not FileKind.RASTER:
            hint = "read it as DICOM" if "DICOM" in kind.name else "send PNG, PGM, TIFF or JPEG"
            raise IngestError(
                RejectionCode.NOT_DICOM,
                f"{image.source} is not a PNG, PGM, TIFF or JPEG image: {hint}.",
            )
        # known from the header, so that a rejected image still says its size
        matrix = raster_matrix(raw)
        image.rows, image.columns = matrix or (0, 0)
        check_raster_matrix(matrix)  # before any decoding
        pixels = raster_pixels(raw, min_matrix=options.min_matrix)
        image.rows, image.columns = pixels.shape
        image.pixels = pixels
    except IngestError as exc:
        image.reject(exc.code, exc.message)
    except MemoryError:
        # as for DICOM (io.dicom.read_dicom): this one file's pixels, within the matrix limit,
        # do not fit in this machine's memory; reject the file, not the batch
        logger.warning("out of memory reading %s", image.source)
        size = f" ({image.rows}×{image.columns} pixels)" if image.rows and image.columns else ""
        image.reject(
            RejectionCode.DECODE_FAILED,
            f"The image{size} could not be read in the memory available: read it on a machine "
            "with more memory, or, if its size is wrong, re-export it from its source.",
        )
    return image
