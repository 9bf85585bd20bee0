"""Stored pixel values of a single-frame grayscale data set, for every common transfer syntax.

Native syntaxes (Implicit/Explicit VR Little Endian, Explicit VR Big Endian, Deflated) go through
pydicom's native decoder after a length check. Encapsulated frames (PS3.5 A.4) first pass an
integrity check: a JPEG, JPEG-LS, JPEG 2000 or HTJ2K codestream must end with its EOI/EOC marker
``FFD9`` (ISO/IEC 10918-1 B.2.1, 14495-1 C.1, 15444-1 A.4.4), which byte stuffing keeps out of
the entropy-coded data. Without that check a cut stream is silently decoded by pydicom's
plugins into an image whose lower part is garbage.

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

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pydicom.uid as uids
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID

from mammocad.errors import IngestError, RejectionCode
from mammocad.structures import Message, Severity

StoredArray = npt.NDArray[np.integer]

# Transfer syntaxes whose frames are codestreams terminated by an FFD9 marker.
_MARKER_TERMINATED = {
    uids.JPEGBaseline8Bit,
    uids.JPEGExtended12Bit,
    uids.JPEGLossless,
    uids.JPEGLosslessSV1,
    uids.JPEGLSLossless,
    uids.JPEGLSNearLossless,
    uids.JPEG2000Lossless,
    uids.JPEG2000,
    uids.HTJ2KLossless,
    uids.HTJ2KLosslessRPCL,
    uids.HTJ2K,
}
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


def _check_native_length(ds: Dataset) -> None:
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel") or 1)
    expected = rows * columns * samples * int(ds.BitsAllocated) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise IngestError(
            RejectionCode.TRUNCATED_PIXEL_DATA,
            f"The pixel data are incomplete ({actual} of {expected} bytes): the file was cut "
            "short in transfer or storage; copy or export it again.",
        )


def single_frame(ds: Dataset) -> bytes:
    """The one encapsulated frame (all its fragments joined)."""
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


def _pydicom_decode(ds: Dataset, uid: UID) -> Decoded:
    plugins = _plugins(uid) if uid.is_encapsulated else [""]
    failures = []
    for plugin in plugins:
        try:
            array = pixel_array(ds, decoding_plugin=plugin)
        except BaseException as exc:
            reraise_fatal(exc)
            failures.append(f"{plugin or 'pydicom'}: {' '.join(str(exc).split())[:160]}")
            continue
        if not array.dtype.isnative:  # Explicit VR Big Endian: the display LUT indexes ints
            array = array.astype(array.dtype.newbyteorder("="))
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
    _check_end_marker(frame, uid)
    decoded = _fast_decode(ds, frame, uid, threads) if fast else None
    return _mask_high_bits(decoded or _pydicom_decode(ds, uid), ds)
