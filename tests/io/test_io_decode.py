"""Decoding every common transfer syntax: bit-exact with pydicom, truncation never crashes."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from mammocad.errors import IngestError, RejectionCode
from mammocad.io import read_dicom
from mammocad.io.decode import decode_stored

if TYPE_CHECKING:
    from conftest import DicomFactory

LOSSLESS = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    RLELossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    HTJ2KLossless,
]
# where imagecodecs must be used (and must equal pydicom's plugins)
FAST = {
    JPEGLSLossless: "imagecodecs.jpegls",
    JPEGLSNearLossless: "imagecodecs.jpegls",
    JPEG2000Lossless: "imagecodecs.jpeg2k",
    JPEG2000: "imagecodecs.jpeg2k",
    JPEGLosslessSV1: "imagecodecs.jpeg8",
    JPEGLossless: "imagecodecs.jpeg8",
    HTJ2KLossless: "imagecodecs.jpeg2k",
    HTJ2K: "imagecodecs.jpeg2k",
}


@pytest.fixture(scope="module", params=[12, 16], ids=["12bit", "16bit"])
def native(request: pytest.FixtureRequest, mg: DicomFactory) -> tuple[np.ndarray, Dataset]:
    pixels = mg.phantom(bits=request.param, seed=request.param)
    return pixels, mg.mg_dataset(pixels, bits_stored=request.param)


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda s: UID(s).keyword)
def test_lossless_syntaxes_decode_to_the_original_values(
    syntax: UID, native: tuple[np.ndarray, Dataset], mg: DicomFactory
) -> None:
    pixels, ds = native
    encoded = mg.encode(ds, syntax)
    decoded = decode_stored(encoded)
    assert decoded.stored.dtype == np.uint16 and decoded.stored.dtype.isnative
    np.testing.assert_array_equal(decoded.stored, pixels)
    assert decoded.decoder == FAST.get(syntax, "pydicom")


@pytest.mark.parametrize("syntax", list(FAST), ids=lambda s: UID(s).keyword)
def test_fast_path_is_bit_exact_with_pydicom_plugins(
    syntax: UID, native: tuple[np.ndarray, Dataset], mg: DicomFactory
) -> None:
    _, ds = native
    encoded = mg.encode(ds, syntax)
    fast = decode_stored(encoded)
    assert fast.decoder == FAST[syntax]
    np.testing.assert_array_equal(fast.stored, pixel_array(encoded))
    slow = decode_stored(encoded, fast=False)
    assert slow.decoder == "pydicom"
    np.testing.assert_array_equal(fast.stored, slow.stored)


@pytest.mark.parametrize("predictor", range(1, 8))
def test_jpeg_lossless_every_predictor(predictor: int, mg: DicomFactory) -> None:
    pixels = mg.phantom(bits=14, seed=predictor)
    encoded = mg.encode(mg.mg_dataset(pixels, bits_stored=14), JPEGLossless, predictor=predictor)
    decoded = decode_stored(encoded)
    assert decoded.decoder == "imagecodecs.jpeg8"
    np.testing.assert_array_equal(decoded.stored, pixels)
    np.testing.assert_array_equal(decoded.stored, pixel_array(encoded))


def test_values_above_bits_stored_fall_back_to_pydicom(mg: DicomFactory) -> None:
    # a 16-bit codestream in a Bits Stored 12 data set: the fast path steps aside, and the
    # excess bits of pydicom's result are cleared (PS3.5 8.1.1)
    pixels = mg.phantom(bits=12)
    pixels[0, 0] = 0x9000
    ds = mg.mg_dataset(pixels, bits_stored=16)
    encoded = mg.encode(ds, JPEGLSLossless)
    encoded.BitsStored, encoded.HighBit = 12, 11
    decoded = decode_stored(encoded)
    assert decoded.decoder == "pydicom"
    np.testing.assert_array_equal(decoded.stored, pixel_array(encoded) & 0x0FFF)
    assert [m.code for m in decoded.messages] == ["high_bits_cleared"]


def _garbage_high_bits(mg: DicomFactory, syntax: UID, pixels: np.ndarray) -> Dataset:
    """``pixels`` (12 significant bits) encoded in ``syntax`` as 16-bit values, in a data set
    that declares Bits Stored 12: what a modality that leaves junk above High Bit writes."""
    encoded = mg.encode(mg.mg_dataset(pixels, bits_stored=16), syntax)
    encoded.BitsStored, encoded.HighBit = 12, 11
    return mg.reread(encoded)


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, RLELossless, JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless],
    ids=lambda s: UID(s).keyword,
)
def test_bits_above_bits_stored_are_cleared_in_every_syntax(syntax: UID, mg: DicomFactory) -> None:
    # pydicom masks native, RLE and JPEG Lossless data itself but not JPEG-LS or JPEG 2000,
    # where a 12-bit image with junk in its top nibble came out all white yet was accepted
    pixels = mg.phantom(bits=12)
    garbage = pixels | 0xF000
    encoded = _garbage_high_bits(mg, syntax, garbage)
    np.testing.assert_array_equal(decode_stored(encoded).stored, pixels)
    image = read_dicom(mg.to_bytes(encoded))
    clean = read_dicom(mg.to_bytes(mg.mg_dataset(pixels)))
    assert image.is_processed, image.rejection_text
    np.testing.assert_array_equal(image.pixels, clean.pixels)


def test_bits_above_bits_stored_of_signed_values_are_sign_extended(mg: DicomFactory) -> None:
    # signed 12-bit values stored with their top nibble cleared: -100 arrives as 0x0F9C
    values = (mg.phantom(bits=12).astype(np.int32) - 2048).astype(np.int16)
    low_bits = (values.view(np.uint16) & 0x0FFF).view(np.int16)
    ds = mg.mg_dataset(low_bits, bits_stored=16)
    encoded = mg.encode(ds, JPEG2000Lossless)
    encoded.BitsStored, encoded.HighBit = 12, 11
    decoded = decode_stored(mg.reread(encoded))
    np.testing.assert_array_equal(decoded.stored, values)
    assert decoded.stored.dtype == np.int16
    assert [m.code for m in decoded.messages] == ["high_bits_cleared"]


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, JPEGExtended12Bit], ids=["8bit", "12bit"])
def test_lossy_jpeg_decodes_with_pydicom(syntax: UID, mg: DicomFactory) -> None:
    bits = 8 if syntax == JPEGBaseline8Bit else 12
    pixels = mg.phantom(bits=bits)
    if bits == 8:
        pixels = pixels.astype(np.uint8)
    encoded = mg.encode(mg.mg_dataset(pixels, bits_stored=bits), syntax)
    decoded = decode_stored(encoded)
    assert decoded.decoder == "pydicom"
    assert np.abs(decoded.stored.astype(int) - pixels).mean() < 0.01 * 2**bits


def test_unsupported_transfer_syntax_is_rejected(mg: DicomFactory) -> None:
    encoded = mg.encode(mg.mg_dataset(), JPEG2000Lossless)
    encoded.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
    with pytest.raises(IngestError) as caught:
        decode_stored(encoded)
    assert caught.value.code is RejectionCode.UNSUPPORTED_TRANSFER_SYNTAX
    assert "MPEG2" in caught.value.message


def test_short_native_pixel_data_is_truncated(mg: DicomFactory) -> None:
    ds = mg.mg_dataset()
    raw = mg.to_bytes(ds)
    image = read_dicom(raw[:-1000], name="cut.dcm")
    assert image.rejection_code is RejectionCode.TRUNCATED_PIXEL_DATA
    assert "copy or export it again" in str(image.rejection_text)
    assert image.sop_instance_uid == ds.SOPInstanceUID  # identifiers survive


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda s: UID(s).keyword
)
def test_file_cut_inside_encapsulated_pixel_data_is_truncated(
    syntax: UID, mg: DicomFactory
) -> None:
    raw = mg.to_bytes(mg.encode(mg.mg_dataset(), syntax))
    image = read_dicom(raw[: len(raw) - 500], name="cut.dcm")
    assert image.rejection_code is RejectionCode.TRUNCATED_PIXEL_DATA
    assert image.laterality is not None and image.view is not None


@pytest.mark.parametrize(
    "syntax",
    [JPEGLSLossless, JPEG2000Lossless, JPEGLosslessSV1, HTJ2KLossless, RLELossless],
    ids=lambda s: UID(s).keyword,
)
@pytest.mark.parametrize("kept", [0.5, 0.97])
def test_cut_codestream_is_truncated_not_garbage(
    syntax: UID, kept: float, mg: DicomFactory
) -> None:
    # pydicom's plugins decode a cut JPEG-LS / JPEG Lossless stream into a half-garbage image
    # without any error: the end-marker check must catch it
    encoded = mg.encode(mg.mg_dataset(), syntax)
    frame = next(generate_frames(encoded.PixelData, number_of_frames=1))
    cut = mg.with_frame(encoded, frame[: int(len(frame) * kept)])
    image = read_dicom(mg.to_bytes(cut), name="cut.dcm")
    assert image.rejection_code is RejectionCode.TRUNCATED_PIXEL_DATA, image.rejection_text


def test_damaged_codestream_with_end_marker_is_decode_failed(mg: DicomFactory) -> None:
    encoded = mg.encode(mg.mg_dataset(), JPEG2000Lossless)
    garbage = b"\xff\x4f\xff\x51" + bytes(range(256)) * 4 + b"\xff\xd9"
    image = read_dicom(mg.to_bytes(mg.with_frame(encoded, garbage)), name="bad.dcm")
    assert image.rejection_code is RejectionCode.DECODE_FAILED
    assert "JPEG 2000" in str(image.rejection_text)


def test_fast_path_off_still_decodes(mg: DicomFactory) -> None:
    from mammocad.io import ReadOptions

    encoded = mg.encode(mg.mg_dataset(), JPEG2000Lossless)
    fast = read_dicom(mg.to_bytes(encoded))
    slow = read_dicom(mg.to_bytes(encoded), options=ReadOptions(fast_decoders=False))
    assert fast.pixels is not None and slow.pixels is not None
    np.testing.assert_array_equal(fast.pixels, slow.pixels)


def test_decode_does_not_modify_the_dataset(mg: DicomFactory) -> None:
    encoded = mg.encode(mg.mg_dataset(), JPEGLSLossless)
    before = copy.deepcopy(encoded)
    decode_stored(encoded)
    assert encoded.PixelData == before.PixelData
    assert encoded.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID


@pytest.mark.parametrize(
    "syntax",
    [JPEGLSLossless, JPEG2000Lossless, JPEG2000, JPEGLosslessSV1, HTJ2KLossless, RLELossless],
    ids=lambda s: UID(s).keyword,
)
def test_damaged_streams_never_crash(syntax: UID, mg: DicomFactory) -> None:
    # random byte damage inside the codestream: the image is either decoded (codestreams carry
    # no checksum) or rejected with a code; never an exception, never an aborted interpreter
    # (python-gdcm aborts on such input, pylibjpeg-rle raises a BaseException panic)
    rng = np.random.default_rng(7)
    encoded = mg.encode(mg.mg_dataset(), syntax)
    frame = next(generate_frames(encoded.PixelData, number_of_frames=1))
    outcomes = set()
    for _ in range(12):
        damaged = bytearray(frame)
        for position in rng.integers(8, len(frame) - 8, size=int(rng.integers(1, 12))):
            damaged[position] = int(rng.integers(0, 256))
        image = read_dicom(mg.to_bytes(mg.with_frame(encoded, bytes(damaged))))
        outcomes.add(image.rejection_code)
        assert image.is_processed == (image.pixels is not None)
    assert outcomes <= {
        None,
        RejectionCode.DECODE_FAILED,
        RejectionCode.TRUNCATED_PIXEL_DATA,
    }
