"""Read one DICOM file into an :class:`~mammocad.structures.Image`; bad input is rejected.

:func:`read_dicom` never raises for a bad file: the returned image is either processed (pixels
after the display pipeline) or rejected with a :class:`~mammocad.errors.RejectionCode` and a
sentence saying what to do. Identifiers, laterality and view are filled whenever the header is
readable, so the result can still list a rejected image.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
import zlib
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from mammocad.errors import IngestError, RejectionCode
from mammocad.io.checks import (
    MATRIX_LIMITS_TEXT,
    MAX_MATRIX_PIXELS,
    check_dataset,
    check_mammography,
    check_pixel_data_present,
    check_presentation,
    check_single_frame,
)
from mammocad.io.decode import decode_stored, reraise_fatal
from mammocad.io.display import render
from mammocad.io.options import DEFAULT_OPTIONS, ReadOptions
from mammocad.io.sources import HEAD_SIZE, FileKind, Source, sniff
from mammocad.io.tags import ImageTags, text_value
from mammocad.structures import Image

logger = logging.getLogger(__name__)

DicomInput = str | os.PathLike[str] | bytes | Source
#: header values longer than this (private payloads: Hologic keeps its tomosynthesis
#: projections in a private element) are skipped, not loaded, when only the header is read
HEADER_DEFER_SIZE = 1 << 20
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian
#: bytes read to find the file meta's transfer syntax (the meta group is a few hundred bytes)
META_PEEK_SIZE = 4096
#: largest data set a Deflated file may inflate to: the largest matrix of checks.py in 16 bits,
#: and room for its header
MAX_INFLATED_SIZE = 2 * MAX_MATRIX_PIXELS + (64 << 20)
_DEFLATED = str(DeflatedExplicitVRLittleEndian).encode()
#: value representations with a 4-byte value length in Explicit VR (PS3.5 7.1.2)
_LONG_VRS = {
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"
}  # fmt: skip
_INFLATE_CHUNK = 16 << 20


# A value that breaks its VR (a birth date "1965-03-123") is read as it is: pydicom's
# warning would quote it into the service's log and stderr, and a log must carry no patient
# data (DICOM PS3.15 Annex E lists Patient's Birth Date, Name and ID among the attributes the
# confidentiality profile removes). The readers here check the values they use themselves.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def not_dicom_error(name: str) -> IngestError:
    return IngestError(
        RejectionCode.NOT_DICOM,
        f"{name} is neither a DICOM file (no 'DICM' marker at byte 128, no recognisable data "
        "set) nor a PNG, PGM, TIFF or JPEG image: send DICOM mammograms, or PNG/PGM images "
        "with a sidecar JSON.",
    )


def _fix_transfer_syntax(ds: Dataset) -> None:
    """Give a bare data set (read without file meta, or with a blank Transfer Syntax UID) the
    syntax it was actually read with."""
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if str(ds.file_meta.get("TransferSyntaxUID") or "").strip("\x00 "):
        return  # present and not blank: a blank one is read as missing
    implicit, little = ds.original_encoding
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def quiet_dcmread(stream: BinaryIO, **kwargs: Any) -> Dataset:
    """``pydicom.dcmread`` without its parse warnings.

    pydicom warns (and goes on) on files cut short or malformed; this module detects those
    cases itself and turns them into a rejection with a sentence, so the raw warnings would
    only repeat it on the user's terminal.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pydicom.dcmread(stream, **kwargs)


def read_header(stream: BinaryIO, *, force: bool = False) -> Dataset:
    """The data set in ``stream`` up to its pixel data, values over :data:`HEADER_DEFER_SIZE`
    left unread (pydicom reads them from the file if asked): what every reader of identifiers
    needs, without a private payload of hundreds of MB.

    A Deflated data set is inflated whole by pydicom, header or not: one that would inflate
    past :data:`MAX_INFLATED_SIZE` raises :class:`~mammocad.errors.IngestError` instead.
    """
    position = stream.tell()
    head = stream.read(META_PEEK_SIZE)
    stream.seek(position)
    if _deflated_body_start(head) is not None:
        raw = stream.read()
        stream.seek(position)
        _check_inflated_size(raw, str(getattr(stream, "name", "The file")))
    return quiet_dcmread(stream, stop_before_pixels=True, force=force, defer_size=HEADER_DEFER_SIZE)


