"""Standards review of the DICOM outputs as a PACS and a mammography workstation receive them.

* A source whose Specific Character Set is no Defined Term (``ISO-8859-1``: a Python codec
  name, common in real files, which pydicom reads) got no SR, SC or GSPS at all: highdicom
  refuses the term. The outputs now declare the Defined Term of the codec pydicom read it
  with (``ISO_IR 100``: the bytes stay), else UTF-8 (``ISO_IR 100`` when UTF-8 would change
  the bytes of a non-ASCII identifying value), and keep the name.
* Mammography CAD SR, an image refused by the quality gate: TID 4001 said "Not all algorithms
  succeeded" while the Summary of Detections / Analyses said "Succeeded" and named only the
  images read (PS3.16 TID 4000: the summaries hold the algorithms attempted "grouped by
  success/failure status", which "forms the basis for understanding why a mammography CAD
  report may produce ... fewer than anticipated results"). The refused image is now in the
  Image Library and in "Failed Detections" / "Failed Analyses" (TID 4015 / 4016 row 3), the
  summaries "Partially Succeeded" (CID 6042), and it is evidence of the SR (PS3.3 C.17.2.3).
* GSPS of an image without VOI: the state carried no VOI, which a viewer must read as the
  identity (PS3.4 N.2.1.3), while mammocad displayed the image from its lowest to its highest
  value. The state now carries the LINEAR window of that stretch.
* The SCs lacked the Patient / Study module attributes beyond Type 1 and 2 (Issuer of Patient
  ID, Study Description…) that the SR and GSPS copy.
* GSPS: Presentation Pixel Aspect Ratio was 1\\1 for non-square pixels (PS3.3 C.10.4).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from mammocad.io.decode import decode_stored
from mammocad.io.display import render
from mammocad.report.dicom import SrTemplate, write_dicom_outputs

from .conftest import dciodvfy_errors, edited_copies, processed_image

VIEWS = ["MLO", "CC", "CC", "MLO"]  # the phantom's files IM0001-IM0004 (seed 5)


def _result(paths: list[Path]) -> dict[str, Any]:
    images = [processed_image(path, view) for path, view in zip(paths, VIEWS, strict=True)]
    ds = pydicom.dcmread(paths[0], stop_before_pixels=True)
    return {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "status": "complete",
        "malignancy_probability": 0.61,
        "suspicion": "high",
        "model": {"name": "review-model", "version": "0.0.1"},
        "breasts": [
            {"laterality": "L", "malignancy_probability": 0.61, "views": ["CC", "MLO"]},
            {"laterality": "R", "malignancy_probability": 0.2, "views": ["CC", "MLO"]},
        ],
        "images": images,
    }


def _picture(key: str) -> np.ndarray:
    return np.full((64, 48, 3), 128, dtype=np.uint8)


def _write(result: dict[str, Any], folder: Path, template: SrTemplate) -> Any:
    return write_dicom_outputs(result, folder=folder, picture=_picture, sr_template=template)


def _code(item: Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue)


def _only(items: Any, code: str) -> Dataset:
    (item,) = [i for i in items if "ConceptNameCodeSequence" in i and _code(i) == code]
    return item


@pytest.mark.parametrize(
    ("declared", "declared_out"),
    [
        ("ISO-8859-1", "ISO_IR 100"),  # Python's name of ISO_IR 100: the bytes stay
        # Windows-1252 has no Defined Term; UTF-8 would re-encode the name: Latin-1 keeps its
        # bytes (test_review_patient_identity)
        ("cp1252", "ISO_IR 100"),
    ],
)
@pytest.mark.parametrize("template", list(SrTemplate))
def test_a_character_set_outside_the_defined_terms_still_gets_every_output(
    phantom: Path, tmp_path: Path, template: SrTemplate, declared: str, declared_out: str
) -> None:
    def latin_1(ds: Dataset) -> None:
        ds.SpecificCharacterSet = declared  # not a Defined Term; pydicom reads it as a codec
        ds.PatientName = "Ærø^Åse"

    paths = edited_copies(phantom, tmp_path / "in", latin_1)
    assert pydicom.dcmread(paths[0]).PatientName == "Ærø^Åse"  # how pydicom reads the source
    outputs = _write(_result(paths), tmp_path / "out", template)
    assert outputs.messages == []
    assert outputs.sr is not None and len(outputs.sc) == 4 and len(outputs.gsps) == 4
    for path in outputs.paths():
        written = pydicom.dcmread(path)
        assert written.SpecificCharacterSet == declared_out
        assert str(written.PatientName) == "Ærø^Åse"
        assert dciodvfy_errors(path) == []


def test_an_image_refused_is_a_failed_detection_and_analysis(phantom: Path, tmp_path: Path) -> None:
    paths = sorted(phantom.glob("*.dcm"))
    result = _result(paths)
    refused = result["images"][1]
    refused.update(status="rejected", rejection_code="no_tissue", findings=[])
    refused["quality"] = {
        "score": 0.0,
        "acceptable": False,
        "issues": [{"code": "no_tissue", "severity": "error", "text": "Blank."}],
    }
    outputs = _write(result, tmp_path / "out", SrTemplate.MAMMOGRAPHY_CAD)
    assert outputs.sr is not None and outputs.messages == []
    assert dciodvfy_errors(outputs.sr) == []
    sr = pydicom.dcmread(outputs.sr)
    library = _only(sr.ContentSequence, "111028").ContentSequence
    uids = [str(entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for entry in library]
    assert uids == [image["sop_instance_uid"] for image in result["images"]]  # all four
    position = {uid: [1, 2, k] for k, uid in enumerate(uids, start=1)}
    # TID 4001: not all algorithms succeeded; with findings
    assert _only(sr.ContentSequence, "111017").ConceptCodeSequence[0].CodeValue == "111244"
    for summary, succeeded, failed in (
        ("111064", "111063", "111025"),
        ("111065", "111062", "111024"),
    ):
        item = _only(sr.ContentSequence, summary)
        assert item.ConceptCodeSequence[0].CodeValue == "111223"  # CID 6042 Partially Succeeded
        for container, expected in (
            (
                succeeded,
                [position[i["sop_instance_uid"]] for i in result["images"] if i is not refused],
            ),
            (failed, [position[refused["sop_instance_uid"]]]),
        ):
            for performed in _only(item.ContentSequence, container).ContentSequence:
                references = [
                    [int(v) for v in child.ReferencedContentItemIdentifier]
                    for child in performed.ContentSequence
                    if "ReferencedContentItemIdentifier" in child
                ]
                assert references == expected
    evidence = {
        str(ref.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert evidence == set(uids)
    # the refused image still gets no SC or GSPS
    assert refused["sop_instance_uid"] not in outputs.sc | outputs.gsps


def test_objects_of_the_study_that_are_no_mammograms_are_not_failed_detections(
    phantom: Path, tmp_path: Path
) -> None:
    """A study folder exported from a PACS holds the study's other objects too, e.g. the CAD SR,
    presentation states and secondary captures of an earlier run (same Study Instance UID),
    rejected ``not_mammography``. They are no images the detector failed on: not in the Image
    Library (an IMAGE item of an SR or a presentation state), nor "Failed Detections", nor
    evidence of the SR."""
    paths = sorted(phantom.glob("*.dcm"))
    earlier = _write(_result(paths), tmp_path / "earlier", SrTemplate.MAMMOGRAPHY_CAD)
    assert earlier.sr is not None
    result = _result(paths)
    others = [earlier.sr, next(iter(earlier.gsps.values())), next(iter(earlier.sc.values()))]
    for other in others:
        uid = str(pydicom.dcmread(other, stop_before_pixels=True).SOPInstanceUID)
        issue = {"code": "not_mammography", "severity": "error", "text": "Not a mammogram."}
        result["images"].append(
            {
                "sop_instance_uid": uid,
                "source": str(other),
                "status": "rejected",
                "rejection_code": "not_mammography",
                "laterality": None,
                "view": None,
                "quality": {"score": 0.0, "acceptable": False, "issues": [issue]},
                "pixel_spacing_mm": None,
                "findings": [],
            }
        )
    outputs = _write(result, tmp_path / "out", SrTemplate.MAMMOGRAPHY_CAD)
    assert outputs.sr is not None and outputs.messages == []
    sr = pydicom.dcmread(outputs.sr)
    library = _only(sr.ContentSequence, "111028").ContentSequence
    listed = [str(entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for entry in library]
    assert listed == [image["sop_instance_uid"] for image in result["images"][:4]]
    for summary, failed in (("111064", "111025"), ("111065", "111024")):
        item = _only(sr.ContentSequence, summary)
        assert item.ConceptCodeSequence[0].CodeValue == "111222"  # CID 6042 Succeeded
        assert all(_code(child) != failed for child in item.ContentSequence)
    evidence = {
        str(ref.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert evidence == set(listed)


def _narrow_without_voi(ds: Dataset) -> None:
    """Stored values 1000-2000 of 12 bits, no window: mammocad stretches them black to white."""
    pixels = ds.pixel_array.astype(np.uint16)
    ds.PixelData = (
        (1000 + (pixels.astype(np.float64) / max(int(pixels.max()), 1)) * 1000)
        .astype(np.uint16)
        .tobytes()
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds["PixelData"].VR = "OW"
    for keyword in (
        "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction",
        "VOILUTSequence",
    ):  # fmt: skip
        ds.pop(keyword, None)


def _gsps_display(gsps: Dataset, stored: np.ndarray) -> np.ndarray:
    """What a viewer shows for ``stored`` under ``gsps``: LINEAR window (PS3.3 C.11.2.1.2.1),
    identity without one (PS3.4 N.2.1.3), as a fraction of the output range."""
    x = stored.astype(np.float64)
    if "SoftcopyVOILUTSequence" not in gsps:
        return x / 4095.0  # Bits Stored 12
    item = gsps.SoftcopyVOILUTSequence[0]
    assert item.VOILUTFunction == "LINEAR"
    center, width = float(item.WindowCenter), float(item.WindowWidth)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _lower_case_photometric(ds: Dataset) -> None:
    """As :func:`_narrow_without_voi`, Photometric Interpretation in lower case, which
    mammocad reads (io.checks) and pydicom's pixel_array refuses."""
    _narrow_without_voi(ds)
    ds.PhotometricInterpretation = "monochrome2"


