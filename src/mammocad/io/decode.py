"""Stored pixel values of a single-frame grayscale data set, for every common transfer syntax.

Native syntaxes (Implicit/Explicit VR Little Endian, Explicit VR Big Endian, Deflated) go through
pydicom's native decoder after a length check. Encapsulated frames (PS3.5 A.4) first pass an
integrity check: a JPEG, JPEG-LS, JPEG 2000 or HTJ2K codestream must end with its EOI/EOC marker
``FFD9`` (ISO/IEC 10918-1 B.2.1, 14495-1 C.1, 15444-1 A.4.4), which byte stuffing keeps out of
the entropy-coded data. Without that check a cut stream is silently decoded by pydicom's
plugins into an image whose lower part is garbage. The codestream's own size (JPEG 2000 SIZ,
JPEG / JPEG-LS SOF) must also be Rows × Columns: a stream of a few KB may declare 60000×60000
pixels, which the header's matrix limits (:mod:`mammocad.io.checks`) do not see, and each
decoder would allocate them. Native data must hold Rows × Columns pixels, give or take padding
(not a row more: the header would then not describe them).

Then the fast path: imagecodecs on the frame (CharLS; OpenJPEG with threads for JPEG 2000 and
HTJ2K; libjpeg-turbo for JPEG Lossless; all release the GIL), used for unsigned single-channel
data and only when its result has the shape, dtype and value range pydicom would return, so it
is bit-exact with pydicom's plugins (tests check every syntax). Any other case, and any
fast-path failure, falls back to pydicom's plugins (pyjpegls, pylibjpeg, Pillow; never gdcm,
which aborts the process on damaged streams). Lossy JPEG (Baseline/Extended) always uses
pydicom: different IDCTs round differently, so no fast path would be bit-exact.

Last, bits above Bits Stored are cleared (sign-extended when signed; PS3.5 8.1.1): pydicom does
so for native, RLE and JPEG Lossless data but not for JPEG-LS or JPEG 2000, and the same file must
read the same in every transfer syntax.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom.uid as uids
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID
from rle.utils import decode_segment

from mammocad.errors import IngestError, RejectionCode
from mammocad.structures import Message, Severity

StoredArray = npt.NDArray[np.integer]

# JPEG 2000 and HTJ2K transfer syntaxes: their frames' size is in a SIZ segment
_J2K_SYNTAXES = {
    uids.JPEG2000Lossless,
    uids.JPEG2000,
    uids.HTJ2KLossless,
    uids.HTJ2KLosslessRPCL,
    uids.HTJ2K,
}
# Transfer syntaxes whose frames are codestreams terminated by an FFD9 marker.
_MARKER_TERMINATED = {
    uids.JPEGBaseline8Bit,
    uids.JPEGExtended12Bit,
    uids.JPEGLossless,
    uids.JPEGLosslessSV1,
    uids.JPEGLSLossless,
    uids.JPEGLSNearLossless,
    *_J2K_SYNTAXES,
}
_ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000), little endian
_REEXPORT = "re-export it uncompressed or with JPEG 2000 / JPEG-LS lossless"
# Fallback plugins, fastest first (CharLS before libjpeg for JPEG-LS, pylibjpeg-rle before
# pydicom's numpy RLE). gdcm is left out on purpose: python-gdcm 3.2 aborts the interpreter
# (C++ abort, no Python exception) on a damaged JPEG 2000 stream, and one bad file must never
# take a batch down.
_PLUGIN_ORDER = ("pyjpegls", "pylibjpeg", "pillow", "pydicom")


def reraise_fatal(exc: BaseException) -> None:
    """Re-raise interpreter-level exceptions; swallow the rest.

    Decoders written in Rust (pylibjpeg-rle, via pyo3) raise ``PanicException`` on damaged
    input, which derives from BaseException, not Exception: catching only Exception would let
    one bad file end the batch.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
        raise exc


@dataclass(frozen=True, slots=True)
class Decoded:
    """Stored values ``[rows, columns]`` (dtype from Bits Allocated / Pixel Representation), the
    decoder that produced them (``imagecodecs.<codec>`` or ``pydicom``) and warnings about them."""

    stored: StoredArray
    decoder: str
    messages: tuple[Message, ...] = ()


