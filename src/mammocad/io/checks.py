"""Is this data set a 2D FOR PRESENTATION mammogram we can read? Raises IngestError if not.

Order of the checks (the first failing one names the rejection): SOP class / modality
(``not_mammography``), presentation intent (``for_processing``), frames (``multi_frame``), pixel
data present (``no_pixel_data``), pixel format (``unsupported_pixel_format``). Decoding problems
are found later, in :mod:`mammocad.io.decode`.
"""

from __future__ import annotations

import math
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from mammocad.errors import IngestError, RejectionCode
from mammocad.io.naming import parse_text
from mammocad.io.tags import VIEW_CODES, text_value
from mammocad.structures import Message, Severity

MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR (PS3.10 7.2)
BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
BREAST_PROJECTION_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"
BREAST_PROJECTION_PROCESSING = "1.2.840.10008.5.1.4.1.1.13.1.5"

_MAMMOGRAPHY_CLASSES = {MG_PRESENTATION, MG_PROCESSING}
_PROCESSING_CLASSES = {MG_PROCESSING, DX_PROCESSING, BREAST_PROJECTION_PROCESSING}
# Enhanced (functional-group) breast objects: tomosynthesis volumes and projections.
_MULTI_FRAME_CLASSES = {BREAST_TOMOSYNTHESIS, BREAST_PROJECTION_PRESENTATION}
_BREAST_CLASSES = _MAMMOGRAPHY_CLASSES | _MULTI_FRAME_CLASSES | {BREAST_PROJECTION_PROCESSING}
# Projection radiography classes that may hold a mammogram (digitised film, DX exports).
_PROJECTION_CLASSES = {
    DX_PRESENTATION,
    CR_IMAGE,
    SECONDARY_CAPTURE,
    "1.2.840.10008.5.1.4.1.1.7.2",  # multi-frame grayscale byte secondary capture
    "1.2.840.10008.5.1.4.1.1.7.3",  # multi-frame grayscale word secondary capture
}
# Modality values (CID 29) under which digitised or exported mammograms turn up.
_PROJECTION_MODALITIES = {"DX", "CR", "RG", "OT"}
_BREAST_REGION_CODES = {"76752008", "T-04000"}  # breast structure (SNOMED CT, legacy SRT)
# Largest matrix read. The largest mammograms are about 4800×6000 (24×30 cm detectors at 50 µm)
# and a 24×30 cm film scanned at 25 µm is 9600×12000 (115 M pixels); 16384 per side and 2^27
# pixels leave room for those while capping one image at 256 MiB decoded (uint16) and 512 MiB
# rendered (float32). Beyond that the header is wrong or hostile: a few-KB compressed file
# declaring 46000×46000 would make the decoder allocate 4 GB before finding out.
MAX_MATRIX_SIDE = 16384
MAX_MATRIX_PIXELS = 2**27
#: the limits as rejections state them (DICOM and raster files alike)
MATRIX_LIMITS_TEXT = (
    f"mammocad reads up to {MAX_MATRIX_SIDE} pixels a side, {MAX_MATRIX_PIXELS / 1e6:.0f} "
    "million in all; the largest detectors give about 4800×6000"
)
_IMAGE_PIXEL_KEYWORDS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
)


def _reject(code: RejectionCode, text: str) -> IngestError:
    return IngestError(code, text)


def sop_class_of(ds: Dataset) -> str | None:
    """SOP Class UID of the data set, else the file meta Media Storage SOP Class UID.

    RSNA-2023 screening files carry it only in the file meta.
    """
    value = text_value(ds, "SOPClassUID")
    if value is None and getattr(ds, "file_meta", None) is not None:
        value = text_value(ds.file_meta, "MediaStorageSOPClassUID")
    return value


def _class_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else f"SOP class {uid}"


def _has_breast_evidence(ds: Dataset) -> bool:
    """Body part BREAST, a breast anatomic region, a mammography view, or a CBIS-style ID."""
    if (text_value(ds, "BodyPartExamined") or "").upper() == "BREAST":
        return True
    try:
        regions = ds.get("AnatomicRegionSequence") or []
        if any(str(item.get("CodeValue", "")) in _BREAST_REGION_CODES for item in regions):
            return True
        views = ds.get("ViewCodeSequence") or []
        if any(str(item.get("CodeValue", "")) in VIEW_CODES for item in views):
            return True
    except Exception:
        pass
    if parse_text(text_value(ds, "ViewPosition")).view is not None:
        return True
    return parse_text(text_value(ds, "PatientID")).view is not None