def _high_bits_set(ds: Dataset) -> None:
    """As :func:`_narrow_without_voi`, with bits above Bits Stored set in some pixels (an
    overlay in the unused bits), which mammocad's decoder clears before display."""
    _narrow_without_voi(ds)
    pixels = np.frombuffer(ds.PixelData, dtype="<u2").copy()
    pixels[::7] |= 0x8000
    ds.PixelData = pixels.tobytes()


@pytest.mark.parametrize(
    "edit",
    [_narrow_without_voi, _lower_case_photometric, _high_bits_set],
    ids=["narrow", "lower_case_photometric", "high_bits_set"],
)
def test_the_gsps_of_an_image_without_voi_shows_it_as_mammocad_did(
    phantom: Path, tmp_path: Path, edit: Callable[[Dataset], None]
) -> None:
    paths = edited_copies(phantom, tmp_path / "in", edit)
    outputs = _write(_result(paths), tmp_path / "out", SrTemplate.TID1500)
    assert outputs.messages == []
    for path in paths:
        source = pydicom.dcmread(path)
        gsps = pydicom.dcmread(outputs.gsps[str(source.SOPInstanceUID)])
        assert dciodvfy_errors(outputs.gsps[str(source.SOPInstanceUID)]) == []
        stored = decode_stored(source).stored  # as mammocad reads the image
        shown = render(stored, source).pixels
        assert np.abs(_gsps_display(gsps, stored) - shown).max() < 1e-6