@lru_cache(maxsize=8)
def _fast_decoders(threads: int) -> dict[str, tuple[str, Callable[[bytes], np.ndarray]]]:
    # imported on first use: reading needs it only for compressed pixel data, and training
    # nodes that never decode DICOM need not install it
    import imagecodecs

    def jpeg2k(frame: bytes) -> np.ndarray:
        return np.asarray(imagecodecs.jpeg2k_decode(frame, numthreads=threads))

    def lossless_jpeg(frame: bytes) -> np.ndarray:
        # libjpeg-turbo 3 decodes process 14 (all predictors, 2-16 bit) fastest here
        return np.asarray(imagecodecs.jpeg8_decode(frame))

    return {
        uids.JPEG2000Lossless: ("imagecodecs.jpeg2k", jpeg2k),
        uids.JPEG2000: ("imagecodecs.jpeg2k", jpeg2k),
        # OpenJPEG decodes HTJ2K too. imagecodecs' OpenJPH (htj2k_decode) is ~2x faster but
        # swallows errors raised in its callback and returns a partial image for a damaged
        # stream, so it is not used.
        uids.HTJ2KLossless: ("imagecodecs.jpeg2k", jpeg2k),
        uids.HTJ2KLosslessRPCL: ("imagecodecs.jpeg2k", jpeg2k),
        uids.HTJ2K: ("imagecodecs.jpeg2k", jpeg2k),
        uids.JPEGLSLossless: ("imagecodecs.jpegls", imagecodecs.jpegls_decode),
        uids.JPEGLSNearLossless: ("imagecodecs.jpegls", imagecodecs.jpegls_decode),
        uids.JPEGLossless: ("imagecodecs.jpeg8", lossless_jpeg),
        uids.JPEGLosslessSV1: ("imagecodecs.jpeg8", lossless_jpeg),
    }


def expected_dtype(ds: Dataset) -> np.dtype[np.integer]:
    """The dtype pydicom returns for a single-sample image (PS3.5 8.1.1)."""
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


def _syntax_name(uid: UID) -> str:
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _check_decodable(uid: UID) -> None:
    try:
        usable = not uid.is_encapsulated or bool(_plugins(uid))
    except (NotImplementedError, ValueError):
        usable = False
    if not usable:
        raise IngestError(
            RejectionCode.UNSUPPORTED_TRANSFER_SYNTAX,
            f"The pixel data use the transfer syntax {_syntax_name(uid)}, which no installed "
            "decoder reads: ask the sender for JPEG 2000, JPEG-LS, JPEG Lossless or "
            "uncompressed (Explicit VR Little Endian) images.",
        )


def _matrix_mismatch(ds: Dataset, what: str) -> IngestError:
    return IngestError(
        RejectionCode.DECODE_FAILED,
        f"The pixel data hold {what}, but Rows, Columns and Bits Allocated declare "
        f"{int(ds.Rows)}×{int(ds.Columns)} pixels of {int(ds.BitsAllocated)} bits: the header "
        "does not describe the pixel data (wrong matrix or bit depth, or several frames "
        "without Number of Frames), so they cannot be read; re-export the image from its "
        "source.",
    )


def _check_native_length(ds: Dataset) -> None:
    """Native pixel data as long as Rows × Columns × Bits Allocated / 8 (PS3.5 8.1.1), give or
    take padding: shorter is a cut file; a row or more longer means the header's matrix or bit
    depth is wrong (an image read through it would be sheared garbage, or several frames)."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel") or 1)
    row_bytes = columns * samples * int(ds.BitsAllocated) // 8
    expected = rows * row_bytes
    actual = len(ds.PixelData)
    if actual < expected:
        raise IngestError(
            RejectionCode.TRUNCATED_PIXEL_DATA,
            f"The pixel data are incomplete ({actual} of {expected} bytes): the file was cut "
            "short in transfer or storage; copy or export it again.",
        )
    if actual - expected >= max(row_bytes, 2):
        raise _matrix_mismatch(ds, f"{actual} bytes ({expected} expected)")


def single_frame(ds: Dataset) -> bytes:
    """The one encapsulated frame (all its fragments joined)."""
    element = ds["PixelData"]
    if not element.is_undefined_length and bytes(element.value or b"")[:4] != _ITEM_TAG:
        # encapsulated pixel data have an undefined length and start with an item (PS3.5
        # A.4); without either they are native data under a file meta naming a compressed syntax
        uid = UID(str(ds.file_meta.TransferSyntaxUID))
        raise IngestError(
            RejectionCode.DECODE_FAILED,
            f"The file meta names the compressed transfer syntax {_syntax_name(uid)}, but the "
            "pixel data are not encapsulated (they have a defined length, as uncompressed data "
            "do): the file's Transfer Syntax UID (0002,0010) is wrong; re-export the image from "
            "its source.",
        )
    try:
        return next(generate_frames(ds.PixelData, number_of_frames=1))
    except (ValueError, StopIteration, KeyError) as exc:
        raise IngestError(
            RejectionCode.TRUNCATED_PIXEL_DATA,
            f"The encapsulated pixel data are broken ({exc}): the file was cut short or "
            "damaged; copy or export it again.",
        ) from exc


def _check_end_marker(frame: bytes, uid: UID) -> None:
    if uid in _MARKER_TERMINATED and b"\xff\xd9" not in frame.rstrip(b"\x00")[-16:]:
        raise IngestError(
            RejectionCode.TRUNCATED_PIXEL_DATA,
            f"The {uid.name} stream ends without its end-of-image marker: the file was cut "
            "short in transfer or storage; copy or export it again.",
        )


# JPEG (ISO/IEC 10918-1 B.1.1.3) and JPEG-LS (14495-1 C.2.2) start-of-frame markers
_SOF_MARKERS = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}
_SOF_MARKERS.add(0xF7)
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length follows


def _j2k_matrix(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) of a JPEG 2000 / HTJ2K codestream's SIZ segment (15444-1 A.5.1: the
    image area is Xsiz − XOsiz by Ysiz − YOsiz), also inside a JP2 wrapper."""
    start = frame.find(b"\xff\x4f\xff\x51", 0, 4096)
    if start < 0 or len(frame) < start + 24:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", frame, start + 8)
    if xsiz <= xosiz or ysiz <= yosiz:
        return None  # no image area: a damaged header, which the decoders report
    return ysiz - yosiz, xsiz - xosiz


