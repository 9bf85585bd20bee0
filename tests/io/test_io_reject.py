"""Bad input is rejected with a code and a sentence that says what to do — never a crash."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEGLSLossless

from mammocad.errors import IngestError, RejectionCode
from mammocad.io import load_studies, read_dicom, read_image
from mammocad.io.checks import check_pixel_format
from mammocad.structures import Image, ImageStatus, Laterality, ViewPosition

if TYPE_CHECKING:
    from conftest import DicomFactory

DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _read(ds: Dataset, mg: DicomFactory) -> Any:
    return read_dicom(mg.to_bytes(ds), name="case.dcm")


def _assert_rejected(image: Any, code: RejectionCode, *words: str) -> None:
    assert image.status is ImageStatus.REJECTED, image.messages
    assert image.rejection_code is code, image.rejection_text
    assert image.pixels is None and image.padding_mask is None
    assert image.messages[-1].code == code.value and image.messages[-1].severity.value == "error"
    for word in words:
        assert word in str(image.rejection_text)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"README\nThis folder holds the sample files.\n" * 20,
        bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)),
        b"\x00" * 200,
    ],
    ids=["empty", "text", "random", "zeros"],
)
def test_not_dicom(content: bytes) -> None:
    image = read_image(content, name="notes.txt")
    _assert_rejected(image, RejectionCode.NOT_DICOM, "notes.txt", "send DICOM")
    assert read_dicom(content, name="notes.txt").rejection_code is RejectionCode.NOT_DICOM


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
def test_bare_dataset_without_preamble_is_read(implicit: bool, mg: DicomFactory) -> None:
    # old archives hold data sets without preamble and file meta (ACR-NEMA style)
    ds = mg.mg_dataset(WindowCenter=2000, WindowWidth=3000)
    bare = Dataset()
    bare.update(ds)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, bare, implicit_vr=implicit, little_endian=True)
    raw = buffer.getvalue()
    assert raw[128:132] != b"DICM" and raw[:2] == b"\x08\x00"
    image = read_image(raw, name="acr-nema.dcm")
    assert image.is_processed, image.rejection_text
    np.testing.assert_array_equal(image.pixels, read_dicom(mg.to_bytes(ds)).pixels)


@pytest.mark.parametrize("kept", [140, 300, 505, 700])
def test_file_cut_inside_its_header_is_unreadable(kept: int, mg: DicomFactory) -> None:
    # pydicom returns a partial data set without complaint; "no pixel data" would mislead.
    # Fixed UIDs keep the byte layout, so each cut lands inside an element, never on a
    # boundary (a file ending exactly between elements is indistinguishable from a header-only
    # object and is reported as such).
    ds = mg.mg_dataset()
    root = "1.2.826.0.1.3680043.8.498."
    ds.SOPInstanceUID = root + "1" * 38  # 64 characters, like generate_uid()'s
    ds.StudyInstanceUID = root + "2" * 38
    ds.SeriesInstanceUID = root + "3" * 38
    raw = mg.to_bytes(ds)
    image = read_dicom(raw[:kept], name="cut-header.dcm")
    _assert_rejected(image, RejectionCode.UNREADABLE, "ends inside its header")


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    image = read_image(tmp_path / "nope.dcm")
    _assert_rejected(image, RejectionCode.UNREADABLE)
    assert image.source == str(tmp_path / "nope.dcm")


@pytest.mark.parametrize(
    ("attributes", "code", "words"),
    [
        ({"Modality": "CT", "SOPClassUID": CT_IMAGE}, RejectionCode.NOT_MAMMOGRAPHY, ["CT Image"]),
        (
            {"Modality": "MR", "SOPClassUID": SECONDARY_CAPTURE},
            RejectionCode.NOT_MAMMOGRAPHY,
            ["MR"],
        ),
        (
            {"Modality": "DX", "SOPClassUID": DX_PRESENTATION, "BodyPartExamined": "CHEST"}
            | {"ViewPosition": "PA", "ImageLaterality": ""},
            RejectionCode.NOT_MAMMOGRAPHY,
            ["CHEST"],
        ),
        (
            {"Modality": "DX", "SOPClassUID": DX_PRESENTATION, "ViewPosition": "PA"},
            RejectionCode.NOT_MAMMOGRAPHY,
            ["BREAST"],
        ),
        (
            {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.2.1"},
            RejectionCode.FOR_PROCESSING,
            ["FOR PRESENTATION"],
        ),
        ({"PresentationIntentType": "FOR PROCESSING"}, RejectionCode.FOR_PROCESSING, []),
        (
            {"SOPClassUID": DX_PRESENTATION, "Modality": "DX", "BodyPartExamined": "BREAST"}
            | {"PresentationIntentType": "FOR PROCESSING"},
            RejectionCode.FOR_PROCESSING,
            [],
        ),
        ({"NumberOfFrames": 2}, RejectionCode.MULTI_FRAME, ["2D"]),
        (
            {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.13.1.3", "NumberOfFrames": 1},
            RejectionCode.MULTI_FRAME,
            ["Tomosynthesis"],
        ),
        ({"PhotometricInterpretation": "RGB"}, RejectionCode.UNSUPPORTED_PIXEL_FORMAT, ["gray"]),
        ({"Rows": 16, "Columns": 10}, RejectionCode.UNSUPPORTED_PIXEL_FORMAT, ["16×10"]),
    ],
)
def test_rejections(
    attributes: dict[str, Any], code: RejectionCode, words: list[str], mg: DicomFactory
) -> None:
    ds = mg.mg_dataset(**attributes)
    if "Rows" in attributes:
        ds.PixelData = np.zeros((16, 10), np.uint16).tobytes()
    if "NumberOfFrames" in attributes:
        frames = int(attributes["NumberOfFrames"])
        ds.PixelData = b"".join([ds.PixelData] * frames)
    image = _read(ds, mg)
    _assert_rejected(image, code, *words)
    # the result can still list the rejected image
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert image.study_instance_uid == ds.StudyInstanceUID
    assert image.source == "case.dcm"


def test_no_pixel_data(mg: DicomFactory) -> None:
    ds = mg.mg_dataset()
    del ds.PixelData
    _assert_rejected(_read(ds, mg), RejectionCode.NO_PIXEL_DATA, "header-only")


@pytest.mark.parametrize(
    "attributes",
    [
        {"Modality": "RG", "SOPClassUID": SECONDARY_CAPTURE, "BodyPartExamined": "BREAST"},
        {"Modality": "OT", "SOPClassUID": SECONDARY_CAPTURE, "ViewPosition": "MLO"},
        {"Modality": "DX", "SOPClassUID": DX_PRESENTATION, "BodyPartExamined": "BREAST"},
        {"Modality": "MG", "SOPClassUID": SECONDARY_CAPTURE, "PatientID": "Mass-Test_P_1_LEFT_CC"},
    ],
    ids=["wg04-style", "sc-with-view", "dx-breast", "cbis-style"],
)
def test_mammograms_in_other_sop_classes_are_accepted(
    attributes: dict[str, Any], mg: DicomFactory
) -> None:
    image = _read(mg.mg_dataset(**attributes), mg)
    assert image.is_processed, image.rejection_text
    assert "mammography_assumed" not in [m.code for m in image.messages]


def test_rsna_style_file_meta_only_sop_class_is_accepted(mg: DicomFactory) -> None:
    # RSNA-2023: no Modality, no SOPClassUID, no ViewPosition in the data set; the file meta
    # says Digital X-Ray For Presentation; MONOCHROME1, SIGMOID, padding at the maximum
    ds = mg.mg_dataset(
        PhotometricInterpretation="MONOCHROME1",
        WindowCenter=[2000, 1900, 2100, 2050],
        WindowWidth=[1500, 1200, 1800, 1600],
        VOILUTFunction="SIGMOID",
        PixelPaddingValue=4095,
        PixelIntensityRelationship="LOG",
    )
    for keyword in ("Modality", "SOPClassUID", "ViewPosition", "PresentationIntentType"):
        delattr(ds, keyword)
    ds.file_meta.MediaStorageSOPClassUID = DX_PRESENTATION
    image = _read(ds, mg)
    assert image.is_processed, image.rejection_text
    assert "mammography_assumed" in [m.code for m in image.messages]
    assert image.laterality is Laterality.L and image.view is None


def test_unexpected_errors_become_rejections(mg: DicomFactory, monkeypatch: Any) -> None:
    import mammocad.io.dicom as dicom_module

    def boom(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("synthetic failure")

    monkeypatch.setattr(dicom_module, "render", boom)
    image = _read(mg.mg_dataset(), mg)
    _assert_rejected(image, RejectionCode.DECODE_FAILED, "ZeroDivisionError", "report the file")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEGLSLossless], ids=["native", "jls"])
def test_matrix_larger_than_any_mammogram_is_rejected(syntax: str, mg: DicomFactory) -> None:
    # a few-KB file declaring 46000×46000 made the decoder allocate 4 GB (a MemoryError
    # ended the whole batch); the header alone says it is no mammogram
    ds = mg.encode(mg.mg_dataset(), syntax)
    ds.Rows = ds.Columns = 46000
    image = _read(ds, mg)
    _assert_rejected(image, RejectionCode.UNSUPPORTED_PIXEL_FORMAT, "46000×46000", "16384")


@pytest.mark.parametrize(
    ("rows", "columns", "accepted"),
    [(12000, 9600, True), (16384, 8192, True), (16385, 64, False), (12000, 12000, False)],
)
def test_matrix_limit_leaves_room_for_fine_film_scans(
    rows: int, columns: int, accepted: bool, mg: DicomFactory
) -> None:
    # a 24×30 cm film scanned at 25 µm is 9600×12000: the limit must not refuse it
    ds = mg.mg_dataset(Rows=rows, Columns=columns)
    if accepted:
        check_pixel_format(ds, min_matrix=32)
    else:
        with pytest.raises(IngestError) as raised:
            check_pixel_format(ds, min_matrix=32)
        assert raised.value.code is RejectionCode.UNSUPPORTED_PIXEL_FORMAT


def test_out_of_memory_rejects_the_file_not_the_batch(
    mg: DicomFactory, monkeypatch: Any, tmp_path: Path
) -> None:
    import mammocad.io.dicom as dicom_module

    real_decode = dicom_module.decode_stored

    def decode(ds: Dataset, **kwargs: Any) -> Any:
        if ds.ImageLaterality == "R":
            raise MemoryError("synthetic: cannot allocate 4.2 GiB")
        return real_decode(ds, **kwargs)

    monkeypatch.setattr(dicom_module, "decode_stored", decode)
    left = mg.mg_dataset()
    right = mg.mg_dataset(ImageLaterality="R", StudyInstanceUID=left.StudyInstanceUID)
    (tmp_path / "left.dcm").write_bytes(mg.to_bytes(left))
    (tmp_path / "right.dcm").write_bytes(mg.to_bytes(right))
    images = {Path(str(i.source)).name: i for i in load_studies(tmp_path).images()}
    assert images["left.dcm"].is_processed
    _assert_rejected(images["right.dcm"], RejectionCode.DECODE_FAILED, "memory")


def test_deflated_file_cut_short_is_unreadable(mg: DicomFactory) -> None:
    raw = mg.to_bytes(mg.encode(mg.mg_dataset(), DeflatedExplicitVRLittleEndian))
    for kept in (len(raw) // 3, len(raw) // 2, len(raw) - 100):
        image = read_dicom(raw[:kept], name="cut.dcm")
        _assert_rejected(image, RejectionCode.UNREADABLE, "copy or export it again")


def test_header_cut_inside_a_sequence_is_never_a_decoder_fault(mg: DicomFactory) -> None:
    # pydicom raises struct.error for some cuts inside a sequence item: the file was cut
    # short, not a fault for the developers
    view = Dataset()
    view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning = "399162004", "SCT", "cc"
    raw = mg.to_bytes(mg.mg_dataset(ViewCodeSequence=[view]))
    start = raw.index(b"\x54\x00\x20\x02")  # (0054,0220) View Code Sequence
    codes = {read_dicom(raw[:kept]).rejection_code for kept in range(start + 8, start + 80)}
    assert RejectionCode.UNREADABLE in codes
    assert RejectionCode.DECODE_FAILED not in codes


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"PixelRepresentation": None}, "PixelRepresentation"),
        ({"BitsAllocated": 8, "BitsStored": 12, "HighBit": 11}, "exceeds Bits Allocated"),
    ],
    ids=["no_pixel_representation", "stored_above_allocated"],
)
def test_incomplete_image_pixel_module_is_missing_metadata(
    change: dict[str, Any], word: str, mg: DicomFactory
) -> None:
    ds = mg.mg_dataset()
    for keyword, value in change.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if ds.BitsAllocated == 8:
        ds.PixelData = bytes(int(ds.Rows) * int(ds.Columns))
    _assert_rejected(_read(ds, mg), RejectionCode.MISSING_METADATA, word, "re-export")


def test_real_rejections(shared_data: Path) -> None:
    samples = shared_data / "dicom-samples"
    cases = {
        "wg04-mg1/MG1_JPLY.dcm": (RejectionCode.DECODE_FAILED, "JPEG Extended"),
        "openrem-headers/MG-Im-Hologic-PropProj.dcm": (RejectionCode.NO_PIXEL_DATA, "header"),
        "openrem-headers/MG-Im-GE_Seno_1_ForProcessing.dcm": (RejectionCode.FOR_PROCESSING, ""),
        "openrem-headers/MG-Im-GE-SenDS-scaled.dcm": (RejectionCode.FOR_PROCESSING, ""),
        "openrem-headers/MG-Im-GE_Seno_2_ForPresentation.dcm": (
            RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
            "1×2",
        ),
    }
    for name, (code, word) in cases.items():
        image = read_image(samples / name)
        _assert_rejected(image, code, word)
        assert image.sop_instance_uid and image.study_instance_uid
        assert image.laterality is not None and image.view is not None


def test_real_lossy_jpeg2000_mammogram(shared_data: Path) -> None:
    image = read_image(shared_data / "dicom-samples/wg04-mg1/MG1_J2KI.dcm")
    assert image.is_processed, image.rejection_text
    assert image.pixels is not None and image.pixels.shape == (4664, 3064)
    assert (image.laterality, image.view) == (Laterality.L, ViewPosition.MLO)
    pixels = image.pixels[::8, ::8]
    # a left MLO film: breast bright on the left (chest wall), dark background on the right
    assert pixels[:, :40].mean() > pixels[:, -40:].mean() + 0.2
    assert 0.2 < pixels.mean() < 0.6 and pixels.std() > 0.1


def _read_traced(path: Path, via: str) -> tuple[Image, int]:
    """The image read from ``path`` by ``read_dicom`` or through ``load_studies`` on its
    folder, and the peak of memory Python allocated meanwhile."""
    import tracemalloc

    tracemalloc.start()
    try:
        if via == "read_dicom":
            image = read_dicom(path)
        else:
            image = next(iter(load_studies(path.parent).images()))
        return image, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("via", ["read_dicom", "load_studies"])
def test_multi_frame_object_is_rejected_before_its_pixels_are_read(
    via: str, mg: DicomFactory, tmp_path: Path
) -> None:
    # exported examinations often carry the tomosynthesis volume (hundreds of MB to GB)
    # beside the 2D images: rejecting it by its header must not first read the whole file
    # into memory (twice: the file's bytes, then pydicom's copy of the pixel data)
    frames = 16
    ds = mg.mg_dataset(np.zeros((512, 512), np.uint16))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.13.1.3"
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(512 * 512 * 2 * frames)
    path = tmp_path / "tomo.dcm"
    path.write_bytes(mg.to_bytes(ds))
    image, peak = _read_traced(path, via)
    size = path.stat().st_size
    _assert_rejected(image, RejectionCode.MULTI_FRAME, "Tomosynthesis")
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert (image.laterality, image.view) == (Laterality.L, ViewPosition.CC)
    assert peak < size / 4, f"peak {peak / 1e6:.1f} MB reading a {size / 1e6:.1f} MB file"


@pytest.mark.parametrize("via", ["read_dicom", "load_studies"])
def test_header_only_object_with_large_private_payload_is_rejected_lightly(
    via: str, mg: DicomFactory, tmp_path: Path
) -> None:
    # Hologic exports carry proprietary projection objects (Secondary Capture, Modality MG, no
    # Pixel Data; shared sample MG-Im-Hologic-PropProj.dcm) whose payload, tens to hundreds
    # of MB, sits in a private element: rejecting one as header-only must not load the payload
    ds = mg.mg_dataset(SOPClassUID=SECONDARY_CAPTURE, ViewPosition="FLATFIELD")
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    del ds.PixelData
    ds.add_new(0x7E010010, "LO", "HOLOGIC, Inc.")
    ds.add_new(0x7E011010, "OB", bytes(8 * 2**20))
    path = tmp_path / "propproj.dcm"
    path.write_bytes(mg.to_bytes(ds))
    image, peak = _read_traced(path, via)
    size = path.stat().st_size
    _assert_rejected(image, RejectionCode.NO_PIXEL_DATA, "header-only")
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert image.study_instance_uid == ds.StudyInstanceUID
    assert peak < size / 4, f"peak {peak / 1e6:.1f} MB reading a {size / 1e6:.1f} MB file"


@pytest.mark.parametrize("in_zip", [False, True])
def test_file_cut_inside_a_large_private_value_is_unreadable_in_a_zip_too(
    in_zip: bool, mg: DicomFactory, tmp_path: Path
) -> None:
    # the header-first rejection skips values over 1 MiB; a file cut inside one must still be
    # "cut short" (as the full reader says), not a header-only object: a zip member's stream
    # stops seeking at the member's end, so the position after the header never passes it
    import zipfile

    from mammocad.io.sources import Source

    ds = mg.mg_dataset()
    ds.add_new(0x00290010, "LO", "ACME")
    ds.add_new(0x00291010, "OB", bytes(2 * 2**20))
    raw = mg.to_bytes(ds)
    cut = raw[: raw.find(b"\x29\x00\x10\x10") + 12 + 2**20]
    source: Path | Source = tmp_path / "cut.dcm"
    if in_zip:
        with zipfile.ZipFile(tmp_path / "study.zip", "w") as archive:
            archive.writestr("cut.dcm", cut)
        source = Source(path=tmp_path / "study.zip", member="cut.dcm")
    else:
        source.write_bytes(cut)
    image = read_dicom(source)
    _assert_rejected(image, RejectionCode.UNREADABLE, "cut short")
    assert image.sop_instance_uid == ds.SOPInstanceUID