def check_mammography(ds: Dataset) -> list[Message]:
    """Raise ``not_mammography`` unless the data set may be a mammogram.

    Accepted: the MG SOP classes or Modality MG; projection classes (DX, CR, Secondary Capture)
    with breast evidence (BodyPartExamined BREAST, a breast region or mammography view code, a
    mammography View Position or CBIS-style PatientID) and no contrary Modality or body part;
    and files with no Modality at all (anonymised exports such as RSNA-2023, which keep only a
    file-meta SOP class), which get an info message ``mammography_assumed``.
    """
    sop_class = sop_class_of(ds)
    modality = (text_value(ds, "Modality") or "").upper()
    body_part = (text_value(ds, "BodyPartExamined") or "").upper()
    if sop_class in _BREAST_CLASSES or modality == "MG":
        return []
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise _reject(
            RejectionCode.NOT_MAMMOGRAPHY,
            "This is a DICOMDIR, the index of a DICOM disc or folder, not an image: mammocad "
            "reads the image files themselves (give their folder as the input), so this file "
            "is passed over.",
        )
    known = sop_class is not None and UID(sop_class).name not in ("", sop_class)
    if known and sop_class not in _PROJECTION_CLASSES and sop_class not in _PROCESSING_CLASSES:
        raise _reject(
            RejectionCode.NOT_MAMMOGRAPHY,
            f"This object is a {_class_name(str(sop_class))}, not a mammogram: "
            "send only mammography images (Modality MG).",
        )
    if modality and modality not in _PROJECTION_MODALITIES:
        raise _reject(
            RejectionCode.NOT_MAMMOGRAPHY,
            f"This is a Modality {modality} image, not a mammogram: "
            "send only mammography images (Modality MG).",
        )
    if body_part and body_part != "BREAST":
        raise _reject(
            RejectionCode.NOT_MAMMOGRAPHY,
            f"Body Part Examined is {body_part}, not BREAST: send only mammography images.",
        )
    if _has_breast_evidence(ds):
        return []
    if not modality:
        return [
            Message(
                code="mammography_assumed",
                severity=Severity.INFO,
                text="The file records no Modality and no body part; it is read as a mammogram "
                "because nothing in it says otherwise.",
            )
        ]
    raise _reject(
        RejectionCode.NOT_MAMMOGRAPHY,
        f"This Modality {modality} image names no breast body part and no mammography view: "
        "if it is a mammogram, export it with Modality MG (or BodyPartExamined BREAST).",
    )


def check_presentation(ds: Dataset) -> None:
    """Raise ``for_processing`` for detector raw data (PS3.3 C.8.11.7, C.8.11.1.1.1)."""
    intent = (text_value(ds, "PresentationIntentType") or "").upper()
    if sop_class_of(ds) in _PROCESSING_CLASSES or intent == "FOR PROCESSING":
        raise _reject(
            RejectionCode.FOR_PROCESSING,
            "This is a FOR PROCESSING image (raw detector data, not meant for display or "
            "reading): export the FOR PRESENTATION image of the same exposure from the "
            "modality or PACS instead.",
        )


def number_of_frames(ds: Dataset) -> int:
    """Number of Frames, 1 when absent or 0 (read as one frame, as pydicom does); raises
    ``missing_metadata`` for a value that is no frame count (negative, not a number)."""
    frames = _whole_number(ds, "NumberOfFrames", default=1)
    if frames < 0:
        raise _reject(
            RejectionCode.MISSING_METADATA,
            f"Number of Frames is {frames}, which no image has, so the pixels cannot be "
            "interpreted: re-export the image from its source.",
        )
    return max(frames, 1)


def check_single_frame(ds: Dataset) -> None:
    """Raise ``multi_frame`` for tomosynthesis and any other multi-frame object."""
    frames = number_of_frames(ds)
    if sop_class_of(ds) in _MULTI_FRAME_CLASSES or frames > 1:
        kind = _class_name(str(sop_class_of(ds))) if sop_class_of(ds) else "image"
        raise _reject(
            RejectionCode.MULTI_FRAME,
            f"This is a multi-frame {kind} ({frames} frame(s)); mammocad reads 2D mammograms "
            "only: send the 2D FOR PRESENTATION images (full-field or synthesised 2D) instead.",
        )