def _jpeg_matrix(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) of a JPEG or JPEG-LS stream's start-of-frame segment (rows 0: defined
    later by a DNL segment)."""
    position = 2 if frame.startswith(b"\xff\xd8") else -1
    while 0 <= position < min(len(frame), 1 << 16) - 9:
        if frame[position] != 0xFF:
            return None
        marker = frame[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE_MARKERS:
            position += 2
            continue
        if marker in _SOF_MARKERS:
            rows, columns = struct.unpack_from(">HH", frame, position + 5)
            return rows, columns
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", frame, position + 2)
        position += 2 + length
    return None


def _check_codestream_matrix(ds: Dataset, frame: bytes, uid: UID) -> None:
    """Reject a codestream whose own size differs from Rows × Columns, before any decoder
    allocates it: the matrix limits of checks.py apply to the header, and a few-KB stream
    declaring 60000×60000 pixels would otherwise cost each decoder gigabytes and minutes."""
    if uid in _J2K_SYNTAXES:
        matrix = _j2k_matrix(frame)
    elif uid in _MARKER_TERMINATED:
        matrix = _jpeg_matrix(frame)
    else:
        return
    if matrix is None:
        return  # not found: the decoders say what is wrong with the stream
    rows, columns = matrix
    if columns != int(ds.Columns) or rows not in (0, int(ds.Rows)):
        raise IngestError(
            RejectionCode.DECODE_FAILED,
            f"The {uid.name} stream holds a {rows}×{columns} image, but the header's Rows × "
            f"Columns are {int(ds.Rows)}×{int(ds.Columns)}: the header does not describe the "
            "pixel data, so they are not decoded; re-export the image from its source.",
        )


def _fast_decode(ds: Dataset, frame: bytes, uid: UID, threads: int) -> Decoded | None:
    """imagecodecs result when it is certainly what pydicom would return, else ``None``."""
    entry = _fast_decoders(threads).get(uid)
    if entry is None or int(ds.get("PixelRepresentation") or 0) != 0:
        return None
    name, decode = entry
    try:
        out = np.asarray(decode(frame))
    except BaseException as exc:  # the fallback decides whether the stream is really bad
        reraise_fatal(exc)
        return None
    dtype = expected_dtype(ds)
    if out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    if out.shape != (int(ds.Rows), int(ds.Columns)) or out.dtype.kind != "u":
        return None
    if out.dtype.itemsize > dtype.itemsize:
        return None
    # pydicom masks bits above Bits Stored for some syntaxes and not others: let it decide
    if out.size and int(out.max()) >> int(ds.BitsStored):
        return None
    return Decoded(stored=out.astype(dtype, copy=False), decoder=name)


def _plugins(uid: UID) -> list[str]:
    """pydicom plugins to try, fastest first; never gdcm (module docstring)."""
    available = set(get_decoder(uid).available_plugins)
    return [name for name in _PLUGIN_ORDER if name in available]


def _check_rle_segments(ds: Dataset, frame: bytes) -> None:
    """Reject RLE segments a row or more longer than Rows × Columns: pydicom's RLE decoder
    keeps their first Rows × Columns bytes with only a warning, and an image read that way
    through a wrong Columns is sheared garbage (a byte of padding is harmless). The first
    segment is decoded here on its own (every segment holds one byte of each pixel), not
    told from pydicom's warning: ``warnings.catch_warnings`` is process-wide, and two images
    decoded at once on two threads (StudyStream's workers, the service) got each other's."""
    if len(frame) < 64:
        return  # no RLE header: the decoders say what is wrong
    count = int.from_bytes(frame[:4], "little")
    offsets = [*struct.unpack_from("<15I", frame, 4)[: max(count, 0)], len(frame)]
    if not 1 <= count <= 15 or not 64 <= offsets[0] < offsets[1] <= len(frame):
        return
    try:
        decoded = len(decode_segment(frame[offsets[0] : offsets[1]]))
    except BaseException as exc:  # damaged: the decoders say what is wrong
        reraise_fatal(exc)
        return
    expected = int(ds.Rows) * int(ds.Columns)
    if decoded - expected >= max(int(ds.Columns), 2):
        raise _matrix_mismatch(ds, f"RLE segments of {decoded} bytes ({expected} expected)")


def _pydicom_decode(ds: Dataset, uid: UID) -> Decoded:
    plugins = _plugins(uid) if uid.is_encapsulated else [""]
    # checks.py reads Photometric Interpretation case-blind; pydicom refuses "monochrome2"
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    options: dict[str, Any] = {"photometric_interpretation": photometric} if photometric else {}
    failures = []
    for plugin in plugins:
        try:
            array = pixel_array(ds, decoding_plugin=plugin, **options)
        except BaseException as exc:
            reraise_fatal(exc)
            failures.append(f"{plugin or 'pydicom'}: {' '.join(str(exc).split())[:160]}")
            continue
        if not array.dtype.isnative:  # Explicit VR Big Endian: the display LUT indexes ints
            array = array.astype(array.dtype.newbyteorder("="))
        if array.size != int(ds.Rows) * int(ds.Columns):  # e.g. several frames, none declared
            raise _matrix_mismatch(ds, f"{array.size} pixels")
        return Decoded(stored=array.reshape(int(ds.Rows), int(ds.Columns)), decoder="pydicom")
    reason = "; ".join(failures)
    # RLE has no end marker; pylibjpeg-rle (tried first) reports running out of data
    ran_out = uid == uids.RLELossless and "end of the data was reached" in reason
    raise IngestError(
        RejectionCode.TRUNCATED_PIXEL_DATA if ran_out else RejectionCode.DECODE_FAILED,
        f"The {uid.name} pixel data could not be decoded ({reason}): {_REEXPORT}.",
    )


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _mask_high_bits(decoded: Decoded, ds: Dataset) -> Decoded:
    """Clear the bits above Bits Stored, sign-extending signed values (PS3.5 8.1.1: only the
    Bits Stored bits up to High Bit hold the pixel value; the others carry nothing)."""
    stored, bits = decoded.stored, int(ds.BitsStored)
    if not stored.size or bits >= 8 * stored.dtype.itemsize:
        return decoded
    low, high = _stored_range(ds)
    if int(stored.max()) <= high and (low == 0 or int(stored.min()) >= low):
        return decoded
    unsigned = stored.view(f"u{stored.dtype.itemsize}") & ((1 << bits) - 1)
    if low < 0:  # two's complement in ``bits`` bits: flip the sign bit, then subtract it
        sign = 1 << (bits - 1)
        masked = (unsigned.astype(np.int32) ^ sign) - sign
    else:
        masked = unsigned
    note = Message(
        code="high_bits_cleared",
        severity=Severity.WARNING,
        text=f"Pixel values use bits above Bits Stored ({bits}); those bits were cleared, as "
        "PS3.5 8.1.1 says they hold no pixel value: if the image looks wrong, re-export it "
        "from its source.",
    )
    return replace(decoded, stored=masked.astype(stored.dtype), messages=(*decoded.messages, note))


def decode_stored(ds: Dataset, *, fast: bool = True, threads: int = 2) -> Decoded:
    """Decode the single frame of ``ds`` to stored values, or raise :class:`IngestError`.

    Rejections: ``unsupported_transfer_syntax`` (no decoder for the syntax),
    ``truncated_pixel_data`` (native data too short; codestream without its end marker; RLE
    segments that run out), ``decode_failed`` (every decoder refused the stream). Values with
    bits above Bits Stored are masked, with a ``high_bits_cleared`` warning.
    """
    uid = UID(str(ds.file_meta.TransferSyntaxUID))
    _check_decodable(uid)
    if not uid.is_encapsulated:
        _check_native_length(ds)
        return _mask_high_bits(_pydicom_decode(ds, uid), ds)
    frame = single_frame(ds)
    if uid == uids.RLELossless:
        _check_rle_segments(ds, frame)
    _check_end_marker(frame, uid)
    _check_codestream_matrix(ds, frame, uid)
    decoded = _fast_decode(ds, frame, uid, threads) if fast else None
    return _mask_high_bits(decoded or _pydicom_decode(ds, uid), ds)
