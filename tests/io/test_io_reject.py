"""Bad input is rejected with a code and a sentence that says what to do — never a crash."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.errors import RejectionCode
from mammocad.io import read_dicom, read_image
from mammocad.structures import ImageStatus, Laterality, ViewPosition

if TYPE_CHECKING:
    from pathlib import Path

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
