"""PNG / PGM mammograms: pixels, metadata precedence, deterministic identifiers, size limit."""

from __future__ import annotations

import json
import struct
import zlib
from typing import TYPE_CHECKING

import cv2
import imagecodecs
import numpy as np
import pytest

from mammocad.errors import RejectionCode
from mammocad.io import read_image, read_raster
from mammocad.io.raster import raster_matrix
from mammocad.structures import Laterality, TagSource, ViewPosition

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import DicomFactory


def _write(path: Path, pixels: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), pixels)
    return path


def test_8bit_png_is_value_over_255(tmp_path: Path, mg: DicomFactory) -> None:
    pixels = (mg.phantom() >> 4).astype(np.uint8)
    image = read_raster(_write(tmp_path / "mdb001.png", pixels))
    assert image.is_processed and image.pixels is not None
    assert image.pixels.dtype == np.float32 and (image.rows, image.columns) == pixels.shape
    np.testing.assert_allclose(image.pixels, pixels / 255.0, atol=1e-7)
    assert image.laterality is None and image.view is None  # the name says nothing


def test_16bit_png_is_mapped_from_min_to_max(tmp_path: Path, mg: DicomFactory) -> None:
    pixels = mg.phantom(bits=12) + 100  # 12-bit data in a 16-bit file: not full range
    image = read_raster(_write(tmp_path / "scan_LEFT_MLO.png", pixels))
    assert image.pixels is not None
    expected = (pixels - pixels.min()) / float(pixels.max() - pixels.min())
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert (image.laterality, image.laterality_source) == (Laterality.L, TagSource.FILENAME)
    assert (image.view, image.view_source) == (ViewPosition.MLO, TagSource.FILENAME)


def test_pgm_8_and_16_bit(tmp_path: Path, mg: DicomFactory) -> None:
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        pixels = mg.phantom(bits=bits).astype(dtype)
        image = read_image(_write(tmp_path / f"mdb{bits:03d}.pgm", pixels))
        assert image.is_processed and image.pixels is not None, image.rejection_text
        assert image.pixels.shape == pixels.shape
        assert np.corrcoef(image.pixels.ravel(), pixels.ravel())[0, 1] > 0.9999


def test_gray_saved_as_rgb_is_accepted_colour_is_not(tmp_path: Path, mg: DicomFactory) -> None:
    gray = (mg.phantom() >> 4).astype(np.uint8)
    rgb = np.dstack([gray, gray, gray])
    assert read_raster(_write(tmp_path / "gray.png", rgb)).is_processed
    rgb[..., 2] = 255 - rgb[..., 2]
    image = read_raster(_write(tmp_path / "colour.png", rgb))
    assert image.rejection_code is RejectionCode.UNSUPPORTED_PIXEL_FORMAT


def test_metadata_precedence_keywords_over_sidecar_over_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "A_0010_1.RIGHT_MLO.png", np.full((64, 48), 90, np.uint8))
    sidecar = {
        "laterality": "left",
        "view": "CC",
        "patient_id": "P1",
        "pixel_spacing_mm": 0.2,
        "accession_number": "A9",
        "comment": "unknown keys are ignored",
    }
    (tmp_path / "A_0010_1.RIGHT_MLO.png.json").write_text(json.dumps(sidecar))
    image = read_raster(path, view="XCCL")
    assert (image.laterality, image.laterality_source) == (Laterality.L, TagSource.OTHER)
    assert image.view is ViewPosition.XCCL  # keyword beats sidecar
    assert (image.patient_id, image.accession_number) == ("P1", "A9")
    assert image.pixel_spacing_mm == (0.2, 0.2)
    no_sidecar = read_raster(path, sidecar={})
    assert (no_sidecar.laterality, no_sidecar.view) == (Laterality.R, ViewPosition.MLO)


def test_uids_are_deterministic(tmp_path: Path, mg: DicomFactory) -> None:
    pixels = (mg.phantom() >> 4).astype(np.uint8)
    first = read_raster(_write(tmp_path / "a.png", pixels))
    again = read_raster(_write(tmp_path / "copy.png", pixels))
    other = read_raster(_write(tmp_path / "b.png", pixels[::-1].copy()))
    assert first.sop_instance_uid == again.sop_instance_uid  # same bytes, same image
    assert first.study_instance_uid == again.study_instance_uid
    assert other.sop_instance_uid != first.sop_instance_uid
    assert other.study_instance_uid != first.study_instance_uid  # one study per image
    left = read_raster(tmp_path / "a.png", patient_id="P7")
    right = read_raster(tmp_path / "b.png", patient_id="P7")
    assert left.study_instance_uid == right.study_instance_uid  # a patient's images: one study
    given = read_raster(tmp_path / "a.png", study_instance_uid="1.2.3", sop_instance_uid="1.2.3.4")
    assert (given.study_instance_uid, given.sop_instance_uid) == ("1.2.3", "1.2.3.4")
    assert str(first.sop_instance_uid).startswith("1.2.826.0.1.3680043.8.498.")


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, RejectionCode.UNREADABLE),  # cut after signature
        (b"P5\n64 64\n255\n" + b"\x00" * 10, RejectionCode.UNREADABLE),  # PGM without its pixels
        (b"just text", RejectionCode.NOT_DICOM),
    ],
    ids=["corrupt-png", "short-pgm", "text"],
)
def test_bad_raster_files_are_rejected(content: bytes, code: RejectionCode) -> None:
    image = read_raster(content, name="bad.png")
    assert image.rejection_code is code, image.rejection_text
    assert image.pixels is None and image.source == "bad.png"


