"""Damaged and self-contradictory DICOM files found by fuzzing the reader: each is rejected
with a sentence that names what is wrong (never an "unexpected error", never a decoder asked
for gigabytes), or read correctly when the damage is harmless."""

from __future__ import annotations

import copy
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.fileset import FileSet
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

import mammocad.io.decode as decode_module
import mammocad.io.dicom as dicom_module
from mammocad.errors import IngestError, RejectionCode
from mammocad.io import read_dicom
from mammocad.structures import Image, ImageStatus

if TYPE_CHECKING:
    from conftest import DicomFactory


def _rejected(image: Image, code: RejectionCode, *words: str) -> None:
    assert image.status is ImageStatus.REJECTED, image.messages
    assert image.rejection_code is code, image.rejection_text
    text = str(image.rejection_text)
    assert "report the file to the mammocad developers" not in text  # not an unexpected error
    for word in words:
        assert word in text, text


def _frame(ds: Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


# --- pixel data that the header's matrix does not describe --------------------------------


def _native_twice(mg: DicomFactory) -> Dataset:
    ds = mg.mg_dataset()
    ds.PixelData = ds.PixelData * 2  # two frames' worth, Number of Frames absent
    return ds


def _sixteen_bits_as_eight(mg: DicomFactory) -> Dataset:
    return mg.mg_dataset(BitsAllocated=8, BitsStored=8, HighBit=7)  # 2 bytes a pixel stored


def _rle_wrong_columns(mg: DicomFactory) -> Dataset:
    # the RLE segments decode to 192×160 bytes; read through Columns 150 they would shear
    encoded = mg.encode(mg.mg_dataset(), RLELossless)
    encoded.Columns = 150
    return encoded


@pytest.mark.parametrize(
    "build",
    [_native_twice, _sixteen_bits_as_eight, _rle_wrong_columns],
    ids=["native_two_frames", "bits_allocated_8_for_16", "rle_columns_wrong"],
)
def test_pixel_data_longer_than_the_matrix_are_rejected(build: Any, mg: DicomFactory) -> None:
    image = read_dicom(mg.to_bytes(build(mg)), name="case.dcm")
    _rejected(image, RejectionCode.DECODE_FAILED, "Rows, Columns and Bits Allocated")


def test_rle_segments_too_long_are_told_apart_across_threads(
    mg: DicomFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images decoded at once (StudyStream's workers, the service's request and job threads):
    the over-long RLE segments of one are not taken for the other's. A warning pydicom gives
    while decoding one image must not reject an image another thread decodes (and the
    damaged one must not pass): warnings.catch_warnings is process-wide, not per thread."""
    good = mg.to_bytes(mg.encode(mg.mg_dataset(), RLELossless))
    bad = mg.to_bytes(_rle_wrong_columns(mg))
    real = decode_module.pixel_array
    good_started, bad_decoding = threading.Event(), threading.Event()
    good_decoding, bad_done = threading.Event(), threading.Event()

    def interleaved(ds: Dataset, **kwargs: Any) -> Any:
        # one order of the two threads' steps, each waiting for the other's (at most 5 s)
        if int(ds.Columns) == 150:  # the damaged image
            if kwargs.get("decoding_plugin") == "pydicom":  # the plugin that warns
                bad_decoding.set()
                good_decoding.wait(5)
            else:
                good_started.wait(5)
            return real(ds, **kwargs)
        if not good_started.is_set():  # the good image's first plugin fails once the damaged
            good_started.set()  # one is decoding, so that its next one decodes at that time
            bad_decoding.wait(5)
            raise RuntimeError("this plugin fails: the next one is tried")
        good_decoding.set()
        bad_done.wait(5)
        return real(ds, **kwargs)

    def read_bad() -> Image:
        try:
            return read_dicom(bad, name="bad.dcm")
        finally:
            bad_decoding.set()
            bad_done.set()

    monkeypatch.setattr(decode_module, "pixel_array", interleaved)
    with ThreadPoolExecutor(max_workers=2) as pool:
        damaged = pool.submit(read_bad)
        whole = pool.submit(read_dicom, good, name="good.dcm")
        damaged_image, whole_image = damaged.result(), whole.result()
    _rejected(damaged_image, RejectionCode.DECODE_FAILED, "Rows, Columns and Bits Allocated")
    assert whole_image.status is ImageStatus.PROCESSED, whole_image.rejection_text


def test_encapsulated_frames_beyond_number_of_frames_are_rejected(mg: DicomFactory) -> None:
    encoded = mg.encode(mg.mg_dataset(), RLELossless)
    frame = _frame(encoded)
    doubled = copy.deepcopy(encoded)
    doubled.PixelData = encapsulate([frame, frame])  # no Number of Frames: one is declared
    image = read_dicom(mg.to_bytes(doubled), name="case.dcm")
    _rejected(image, RejectionCode.DECODE_FAILED, "Number of Frames")


# --- codestreams whose own size contradicts the header --------------------------------------


def _patched(frame: bytes, marker: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(frame)
    position = out.find(marker)
    assert position >= 0
    struct.pack_into(fmt, out, position + offset, *values)
    return bytes(out)


@pytest.mark.parametrize(
    ("syntax", "marker", "offset", "fmt"),
    [
        (JPEG2000Lossless, b"\xff\x4f\xff\x51", 8, ">II"),  # SIZ Xsiz, Ysiz
        (JPEGLSLossless, b"\xff\xf7", 5, ">HH"),  # SOF55 Y, X
        (JPEGLosslessSV1, b"\xff\xc3", 5, ">HH"),  # SOF3 Y, X
    ],
    ids=["jpeg2000", "jpeg_ls", "jpeg_lossless"],
)
def test_codestream_larger_than_the_header_is_rejected_before_decoding(
    syntax: UID, marker: bytes, offset: int, fmt: str, mg: DicomFactory, monkeypatch: Any
) -> None:
    # a few KB declaring 60000×60000 pixels: each decoder would allocate 7 GB (the header's
    # matrix passes the limits of checks.py); the sizes are compared before any decoder runs
    encoded = mg.encode(mg.mg_dataset(), syntax)
    bomb = mg.with_frame(encoded, _patched(_frame(encoded), marker, offset, fmt, 60000, 60000))

    def no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a decoder was run")

    monkeypatch.setattr("mammocad.io.decode._fast_decode", no_decoding)
    monkeypatch.setattr("mammocad.io.decode._pydicom_decode", no_decoding)
    image = read_dicom(mg.to_bytes(bomb), name="bomb.dcm")
    _rejected(image, RejectionCode.DECODE_FAILED, "60000×60000", "192×160")


# --- header values that pydicom refuses (the sentence must be about the header) -------------


def _set_number_of_frames_text(raw: bytes, text: bytes) -> bytes:
    tag = b"\x28\x00\x08\x00IS\x02\x00"
    assert tag + b"12" in raw
    return raw.replace(tag + b"12", tag + text)


@pytest.mark.parametrize(
    ("attributes", "code", "word"),
    [
        ({"SamplesPerPixel": 0}, RejectionCode.MISSING_METADATA, "Samples per Pixel is 0"),
        ({"PixelRepresentation": 2}, RejectionCode.MISSING_METADATA, "Pixel Representation"),
        ({"NumberOfFrames": -1}, RejectionCode.MISSING_METADATA, "Number of Frames"),
        ({"NumberOfFrames": b"ab"}, RejectionCode.MISSING_METADATA, "not a whole number"),
        ({"NumberOfFrames": b".5"}, RejectionCode.MISSING_METADATA, "not a whole number"),
    ],
    ids=[
        "samples_0",
        "pixel_representation_2",
        "frames_negative",
        "frames_not_a_number",
        "frames_fractional",
    ],
)
def test_invalid_image_pixel_values_are_named(
    attributes: dict[str, Any], code: RejectionCode, word: str, mg: DicomFactory
) -> None:
    text = attributes.get("NumberOfFrames")
    if isinstance(text, bytes):  # what pydicom cannot write: patch the bytes
        raw = _set_number_of_frames_text(mg.to_bytes(mg.mg_dataset(NumberOfFrames="12")), text)
    else:
        raw = mg.to_bytes(mg.mg_dataset(**attributes))
    image = read_dicom(raw, name="case.dcm")
    _rejected(image, code, word, "re-export the image from its source")


def test_empty_pixel_data_is_no_pixel_data(mg: DicomFactory) -> None:
    ds = mg.mg_dataset()
    ds.PixelData = b""
    _rejected(read_dicom(mg.to_bytes(ds), name="case.dcm"), RejectionCode.NO_PIXEL_DATA, "empty")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless], ids=["native", "rle"])
def test_lower_case_photometric_interpretation_is_read(syntax: UID, mg: DicomFactory) -> None:
    # a CS value in the wrong case means the same; the checks read it case-blind, and the
    # decoder must not then refuse it with advice about compression
    ds = mg.encode(mg.mg_dataset(), syntax)
    expected = read_dicom(mg.to_bytes(ds)).pixels
    ds.PhotometricInterpretation = "monochrome2"
    image = read_dicom(mg.to_bytes(ds))
    assert image.is_processed and image.pixels is not None, image.rejection_text
    np.testing.assert_array_equal(image.pixels, expected)


# --- file meta that misnames the transfer syntax --------------------------------------------


def _with_transfer_syntax(raw: bytes, uid: str) -> bytes:
    """``raw`` with its file meta's Transfer Syntax UID replaced (group length kept right)."""
    out = bytearray(raw)
    position = out.find(b"\x02\x00\x10\x00UI")
    (length,) = struct.unpack_from("<H", out, position + 6)
    value = uid.encode() + b"\x00" * (len(uid) % 2)
    out[position + 6 : position + 8 + length] = struct.pack("<H", len(value)) + value
    group = out.find(b"\x02\x00\x00\x00UL")
    (old,) = struct.unpack_from("<I", out, group + 8)
    struct.pack_into("<I", out, group + 8, old + len(value) - length)
    return bytes(out)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless], ids=["jpeg2000", "rle"])