def _deflated_body_start(head: bytes) -> int | None:
    """Where the deflated data set starts, when the file meta at the start of ``head`` (the
    first :data:`META_PEEK_SIZE` bytes of a file with the DICM marker) names the Deflated
    transfer syntax; else ``None``.

    The file meta is walked element by element (Explicit VR Little Endian, PS3.10 7.1) up to
    the first element of another group, as pydicom reads it: its File Meta Information Group
    Length may be missing or wrong, which pydicom reads without a word."""
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    position, syntax = 132, b""
    while head[position : position + 2] == b"\x02\x00" and position + 8 <= len(head):
        element = int.from_bytes(head[position + 2 : position + 4], "little")
        if head[position + 4 : position + 6] in _LONG_VRS:
            start = position + 12
            length = int.from_bytes(head[position + 8 : start], "little")
        else:
            start = position + 8
            length = int.from_bytes(head[position + 6 : start], "little")
        if element == 0x0010:
            syntax = head[start : start + length]
        position = start + length
    if position + 2 > len(head):
        return None  # the file meta runs past the bytes read: pydicom's parse says what it is
    return position if syntax.strip(b"\x00 ") == _DEFLATED else None


def _inflates_beyond(body: bytes, limit: int) -> bool:
    """True when the raw deflate stream ``body`` inflates to more than ``limit`` bytes, found
    without holding more than a chunk of its output."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        total = len(inflater.decompress(body, _INFLATE_CHUNK))
        while inflater.unconsumed_tail and total <= limit:
            total += len(inflater.decompress(inflater.unconsumed_tail, _INFLATE_CHUNK))
    except zlib.error:
        return False  # damaged: pydicom's parse says so
    return total > limit


def _check_inflated_size(raw: bytes, name: str) -> None:
    """Reject a Deflated file whose data set inflates past any mammogram's size before pydicom
    inflates it whole in memory: deflate packs 1 GB of zeros into 1 MB."""
    start = _deflated_body_start(raw[:META_PEEK_SIZE])
    if start is not None and _inflates_beyond(raw[start:], MAX_INFLATED_SIZE):
        raise IngestError(
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            f"{name} is Deflated and inflates to more than {MAX_INFLATED_SIZE >> 20} MB, more "
            f"than any mammogram holds ({MATRIX_LIMITS_TEXT}): the file is damaged or not a "
            "mammogram; re-export the image from its source.",
        )


def parse_dataset(raw: bytes, name: str, *, header_only: bool = False) -> Dataset:
    """Parse DICOM bytes; raise ``not_dicom`` or ``unreadable_file`` for what is not."""
    kind = sniff(raw[:HEAD_SIZE])
    if kind not in (FileKind.DICOM, FileKind.DICOM_RAW):
        raise not_dicom_error(name)
    _check_inflated_size(raw, name)
    try:
        ds = quiet_dcmread(
            io.BytesIO(raw), stop_before_pixels=header_only, force=kind is FileKind.DICOM_RAW
        )
    # zlib.error: a Deflated file cut short (its stream ends early); struct.error: a header cut
    # inside a sequence, where pydicom unpacks an item tag from too few bytes
    except (
        InvalidDicomError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        OSError,
        zlib.error,
        struct.error,
    ) as exc:
        raise IngestError(
            RejectionCode.UNREADABLE,
            f"{name} starts like DICOM but its header cannot be parsed ({exc}): the file is "
            "damaged; copy or export it again.",
        ) from exc
    if kind is FileKind.DICOM_RAW and not any(
        keyword in ds for keyword in ("SOPInstanceUID", "SOPClassUID", "Rows")
    ):
        raise not_dicom_error(name)
    _fix_transfer_syntax(ds)
    return ds


def _header_if_pixels_cut(raw: bytes, ds: Dataset) -> Dataset | None:
    """The header, when the file has a top-level Pixel Data element that pydicom dropped.

    When a file ends inside encapsulated Pixel Data (no sequence delimiter), pydicom returns
    an EMPTY data set with only a warning, which would read as "no pixel data" and lose the
    identifiers; a header-only parse still works and shows where the pixel data started.
    """
    if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        return None
    stream = io.BytesIO(raw)
    try:
        header = quiet_dcmread(stream, stop_before_pixels=True, force=True)
    except Exception:
        return None
    position = stream.tell()
    if raw[position : position + 4] not in _PIXEL_TAGS:
        return None
    header.file_meta = ds.file_meta
    return header


def _header_was_cut(ds: Dataset) -> bool:
    """True when the file ends inside its header.

    pydicom returns what it could read without complaint: an empty data set when the file meta
    is cut, else a last element whose value is shorter than its declared length.
    """
    tags = sorted(ds.keys())
    if not tags:
        return True
    # keep_deferred: a value skipped by ``defer_size`` is not loaded just to look at it
    last = ds.get_item(tags[-1], keep_deferred=True)
    length = getattr(last, "length", None)
    value = getattr(last, "value", None)
    if not isinstance(length, int) or length == 0xFFFFFFFF or not isinstance(value, bytes):
        return False
    return len(value) < length


def _fill_identifiers(image: Image, tags: ImageTags, ds: Dataset) -> None:
    image.sop_instance_uid = tags.sop_instance_uid
    image.study_instance_uid = tags.study_instance_uid
    image.series_instance_uid = tags.series_instance_uid
    image.patient_id = tags.patient_id
    image.accession_number = tags.accession_number
    image.laterality, image.laterality_source = tags.laterality, tags.laterality_source
    image.view, image.view_source = tags.view, tags.view_source
    image.rows, image.columns = tags.rows, tags.columns
    image.pixel_spacing_mm = tags.pixel_spacing_mm
    image.manufacturer = tags.manufacturer
    implant = (text_value(ds, "BreastImplantPresent") or "").upper()
    image.implant_present = {"YES": True, "NO": False}.get(implant)
    image.transfer_syntax_uid = text_value(ds.file_meta, "TransferSyntaxUID")
    image.messages.extend(tags.messages)


def _read_input(source: DicomInput, name: str | None) -> tuple[bytes, str, str | None]:
    """Bytes, display name and file name of the input."""
    if isinstance(source, bytes):
        label = name or "<bytes>"
        return source, label, PurePosixPath(name).name if name else None
    if isinstance(source, Source):
        return source.read_bytes(), name or source.name, source.file_name
    path = Path(source)
    return path.read_bytes(), name or str(path), path.name


def _source_label(source: str | os.PathLike[str] | Source) -> str:
    return source.name if isinstance(source, Source) else str(source)


def _decode_into(image: Image, ds: Dataset, options: ReadOptions) -> None:
    image.messages.extend(check_dataset(ds, min_matrix=options.min_matrix))
    decoded = decode_stored(ds, fast=options.fast_decoders, threads=options.decoder_threads)
    image.messages.extend(decoded.messages)
    rendered = render(
        decoded.stored, ds, voi_index=options.voi_index, prefer_voi_lut=options.prefer_voi_lut
    )
    image.pixels = rendered.pixels
    image.padding_mask = rendered.padding_mask
    image.messages.extend(rendered.messages)


def _parse_into(image: Image, raw: bytes, label: str, file_name: str | None) -> Dataset:
    """Parse, fill the identifiers, and raise for a file cut short (identifiers kept)."""
    ds = parse_dataset(raw, label)
    header = _header_if_pixels_cut(raw, ds) if "PixelData" not in ds else None
    # before reading tags: reading converts the raw elements this check looks at
    cut_header = header is None and "PixelData" not in ds and _header_was_cut(ds)
    _fill_identifiers(image, ImageTags.from_dataset(header or ds, file_name=file_name), ds)
    if header is not None:
        raise IngestError(
            RejectionCode.TRUNCATED_PIXEL_DATA,
            "The file ends inside its pixel data: it was cut short in transfer or storage; "
            "copy or export it again.",
        )
    if cut_header:
        raise IngestError(
            RejectionCode.UNREADABLE,
            f"{label} ends inside its header: it was cut short in transfer or storage; "
            "copy or export it again.",
        )
    return ds


def _open_input(source: str | os.PathLike[str] | Source) -> AbstractContextManager[BinaryIO]:
    return source.open() if isinstance(source, Source) else Path(source).open("rb")


def _header_rejection(
    source: str | os.PathLike[str] | Source,
) -> tuple[Dataset, IngestError] | None:
    """The header and its rejection, when the header alone rules the file out.

    Not a mammogram, FOR PROCESSING, multi-frame (tomosynthesis volumes of hundreds of MB to
    GB, which exported examinations carry beside the 2D images), or no Pixel Data (Hologic's
    proprietary projection objects keep a payload as large in a private element): such a file
    is rejected from its header (``stop_before_pixels``, large values skipped) instead of being
    read whole, which would hold its bytes and pydicom's copy of them at once. Anything
    unusual (a header that does not parse or is cut short, a Deflated file, a file that is not
    DICOM) returns ``None``: the full reader then says why.
    """
    try:
        with _open_input(source) as stream:
            head = stream.read(META_PEEK_SIZE)
            kind = sniff(head[:HEAD_SIZE])
            # pydicom inflates a Deflated data set whole even for its header: the full reader
            # first checks what it inflates to
            if kind not in (FileKind.DICOM, FileKind.DICOM_RAW) or _deflated_body_start(head):
                return None
            stream.seek(0)
            header = read_header(stream, force=kind is FileKind.DICOM_RAW)
            position = stream.tell()
            pixels_follow = bool(stream.read(4))
        # a skipped value running past the end: the file was cut inside it (the size of a
        # zip member comes from the archive's directory, without decompressing it; a zip
        # member's stream stops seeking at its end, so the value's own end is compared too)
        size = source.size if isinstance(source, Source) else Path(source).stat().st_size
        if position > size or _deferred_past_end(header, size) or _header_was_cut(header):
            return None
        if kind is FileKind.DICOM_RAW and "SOPInstanceUID" not in header:
            return None
        _fix_transfer_syntax(header)
        check_mammography(header)
        check_presentation(header)
        check_single_frame(header)
        # a Deflated data set is inflated whole by pydicom: the stream says nothing then
        if not pixels_follow and (
            header.file_meta.TransferSyntaxUID != DeflatedExplicitVRLittleEndian
        ):
            check_pixel_data_present(header)
    except IngestError as exc:
        return header, exc
    except Exception:
        return None
    return None


def _deferred_past_end(header: Dataset, size: int) -> bool:
    """True when the header's last value, skipped by ``defer_size``, ends past ``size``."""
    tags = sorted(header.keys())
    if not tags:
        return False
    last = header.get_item(tags[-1], keep_deferred=True)
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if getattr(last, "value", None) is not None or tell is None or not isinstance(length, int):
        return False
    return length != 0xFFFFFFFF and tell + length > size