def test_every_output_carries_the_sources_patient_and_study_modules(
    phantom: Path, tmp_path: Path
) -> None:
    """The SCs had only the Type 1/2 patient and study attributes (highdicom's SC), the SR and
    GSPS the whole modules: a PACS telling patients apart by ID and Issuer of Patient ID
    (Patient module, PS3.3 C.7.1.1) filed the overlays under another patient, and the study's
    instances disagreed on Study Description and Patient's Age (dcentvfy)."""

    def issuer(ds: Dataset) -> None:
        ds.IssuerOfPatientID = "HOSPITAL-A"

    paths = edited_copies(phantom, tmp_path / "in", issuer)
    source = pydicom.dcmread(paths[0], stop_before_pixels=True)
    outputs = _write(_result(paths), tmp_path / "out", SrTemplate.MAMMOGRAPHY_CAD)
    assert outputs.messages == []
    for path in outputs.paths():
        written = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("IssuerOfPatientID", "StudyDescription", "PatientAge", "PatientID"):
            assert written.get(keyword) == source.get(keyword), (written.Modality, keyword)
        assert dciodvfy_errors(path) == []


def test_the_gsps_keeps_the_pixel_aspect_of_non_square_pixels(
    phantom: Path, tmp_path: Path
) -> None:
    """highdicom writes Presentation Pixel Aspect Ratio 1\\1 whatever the image: the state's
    Displayed Area governs the display (PS3.3 C.10.4), so pixels twice as high as wide were
    shown squashed to half height."""

    def tall_pixels(ds: Dataset) -> None:
        ds.PixelSpacing = ds.ImagerPixelSpacing = [0.1, 0.05]  # row spacing \ column spacing

    paths = edited_copies(phantom, tmp_path / "in", tall_pixels)
    outputs = _write(_result(paths), tmp_path / "out", SrTemplate.TID1500)
    assert outputs.messages == [] and len(outputs.gsps) == 4
    for path in outputs.gsps.values():
        (area,) = pydicom.dcmread(path).DisplayedAreaSelectionSequence
        assert [int(v) for v in area.PresentationPixelAspectRatio] == [2, 1]  # vertical\horizontal
        assert dciodvfy_errors(path) == []
    square = _write(_result(sorted(phantom.glob("*.dcm"))), tmp_path / "square", SrTemplate.TID1500)
    for path in square.gsps.values():
        (area,) = pydicom.dcmread(path).DisplayedAreaSelectionSequence
        assert [int(v) for v in area.PresentationPixelAspectRatio] == [1, 1]


def test_a_ge_pixel_spacing_beside_square_imager_pixels_keeps_them_square(
    phantom: Path, tmp_path: Path
) -> None:
    """GE Senographe writes Pixel Spacing 74.708182\\46.575 beside a square Imager Pixel
    Spacing of 0.0941 mm (dicom-samples/openrem-headers): the square spacing mammocad reads
    (io.tags.read_pixel_spacing) is the pixels' aspect, not 1.6 to 1."""

    def ge_spacing(ds: Dataset) -> None:
        ds.ImagerPixelSpacing = [0.094090909, 0.094090909]
        ds.PixelSpacing = [74.708182, 46.575]

    paths = edited_copies(phantom, tmp_path / "in", ge_spacing)
    outputs = _write(_result(paths), tmp_path / "out", SrTemplate.TID1500)
    assert outputs.messages == [] and len(outputs.gsps) == 4
    for path in outputs.gsps.values():
        (area,) = pydicom.dcmread(path).DisplayedAreaSelectionSequence
        assert [int(v) for v in area.PresentationPixelAspectRatio] == [1, 1]