def test_compressed_syntax_over_native_pixels_is_named(syntax: UID, mg: DicomFactory) -> None:
    raw = _with_transfer_syntax(mg.to_bytes(mg.mg_dataset()), syntax)
    image = read_dicom(raw, name="case.dcm")
    _rejected(image, RejectionCode.DECODE_FAILED, "Transfer Syntax UID", "not encapsulated")


def test_blank_transfer_syntax_is_read_as_missing(mg: DicomFactory) -> None:
    ds = mg.mg_dataset()
    image = read_dicom(_with_transfer_syntax(mg.to_bytes(ds), ""), name="case.dcm")
    assert image.is_processed, image.rejection_text
    assert image.pixels is not None
    np.testing.assert_array_equal(image.pixels, read_dicom(mg.to_bytes(ds)).pixels)


# --- display values that would blank the image or make it NaN -------------------------------


@pytest.mark.parametrize(
    "rescale",
    [
        {"RescaleSlope": "1e308", "RescaleIntercept": "0"},
        {"RescaleSlope": "1", "RescaleIntercept": "1e308"},
    ],
    ids=["slope_overflows", "intercept_swamps"],
)
def test_rescale_that_overflows_is_ignored_with_a_warning(
    rescale: dict[str, str], mg: DicomFactory
) -> None:
    voi = {"WindowCenter": 2000, "WindowWidth": 1500}
    pixels = mg.phantom()
    image = read_dicom(mg.to_bytes(mg.mg_dataset(pixels, **rescale, **voi)))
    assert image.is_processed and image.pixels is not None, image.rejection_text
    assert np.isfinite(image.pixels).all()
    plain = read_dicom(mg.to_bytes(mg.mg_dataset(pixels, **voi)))
    np.testing.assert_array_equal(image.pixels, plain.pixels)
    assert [m.code for m in image.messages] == ["rescale_ignored"]