def _rejected_by_header(
    image: Image, source: str | os.PathLike[str] | Source, name: str | None
) -> bool:
    """Reject ``image`` (identifiers filled) when :func:`_header_rejection` rules it out."""
    early = _header_rejection(source)
    if early is None:
        return False
    header, error = early
    image.source = name or _source_label(source)
    file_name = source.file_name if isinstance(source, Source) else Path(source).name
    _fill_identifiers(image, ImageTags.from_dataset(header, file_name=file_name), header)
    image.reject(error.code, error.message)
    return True


def _out_of_memory_text(image: Image) -> str:
    size = f" ({image.rows}×{image.columns} pixels)" if image.rows and image.columns else ""
    return (
        f"The image{size} could not be read in the memory available: read it on a machine "
        "with more memory, or, if its size is wrong, re-export it from its source."
    )


def read_dicom(
    source: DicomInput, *, name: str | None = None, options: ReadOptions = DEFAULT_OPTIONS
) -> Image:
    """Read, check, decode and render one DICOM file; never raises for bad input.

    Args:
        source: a path, the file's bytes, or a :class:`~mammocad.io.sources.Source`.
        name: what to record as ``Image.source`` (default: the path, or ``<bytes>``).
        options: decoding and display settings.

    Returns:
        An :class:`~mammocad.structures.Image`: ``pixels`` float32[rows, columns] in [0, 1]
        (0 = black) on the stored grid, or rejected with a code and a sentence.
    """
    image = Image(source=name)
    if not isinstance(source, bytes) and _rejected_by_header(image, source, name):
        return image
    try:
        raw, label, file_name = _read_input(source, name)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        image.source = name or (None if isinstance(source, bytes) else _source_label(source))
        image.reject(
            RejectionCode.UNREADABLE,
            f"The file could not be read ({' '.join(str(exc).split())}): check that it exists "
            "and is readable.",
        )
        return image
    image.source = label
    try:
        ds = _parse_into(image, raw, label, file_name)
        del raw  # the data set holds its own copy of the pixel data
        _decode_into(image, ds, options)
    except IngestError as exc:
        image.reject(exc.code, exc.message)
    except MemoryError:
        # this one file's pixels (within the matrix limit of checks.py) do not fit in this
        # machine's memory: reject the file, not the batch; the decoder's buffers are freed
        logger.warning("out of memory reading %s", label)
        image.reject(RejectionCode.DECODE_FAILED, _out_of_memory_text(image))
    except BaseException as exc:  # never crash a batch on one file; keep the cause in the log
        reraise_fatal(exc)
        logger.warning("unexpected error reading %s", label, exc_info=True)
        image.reject(
            RejectionCode.DECODE_FAILED,
            f"The image could not be read ({type(exc).__name__}: {exc}): re-export it from "
            "its source; if it persists, report the file to the mammocad developers.",
        )
    return image
