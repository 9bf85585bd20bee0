"""Laterality, view, spacing and identifiers from tags, codes and names."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from mammocad.io.naming import TextEvidence, exact_view, parse_text, patient_key
from mammocad.io.tags import ImageTags, read_laterality, read_pixel_spacing, read_view
from mammocad.structures import Laterality, TagSource, ViewPosition

if TYPE_CHECKING:
    from pathlib import Path

L, R = Laterality.L, Laterality.R
CC, MLO = ViewPosition.CC, ViewPosition.MLO


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mass-Test_P_00173_LEFT_CC", TextEvidence(L, CC)),
        ("Calc-Training_P_01234_RIGHT_MLO_1", TextEvidence(R, MLO)),
        ("A_0010_1.RIGHT_MLO.png", TextEvidence(R, MLO)),
        ("RMLO.dcm", TextEvidence(R, MLO)),
        ("study/L-CC_0001.dcm", TextEvidence(L, CC)),
        ("MLO R", TextEvidence(R, MLO)),
        ("L XCCL", TextEvidence(L, ViewPosition.XCCL)),
        ("R CRANIO-CAUDAL", TextEvidence(R, CC)),
        ("Left mediolateral oblique", TextEvidence(L, MLO)),
        ("mdb001.png", TextEvidence()),
        ("R123 scan", TextEvidence()),  # no lone L/R without a view next to it
        ("LCC and RCC", TextEvidence(None, CC)),  # two sides: laterality unknown
        ("LEFT CC MLO", TextEvidence(L, None)),  # two views: view unknown
        ("LAT view at 10 ml", TextEvidence()),  # LAT, AT, ml are not evidence
        ("", TextEvidence()),
        (None, TextEvidence()),
    ],
)
def test_parse_text(text: str | None, expected: TextEvidence) -> None:
    assert parse_text(text) == expected


def test_exact_view_and_patient_key() -> None:
    assert exact_view(" mlo ") is MLO
    assert exact_view("AT") is ViewPosition.AT
    assert exact_view("FLATFIELD") is None and exact_view("OTHER") is None
    assert patient_key("Mass-Test_P_00173_LEFT_CC") == "P_00173"
    assert patient_key("Calc-Training_P_00173_RIGHT_MLO_2") == "P_00173"
    assert patient_key(" 3MG1 ") == "3MG1"
    assert patient_key("  ") is None and patient_key(None) is None


def _code(value: str, scheme: str, meaning: str, **nested: Any) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    for keyword, items in nested.items():
        setattr(item, keyword, items)
    return item


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (("399162004", "SCT", "cranio-caudal"), CC),
        (("399368009", "SCT", "medio-lateral oblique"), MLO),
        (("399260004", "SCT", "medial-lateral"), ViewPosition.ML),
        (("399352003", "SCT", "latero-medial"), ViewPosition.LM),
        (("399192008", "SCT", "cranio-caudal exaggerated laterally"), ViewPosition.XCCL),
        (("399101009", "SCT", "cranio-caudal exaggerated medially"), ViewPosition.XCCM),
        (("399188001", "SCT", "superolateral to inferomedial oblique"), ViewPosition.SIO),
        (("399099002", "SCT", "latero-medial oblique"), ViewPosition.OTHER),
        (("R-10242", "SNM3", "cranio-caudal"), CC),
        (("R-10226", "SRT", "medio-lateral oblique"), MLO),
        (("R-1024A", "SRT", "cranio-caudal exaggerated laterally"), ViewPosition.XCCL),
        (("R-102D0", "SRT", "superolateral to inferomedial oblique"), ViewPosition.SIO),
        (("X-1", "99PRIVATE", "Medio-Lateral Oblique"), MLO),  # meaning fallback
        (("X-2", "99PRIVATE", "something else"), None),
    ],
)
def test_view_code_sequence(code: tuple[str, str, str], expected: ViewPosition | None) -> None:
    ds = Dataset()
    ds.ViewCodeSequence = [_code(*code)]
    view, source, _ = read_view(ds)
    assert view is expected
    assert source is (TagSource.VIEW_CODE_SEQUENCE if expected else None)


@pytest.mark.parametrize(
    ("modifier", "expected"),
    [
        (("399055006", "SCT", "Spot Compression"), ViewPosition.OTHER),
        (("R-102D6", "SRT", "Magnification"), ViewPosition.OTHER),
        (("399011000", "SCT", "Axillary Tail"), ViewPosition.AT),
        (("399209000", "SCT", "Implant Displaced"), CC),  # a screening view, kept
    ],
)
def test_view_modifiers(modifier: tuple[str, str, str], expected: ViewPosition) -> None:
    ds = Dataset()
    ds.ViewPosition = "CC"  # modifiers win even over View Position
    ds.ViewCodeSequence = [
        _code("399162004", "SCT", "cranio-caudal", ViewModifierCodeSequence=[_code(*modifier)])
    ]
    view, _, messages = read_view(ds)
    assert view is expected
    assert [m.code for m in messages] == ["view_modifier"]
    assert modifier[2] in messages[0].text


def test_view_precedence_and_conflict() -> None:
    ds = Dataset()
    ds.ViewPosition = "MLO"
    ds.ViewCodeSequence = [_code("399162004", "SCT", "cranio-caudal")]
    ds.PatientOrientation = "CC"
    view, source, messages = read_view(ds, "x_LEFT_CC.dcm")
    assert (view, source) == (MLO, TagSource.VIEW_POSITION)
    assert [m.code for m in messages] == ["view_conflict"]
    del ds.ViewPosition
    assert read_view(ds)[:2] == (CC, TagSource.VIEW_CODE_SEQUENCE)
    del ds.ViewCodeSequence
    assert read_view(ds)[:2] == (CC, TagSource.OTHER)  # CBIS-DDSM puts it in PatientOrientation
    ds.PatientOrientation = ["A", "R"]
    ds.SeriesDescription = "R MLO"
    assert read_view(ds, "x_LEFT_CC.dcm")[:2] == (MLO, TagSource.OTHER)
    del ds.SeriesDescription
    assert read_view(ds, "x_LEFT_CC.dcm")[:2] == (CC, TagSource.FILENAME)
    assert read_view(ds, "img.dcm")[:2] == (None, None)


def test_laterality_precedence_and_conflict() -> None:
    ds = Dataset()
    ds.ImageLaterality = "L"
    ds.Laterality = "R"
    side, source, messages = read_laterality(ds, "RIGHT_CC.dcm")
    assert (side, source) == (L, TagSource.IMAGE_LATERALITY)
    assert [m.code for m in messages] == ["laterality_conflict"]
    ds.ImageLaterality = "B"  # both breasts: no single side, fall through
    assert read_laterality(ds)[:2] == (R, TagSource.LATERALITY)
    del ds.Laterality
    ds.PatientID = "Mass-Test_P_00001_LEFT_MLO"
    assert read_laterality(ds)[:2] == (L, TagSource.OTHER)
    del ds.PatientID
    assert read_laterality(ds, "scan_RIGHT_MLO.dcm")[:2] == (R, TagSource.FILENAME)
    assert read_laterality(ds, "scan.dcm")[:2] == (None, None)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"ImagerPixelSpacing": [0.1, 0.1], "PixelSpacing": [0.085, 0.085]}, (0.1, 0.1)),
        ({"PixelSpacing": [0.07, 0.065]}, (0.07, 0.065)),
        ({"NominalScannedPixelSpacing": [0.05, 0.05]}, (0.05, 0.05)),
        ({"ImagerPixelSpacing": [0.0, 0.1], "PixelSpacing": [0.2, 0.2]}, (0.2, 0.2)),
        ({"PixelSpacing": [53.96, 45.02]}, None),  # GE fixture: not millimetres
        ({}, None),
    ],
)
def test_pixel_spacing(attributes: dict[str, Any], expected: tuple[float, float] | None) -> None:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    assert read_pixel_spacing(ds) == expected


def _raw(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Store an element as read from a file: converted only when accessed."""
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def test_malformed_values_never_raise() -> None:
    ds = Dataset()
    _raw(ds, 0x00200062, "CS", b"\xff\xfe")  # undecodable Image Laterality
    _raw(ds, 0x00181164, "DS", b"0.1\\abc")  # Imager Pixel Spacing that is not a number
    _raw(ds, 0x00180015, "CS", b"\xfa\xfb")
    ds.Laterality = "R"
    ds.ViewCodeSequence = [Dataset()]  # an item without a code
    tags = ImageTags.from_dataset(ds)
    assert tags.laterality is R and tags.view is None and tags.rows == 0
    assert tags.pixel_spacing_mm is None