def _short_lut(declared: int, given: int) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [declared, 0, 16]
    item.add_new(0x00283006, "US", [16 * v for v in range(given)])
    return item


@pytest.mark.parametrize("sequence", ["VOILUTSequence", "ModalityLUTSequence"])
def test_lut_shorter_than_its_descriptor_is_not_applied(sequence: str, mg: DicomFactory) -> None:
    # 4096 entries declared, 100 given: every stored value past 99 would take the last entry
    voi = {"WindowCenter": 2000, "WindowWidth": 1500}
    pixels = mg.phantom()
    ds = mg.mg_dataset(pixels, **{sequence: [_short_lut(4096, 100)]}, **voi)
    image = read_dicom(mg.to_bytes(ds))
    assert image.is_processed and image.pixels is not None, image.rejection_text
    plain = read_dicom(mg.to_bytes(mg.mg_dataset(pixels, **voi)))
    np.testing.assert_array_equal(image.pixels, plain.pixels)
    if sequence == "ModalityLUTSequence":
        assert [m.code for m in image.messages] == ["modality_lut_ignored"]


@pytest.mark.parametrize("spacing", [1e-6, 0.001])
def test_implausibly_fine_pixel_spacing_is_not_used(spacing: float, mg: DicomFactory) -> None:
    # a breast 0.2 µm across: the quality gate found "no anatomy" in a good image
    ds = mg.mg_dataset(ImagerPixelSpacing=[spacing, spacing], PixelSpacing=[spacing, spacing])
    image = read_dicom(mg.to_bytes(ds))
    assert image.is_processed, image.rejection_text
    assert image.pixel_spacing_mm is None