def test_cut_png_is_rejected(tmp_path: Path, mg: DicomFactory) -> None:
    path = _write(tmp_path / "cut.png", mg.phantom())
    raw = path.read_bytes()
    image = read_image(raw[: len(raw) // 2], name="cut.png")
    assert image.rejection_code is RejectionCode.UNREADABLE


def test_invalid_sidecar_and_keywords(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.png", np.full((64, 64), 9, np.uint8))
    (tmp_path / "x.png.json").write_text("{not json")
    assert read_raster(path).rejection_code is RejectionCode.UNREADABLE
    (tmp_path / "x.png.json").write_text(json.dumps({"laterality": "both"}))
    image = read_raster(path)
    assert image.rejection_code is RejectionCode.UNREADABLE
    assert "laterality" in str(image.rejection_text)
    with pytest.raises(ValueError, match="laterality"):
        read_raster(path, laterality="up")
    with pytest.raises(ValueError, match="pixel_spacing_mm"):
        read_raster(path, pixel_spacing_mm=(0.1, -1.0))


def test_read_image_dispatches_on_content_not_name(tmp_path: Path, mg: DicomFactory) -> None:
    dicom_named_png = tmp_path / "looks_like.png"
    dicom_named_png.write_bytes(mg.to_bytes(mg.mg_dataset()))
    png_named_dcm = _write(tmp_path / "x.png", np.full((64, 64), 9, np.uint8))
    renamed = png_named_dcm.rename(tmp_path / "really_png.dcm")
    assert read_image(dicom_named_png).transfer_syntax_uid is not None  # read as DICOM
    image = read_image(renamed)
    assert image.is_processed and image.transfer_syntax_uid is None  # read as raster


def test_mini_mias(shared_data: Path) -> None:
    first = sorted((shared_data / "mini-mias").glob("mdb*.png"))[0]
    image = read_image(first, laterality="R", view="MLO")
    assert image.is_processed and image.pixels is not None
    assert image.pixels.shape == (1024, 1024)
    assert (image.laterality, image.view) == (Laterality.R, ViewPosition.MLO)
    assert 0.05 < image.pixels.mean() < 0.6


def test_ddsm_mask_set_names(shared_data: Path) -> None:
    folder = shared_data / "tissue-masks-ddsm"
    images = sorted(p for p in folder.rglob("*.png") if not p.stem.endswith("_LI"))[:3]
    assert images
    for path in images:
        image = read_raster(path)
        assert image.is_processed
        assert image.view is ViewPosition.MLO and image.view_source is TagSource.FILENAME
        assert image.laterality is not None


def _declared_png(rows: int, columns: int) -> bytes:
    """A valid 8-bit gray PNG of zeros: tiny on disk (deflate), ``rows × columns`` decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    packer = zlib.compressobj(9)
    row = b"\x00" * (columns + 1)  # filter byte + one byte a pixel
    idat = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", columns, rows, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _declared_tiff(rows: int, columns: int) -> bytes:
    """A little-endian TIFF header whose first IFD declares ``rows × columns`` (LONG tags)."""
    entries = struct.pack("<HHII", 256, 4, 1, columns) + struct.pack("<HHII", 257, 4, 1, rows)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + b"\x00" * 4


def _declared_jpeg(rows: int, columns: int) -> bytes:
    """A real baseline JPEG whose frame header (SOF0) is rewritten to ``rows × columns``."""
    raw = bytearray(cv2.imencode(".jpg", np.zeros((64, 64), np.uint8))[1].tobytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", rows, columns)
    return bytes(raw)


@pytest.mark.parametrize(
    ("content", "matrix"),
    [
        (_declared_png(1000, 20000), (1000, 20000)),  # over 16384 a side
        (_declared_png(12000, 12000), (12000, 12000)),  # 144 M pixels: over 2^27 in all
        (b"P5\n# scanner\n20000 1000\n255\n", (1000, 20000)),  # header only: never decoded
        (_declared_tiff(40000, 40000), (40000, 40000)),
        # over Pillow's own bomb limit (2 × 89 M pixels): refused before it reports a size
        (_declared_jpeg(65535, 65535), (0, 0)),
    ],
    ids=["png-wide", "png-square", "pgm", "tiff", "jpeg"],
)
def test_oversized_raster_is_rejected_before_decoding(
    content: bytes, matrix: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DICOM's limit (checks.MAX_MATRIX_*) applies to rasters too, read from the header: the
    # 12000×12000 PNG is 140 KB on disk and 1.2 GB in memory once decoded, so decoding at all
    # fails the test
    def no_decoding(*args: object) -> None:
        raise AssertionError("an oversized raster reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    assert len(content) < 200_000
    image = read_raster(content, name="huge.png")
    assert image.rejection_code is RejectionCode.UNSUPPORTED_PIXEL_FORMAT, image.rejection_text
    assert "larger than any mammogram" in str(image.rejection_text)
    assert (image.rows, image.columns) == matrix and image.pixels is None


def test_raster_with_a_header_no_reader_takes_is_refused_undecoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoding(*args: object) -> None:
        raise AssertionError("a raster of unknown size reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    image = read_raster(b"P5 " + b"9" * 5000 + b" 64\n255\n", name="endless.pgm")
    assert image.rejection_code is RejectionCode.UNREADABLE and image.pixels is None


def test_raster_at_the_size_limit_is_read(tmp_path: Path) -> None:
    # 16384 a side is allowed (the limit is inclusive), as a 9600×12000 scanned film must be
    path = tmp_path / "long.png"
    path.write_bytes(_declared_png(32, 16384))
    image = read_raster(path)
    assert image.is_processed and image.pixels is not None, image.rejection_text
    assert image.pixels.shape == (32, 16384)


def test_raster_header_size_matches_the_decoded_size(tmp_path: Path, mg: DicomFactory) -> None:
    # the size check trusts raster_matrix, so it must read every format the reader decodes
    pixels = mg.phantom(rows=70, columns=90)
    gray8 = (pixels >> 4).astype(np.uint8)
    files = {
        "png8": cv2.imencode(".png", gray8)[1].tobytes(),
        "png16": cv2.imencode(".png", pixels)[1].tobytes(),
        "pgm16": cv2.imencode(".pgm", pixels)[1].tobytes(),
        "pgm-comments": b"P5\n# a # b\n 90\t# width\n70 # height\n255\n" + gray8.tobytes(),
        "ppm": cv2.imencode(".ppm", np.dstack([gray8] * 3))[1].tobytes(),
        "jpeg": cv2.imencode(".jpg", gray8)[1].tobytes(),
        "jpeg-progressive": cv2.imencode(".jpg", gray8, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[
            1
        ].tobytes(),
        "tiff": cv2.imencode(".tif", pixels)[1].tobytes(),
        "tiff-float": cv2.imencode(".tif", pixels.astype(np.float32))[1].tobytes(),
        "tiff-big-endian": bytes(imagecodecs.tiff_encode(pixels, byteorder=">")),
    }
    for kind, raw in files.items():
        decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded is not None, kind
        assert raster_matrix(raw) == decoded.shape[:2], kind
        assert read_raster(raw, name=f"x.{kind}").is_processed, kind


def test_raster_without_a_size_in_its_header_is_not_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no size, no limit to check: such a file is refused as damaged, never handed to OpenCV
    monkeypatch.setattr(cv2, "imdecode", lambda *args: pytest.fail("decoded"))
    tiff = b"II*\x00" + struct.pack("<I", 10**6)  # first IFD beyond the end of the file
    jpeg = b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 64  # a scan with no frame header before
    for raw in (tiff, jpeg):
        image = read_raster(raw, name="bad")
        assert image.rejection_code is RejectionCode.UNREADABLE, image.rejection_text


def test_out_of_memory_rejects_the_raster_not_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as DICOM does: a file within the limit that still does not fit in memory is one rejection
    path = _write(tmp_path / "scan.png", np.full((64, 48), 90, np.uint8))

    def out_of_memory(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(cv2, "imdecode", out_of_memory)
    image = read_raster(path)
    assert image.rejection_code is RejectionCode.DECODE_FAILED
    assert "(64×48 pixels) could not be read in the memory available" in str(image.rejection_text)


def test_png_with_a_bad_crc_in_an_ancillary_chunk_is_still_read() -> None:
    # libpng (OpenCV) only warns about a damaged tEXt chunk, Pillow refuses the file: the size
    # check must not turn a readable image into a rejected one
    pixels = (np.arange(60 * 50) % 65535).astype(np.uint16).reshape(60, 50)
    png = cv2.imencode(".png", pixels)[1].tobytes()
    text = b"Comment\x00scanner"
    damaged = len(text).to_bytes(4, "big") + b"tEXt" + text + b"\xde\xad\xbe\xef"
    raw = png[:33] + damaged + png[33:]  # after the signature and the IHDR chunk
    image = read_raster(raw, name="film.png")
    assert image.is_processed, image.rejection_text
    assert (image.rows, image.columns) == (60, 50)