def _cbis_truth(shared_data: Path) -> dict[str, tuple[Laterality, ViewPosition]]:
    """StudyInstanceUID → (side, view) from the official CBIS-DDSM case description CSV."""
    table = shared_data / "annotation-formats/cbis-ddsm/mass_case_description_test_set.csv"
    truth = {}
    with table.open(newline="") as stream:
        for row in csv.DictReader(stream):
            study = row["image file path"].split("/")[1]
            side = Laterality(row["left or right breast"][0])
            truth[study] = (side, ViewPosition(row["image view"]))
    return truth


def test_cbis_ddsm_laterality_and_view_match_the_case_table(shared_data: Path) -> None:
    truth = _cbis_truth(shared_data)
    files = sorted((shared_data / "cbis-ddsm-sample").rglob("*.dcm"))
    assert len(files) == 8
    for path in files:
        tags = ImageTags.from_dataset(pydicom.dcmread(path, stop_before_pixels=True))
        assert (tags.laterality, tags.view) == truth[str(tags.study_instance_uid)], path.name
        assert tags.laterality_source is TagSource.LATERALITY
        assert tags.view_source is TagSource.OTHER
        assert parse_text(tags.patient_id) == TextEvidence(tags.laterality, tags.view)


@pytest.mark.parametrize(
    ("name", "side", "side_source", "view", "view_source"),
    [
        ("openrem-headers/MG-Im-GE_Seno_1_ForPresentation.dcm", L, "ImageLaterality", CC, "VP"),
        ("openrem-headers/MG-Im-GE-SenDS-scaled.dcm", L, "ImageLaterality", CC, "VP"),
        ("openrem-headers/MG-Im-Hologic-PropProj.dcm", R, "Laterality", CC, "VCS"),
        ("wg04-mg1/MG1_J2KI.dcm", L, "Laterality", MLO, "VP"),
    ],
)
def test_real_headers(
    name: str,
    side: Laterality,
    side_source: str,
    view: ViewPosition,
    view_source: str,
    shared_data: Path,
) -> None:
    ds = pydicom.dcmread(shared_data / "dicom-samples" / name, stop_before_pixels=True)
    tags = ImageTags.from_dataset(ds)
    sources = {"VP": TagSource.VIEW_POSITION, "VCS": TagSource.VIEW_CODE_SEQUENCE}
    assert (tags.laterality, tags.laterality_source) == (side, TagSource(side_source))
    assert (tags.view, tags.view_source) == (view, sources[view_source])
    assert tags.sop_instance_uid == ds.SOPInstanceUID
    assert tags.study_instance_uid == ds.StudyInstanceUID


def test_a_malformed_patient_value_is_not_quoted_in_warnings_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # pydicom quoted a birth date that breaks its VR ("Invalid value for VR DA: '1965-03-123'")
    # into the service's log and stderr: patient data (PS3.15 Annex E) where no log may hold it
    import io as bytes_io
    import warnings

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from mammocad.io.dicom import read_header

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.add_new(0x00100030, "DA", "1965-03-123")  # Patient's Birth Date
    ds.add_new(0x00100020, "LO", "P" * 80)  # Patient ID longer than LO allows
    buffer = bytes_io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=False)
    buffer.seek(0)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("DEBUG"):
        warnings.simplefilter("always")
        read = read_header(buffer, force=True)
        values = str(read.PatientBirthDate), str(read.PatientID)
    assert values == ("1965-03-123", "P" * 80)  # read as they are
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [text for text in said if "1965-03-123" in text or "value length" in text], said