# --- not an image at all --------------------------------------------------------------------


def test_dicomdir_is_named_as_such(mg: DicomFactory, tmp_path: Path) -> None:
    files = FileSet()
    files.add(
        mg.reread(
            mg.mg_dataset(
                StudyDate="20240101",
                StudyTime="0900",
                StudyID="1",
                SeriesNumber=1,
                InstanceNumber=1,
            )
        )
    )
    files.write(tmp_path / "disc")
    image = read_dicom(tmp_path / "disc" / "DICOMDIR")
    _rejected(image, RejectionCode.NOT_MAMMOGRAPHY, "DICOMDIR", "passed over")


# --- a Deflated data set that inflates far past any mammogram -------------------------------


def _without_group_length(raw: bytes) -> bytes:
    """``raw`` without its File Meta Information Group Length (0002,0000), which pydicom does
    not need: it reads the file meta up to the first element of another group."""
    assert raw[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    return raw[:132] + raw[144:]


def _with_group_length_short(raw: bytes) -> bytes:
    """``raw`` with a File Meta Information Group Length that ends before the Transfer Syntax
    UID: pydicom reads the file meta by its elements, not by that value."""
    return raw[:140] + (2).to_bytes(4, "little") + raw[144:]


@pytest.mark.parametrize(
    "meta",
    [lambda raw: raw, _without_group_length, _with_group_length_short],
    ids=["group_length", "no_group_length", "group_length_too_short"],
)
def test_deflate_bomb_is_rejected_before_it_is_inflated(
    mg: DicomFactory, tmp_path: Path, monkeypatch: Any, meta: Any
) -> None:
    # deflate packs 1 GB of zeros into 1 MB and pydicom inflates a Deflated data set whole
    # (even for its header); the limit is lowered here so that a few MB stand for the GBs
    ds = mg.mg_dataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.PixelData = bytes(4 << 20)
    raw = meta(mg.to_bytes(ds))
    assert len(raw) < 64 << 10
    path = tmp_path / "bomb.dcm"
    path.write_bytes(raw)
    monkeypatch.setattr(dicom_module, "MAX_INFLATED_SIZE", 1 << 20, raising=False)

    def no_parsing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the data set was inflated")

    monkeypatch.setattr(dicom_module, "quiet_dcmread", no_parsing)
    for source in (path, raw):
        image = read_dicom(source, name="bomb.dcm")
        _rejected(image, RejectionCode.UNSUPPORTED_PIXEL_FORMAT, "inflates to more than 1 MB")
    with path.open("rb") as stream, pytest.raises(IngestError):  # the service's header reader
        dicom_module.read_header(stream)