def check_pixel_data_present(ds: Dataset) -> None:
    """Raise ``no_pixel_data`` (or ``unsupported_pixel_format`` for float pixel data)."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise _reject(
                RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
                "The image holds floating-point pixel data, which no mammography device "
                "writes: send the original integer-valued mammogram.",
            )
        raise _reject(
            RejectionCode.NO_PIXEL_DATA,
            "The file has no Pixel Data (7FE0,0010): it is a header-only object; "
            "send the image itself.",
        )
    if not ds.PixelData:  # present but empty (zero length): nothing to decode
        raise _reject(
            RejectionCode.NO_PIXEL_DATA,
            "The file's Pixel Data (7FE0,0010) is empty: it holds no image; send the image itself.",
        )


def _check_image_pixel_module(ds: Dataset) -> None:
    """The Type 1 attributes the decoder needs (PS3.3 C.7.6.3), present and consistent."""
    for keyword in _IMAGE_PIXEL_KEYWORDS:
        if ds.get(keyword) in (None, ""):
            raise _reject(
                RejectionCode.MISSING_METADATA,
                f"The Image Pixel module lacks {keyword}, so the pixels cannot be interpreted: "
                "re-export the image from its source.",
            )
    if _whole_number(ds, "SamplesPerPixel", default=1) < 1:
        raise _reject(
            RejectionCode.MISSING_METADATA,
            f"Samples per Pixel is {ds.SamplesPerPixel}, but an image has at least one sample "
            "per pixel, so the pixels cannot be interpreted: re-export the image from its "
            "source.",
        )
    if _whole_number(ds, "PixelRepresentation", default=0) not in (0, 1):
        raise _reject(
            RejectionCode.MISSING_METADATA,
            f"Pixel Representation is {ds.PixelRepresentation}, but it must be 0 (unsigned) or "
            "1 (signed), so the pixels cannot be interpreted: re-export the image from its "
            "source.",
        )
    if int(ds.BitsStored) > int(ds.BitsAllocated):
        raise _reject(
            RejectionCode.MISSING_METADATA,
            f"Bits Stored ({ds.BitsStored}) exceeds Bits Allocated ({ds.BitsAllocated}), but the "
            "stored bits must fit in the allocated pixel cell (PS3.5 8.1.1), so the pixels "
            "cannot be interpreted: re-export the image from its source.",
        )


def _whole_number(ds: Dataset, keyword: str, *, default: int) -> int:
    """The element's integer value (``default`` when absent); ``missing_metadata`` when it
    is not a whole number."""
    value: Any = None
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return default
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not number.is_integer():
        raise _reject(
            RejectionCode.MISSING_METADATA,
            f"{keyword} is {str(value)[:32]!r}, not a whole number, so the pixels cannot be "
            "interpreted: re-export the image from its source.",
        )
    return int(number)


def exceeds_matrix_limits(rows: int, columns: int) -> bool:
    """Larger than any mammogram: over :data:`MAX_MATRIX_SIDE` a side or
    :data:`MAX_MATRIX_PIXELS` in all (checked before decoding, DICOM and raster files alike)."""
    return max(rows, columns) > MAX_MATRIX_SIDE or rows * columns > MAX_MATRIX_PIXELS


def _check_matrix(ds: Dataset, *, min_matrix: int) -> None:
    rows, columns = int(ds.Rows), int(ds.Columns)
    if rows < min_matrix or columns < min_matrix:
        raise _reject(
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            f"The pixel matrix is {rows}×{columns}, too small to be a mammogram (a header "
            "fixture, icon or thumbnail): send the full-resolution image.",
        )
    if exceeds_matrix_limits(rows, columns):
        raise _reject(
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            f"The pixel matrix is {rows}×{columns}, larger than any mammogram "
            f"({MATRIX_LIMITS_TEXT}): the header's Rows/Columns are wrong or the file is not a "
            "mammogram; re-export the image from its source.",
        )


def check_pixel_format(ds: Dataset, *, min_matrix: int) -> None:
    """Raise ``no_pixel_data``, ``missing_metadata`` or ``unsupported_pixel_format``."""
    check_pixel_data_present(ds)
    _check_image_pixel_module(ds)
    photometric = (text_value(ds, "PhotometricInterpretation") or "").upper()
    samples = _whole_number(ds, "SamplesPerPixel", default=1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _reject(
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            f"The image is {photometric or 'of unknown photometry'} with {samples} sample(s) "
            "per pixel; mammocad reads grayscale (MONOCHROME1/2) mammograms only: send the "
            "original grayscale image, not a colour rendering.",
        )
    if int(ds.BitsAllocated) not in (8, 16) or not 1 <= int(ds.BitsStored) <= 16:
        raise _reject(
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            f"Bits Allocated {ds.BitsAllocated} / Bits Stored {ds.BitsStored} is not a "
            "mammography pixel format (8 or 16 bits allocated): send the original image.",
        )
    _check_matrix(ds, min_matrix=min_matrix)


def check_dataset(ds: Dataset, *, min_matrix: int) -> list[Message]:
    """All checks in order; returns info messages for accepted data sets."""
    notes = check_mammography(ds)
    check_presentation(ds)
    check_single_frame(ds)
    check_pixel_format(ds, min_matrix=min_matrix)
    return notes
