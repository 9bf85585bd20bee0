"""DICOM outputs from source headers as real files carry them (review findings).

CBIS-DDSM puts the view in Patient Orientation (``CC``, ``MLO``: one value); Japanese sites
send ``\\ISO 2022 IR 87`` (an empty first value, PS3.3 C.12.1.1.2); many files say ``ISO_IR 6``
or leave Specific Character Set empty; some carry values longer than their VR allows. Each
output must still be written, read back as the source says, and pass ``dciodvfy``.

The result object is built by hand from the phantom's headers (one finding per image), so no
model runs here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.io.tags import read_laterality
from mammocad.report.dicom import DicomOutputs, SrTemplate, write_dicom_outputs
from mammocad.structures import Laterality

from .conftest import JAPANESE, dciodvfy_errors, edited_copies, processed_image


def _result(paths: list[Path]) -> dict[str, Any]:
    """A result-schema object for ``paths``: every image processed, one finding each."""
    images = [processed_image(path, "CC") for path in paths]
    ds = pydicom.dcmread(paths[-1], stop_before_pixels=True)
    return {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "malignancy_probability": 0.61,
        "suspicion": "high",
        "model": {"name": "review-model", "version": "0.0.1"},
        "breasts": [{"laterality": "L", "malignancy_probability": 0.61}],
        "images": images,
    }


def _write(paths: list[Path], folder: Path, template: SrTemplate) -> DicomOutputs:
    picture = np.zeros((64, 48, 3), np.uint8)
    return write_dicom_outputs(
        _result(paths), folder=folder, picture=lambda key: picture, sr_template=template
    )


def _written(outputs: DicomOutputs) -> list[Path]:
    assert [m.text for m in outputs.messages] == []
    paths = outputs.paths()
    assert len(paths) == 1 + 2 * 4
    assert {str(p): dciodvfy_errors(p) for p in paths if dciodvfy_errors(p)} == {}
    return paths


@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_secondary_capture_does_not_split_a_view_into_orientation_letters(
    phantom: Path, tmp_path: Path, view: str
) -> None:
    """CBIS-DDSM: Patient Orientation = the view, one value. Copied with ``list(...)`` it became
    ``C\\C`` or ``M\\L\\O`` (dciodvfy: "Illegal character in PatientOrientation", "Bad attribute
    Value Multiplicity = <3>"): PS3.3 C.7.6.1.1.1 allows two values of A/P/R/L/H/F only."""

    def edit(ds: Dataset) -> None:
        ds.PatientOrientation = view

    paths = edited_copies(phantom, tmp_path / "in", edit)
    outputs = _write(paths, tmp_path / "out", SrTemplate.TID1500)
    _written(outputs)
    for path in outputs.sc.values():
        assert pydicom.dcmread(path).PatientOrientation == ""


def test_secondary_capture_keeps_a_valid_mammography_orientation(
    phantom: Path, tmp_path: Path
) -> None:
    def edit(ds: Dataset) -> None:
        ds.PatientOrientation = ["A", "FR"]

    paths = edited_copies(phantom, tmp_path / "in", edit)
    outputs = _write(paths, tmp_path / "out", SrTemplate.TID1500)
    for path in outputs.sc.values():
        assert list(pydicom.dcmread(path).PatientOrientation) == ["A", "FR"]


@pytest.mark.parametrize("template", list(SrTemplate))
def test_japanese_names_with_code_extensions(
    phantom: Path, tmp_path: Path, template: SrTemplate
) -> None:
    """``\\ISO 2022 IR 87``: highdicom refused the empty first value ("'' is not a valid
    SpecificCharacterSetValues") and the study got no SR, SC or GSPS at all."""

    def edit(ds: Dataset) -> None:
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds.PatientName = JAPANESE

    paths = edited_copies(phantom, tmp_path / "in", edit)
    for path in _written(_write(paths, tmp_path / "out", template)):
        written = pydicom.dcmread(path, stop_before_pixels=True)
        assert list(written.SpecificCharacterSet) == ["ISO 2022 IR 6", "ISO 2022 IR 87"]
        assert str(written.PatientName) == JAPANESE


@pytest.mark.parametrize("value", ["ISO_IR 6", ""])
def test_default_repertoire_spelt_out_or_empty(phantom: Path, tmp_path: Path, value: str) -> None:
    def edit(ds: Dataset) -> None:
        ds.SpecificCharacterSet = value

    paths = edited_copies(phantom, tmp_path / "in", edit)
    for path in _written(_write(paths, tmp_path / "out", SrTemplate.MAMMOGRAPHY_CAD)):
        written = pydicom.dcmread(path, stop_before_pixels=True)
        assert "SpecificCharacterSet" not in written
        assert written.PatientName == pydicom.dcmread(paths[0]).PatientName


def test_over_long_study_id_is_not_copied(phantom: Path, tmp_path: Path) -> None:
    """A 23-character Study ID (SH: at most 16, PS3.5 Table 6.2-1) was copied into every
    output (dciodvfy: "Length invalid for this VR = <23> - expected <= 16")."""

    def edit(ds: Dataset) -> None:
        ds.StudyID = "STUDYID-0123456789-LONG"

    paths = edited_copies(phantom, tmp_path / "in", edit)
    source = pydicom.dcmread(paths[0], stop_before_pixels=True)
    for path in _written(_write(paths, tmp_path / "out", SrTemplate.TID1500)):
        written = pydicom.dcmread(path, stop_before_pixels=True)
        assert written.StudyID == ""
        assert written.PatientID == source.PatientID
        assert written.AccessionNumber == source.AccessionNumber


def test_an_unreadable_window_leaves_the_presentation_state_without_it(
    phantom: Path, tmp_path: Path
) -> None:
    """Window Center ``abc\\de`` (not DS): the analysis displays the image without it, but
    highdicom copying it into the GSPS raised ("could not convert string to float") and the
    image got no presentation state."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for source in sorted(phantom.glob("*.dcm")):
        ds = pydicom.dcmread(source)
        ds.WindowCenter, ds.WindowWidth = "1234.5", "4321.5"
        ds.save_as(folder / source.name)
        data = (folder / source.name).read_bytes()
        (folder / source.name).write_bytes(
            data.replace(b"1234.5", b"abc\\de").replace(b"4321.5", b"xyz   ")
        )
        paths.append(folder / source.name)
    for path in _written(_write(paths, tmp_path / "out", SrTemplate.TID1500)):
        written = pydicom.dcmread(path, stop_before_pixels=True)
        assert "WindowCenter" not in written
        # the stretch over the image's values mammocad displayed instead, not the unreadable
        # window (no VOI at all would mean the identity, PS3.4 N.2.1.3)
        if written.Modality == "PR":
            (voi,) = written.SoftcopyVOILUTSequence
            assert voi.WindowCenterWidthExplanation == "MIN-MAX"


def _presentation_states(outputs: DicomOutputs) -> list[Dataset]:
    _written(outputs)
    return [pydicom.dcmread(path) for path in outputs.gsps.values()]


def test_a_monochrome1_image_keeps_its_inversion_in_the_presentation_state(
    phantom: Path, tmp_path: Path
) -> None:
    """A GSPS replaces the image's grayscale pipeline (PS3.4 N.2.1.4): for a MONOCHROME1 source
    it must say INVERSE (PS3.3 C.11.6.1.2), or the viewer shows a negative under the marks."""

    def edit(ds: Dataset) -> None:  # the header is what the writer reads
        ds.PhotometricInterpretation = "MONOCHROME1"

    paths = edited_copies(phantom, tmp_path / "in", edit)
    for state in _presentation_states(_write(paths, tmp_path / "out", SrTemplate.TID1500)):
        assert state.PresentationLUTShape == "INVERSE"
    plain = _write(sorted(phantom.glob("*.dcm")), tmp_path / "plain", SrTemplate.TID1500)
    assert {state.PresentationLUTShape for state in _presentation_states(plain)} == {"IDENTITY"}


def test_the_presentation_state_carries_the_one_voi_the_analysis_applied(
    phantom: Path, tmp_path: Path
) -> None:
    """GE-style sources carry three windows and a VOI LUT Sequence beside them (allowed, PS3.3
    C.8.11.3.1.5). highdicom refused to copy both (no GSPS at all), and of three windows it
    copied all three where C.11.8 allows one pair per image. The state now holds what
    io.display.choose_voi applied: the VOI LUT when there is one, else the first window."""
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.LUTData = (np.arange(4096, dtype="<u2") * 16).tobytes()
    lut.LUTExplanation = "LINEAR LUT"

    def windows(ds: Dataset) -> None:
        ds.WindowCenter = ["2047.5", "1800", "2300"]
        ds.WindowWidth = ["4095", "3000", "2000"]
        ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER", "SOFTER"]
        ds.VOILUTFunction = "LINEAR"
        ds.pop("VOILUTSequence", None)

    def both(ds: Dataset) -> None:
        windows(ds)
        ds.VOILUTSequence = [lut]

    paths = edited_copies(phantom, tmp_path / "windows", windows)
    for state in _presentation_states(_write(paths, tmp_path / "out1", SrTemplate.TID1500)):
        (item,) = state.SoftcopyVOILUTSequence
        assert (float(item.WindowCenter), float(item.WindowWidth)) == (2047.5, 4095.0)
        assert item.WindowCenterWidthExplanation == "NORMAL"
        assert "VOILUTSequence" not in item
    paths = edited_copies(phantom, tmp_path / "both", both)
    for state in _presentation_states(_write(paths, tmp_path / "out2", SrTemplate.TID1500)):
        (item,) = state.SoftcopyVOILUTSequence
        assert "WindowCenter" not in item
        (copied,) = item.VOILUTSequence
        assert copied.LUTExplanation == "LINEAR LUT"


def _gsps_of(header: Dataset) -> Dataset:
    from mammocad.report.dicom.gspr import build_gsps
    from mammocad.report.dicom.uids import OutputUids

    uids = OutputUids(study_instance_uid="1.2.3", model_name="m", model_version="1")
    return build_gsps(
        header, [], laterality="L", uids=uids, instance_number=1, model_name="m", model_version="1"
    )


def _shown_through(state: Dataset, stored: np.ndarray) -> np.ndarray:
    """What a viewer shows for ``stored`` through the state's VOI LUT, 0 black to 1 white."""
    (item,) = state.SoftcopyVOILUTSequence
    (lut,) = item.VOILUTSequence
    count, first, bits = (int(v) for v in lut.LUTDescriptor)
    entries = np.frombuffer(lut.LUTData, "<u2" if bits == 16 else "<u1")[: count or 65536]
    return entries[np.clip(stored - first, 0, len(entries) - 1)] / (2**bits - 1)


@pytest.mark.parametrize("layout", ["8-bit, one entry per word", "US values", "16-bit, 12 used"])
def test_a_voi_lut_reaches_the_presentation_state_as_mammocad_displayed_it(
    phantom: Path, layout: str
) -> None:
    """highdicom's copy read LUT Data as bytes of the descriptor's width: 8-bit entries one per
    word became 8192 entries with zeros between, US values raised (no GSPS), and 12-bit values
    under a 16-bit descriptor were stretched to white where mammocad shows them dark."""
    from pydicom.dataelem import DataElement

    from mammocad.io.display import render
    from mammocad.report.dicom.headers import read_header

    ramp = np.arange(4096)
    lut = Dataset()
    if layout.startswith("8-bit"):
        lut.LUTDescriptor = [4096, 0, 8]
        lut.add(DataElement(0x00283006, "OW", (ramp * 255 // 4095).astype("<u2").tobytes()))
    elif layout == "US values":
        lut.LUTDescriptor = [4096, 0, 16]
        lut.add(DataElement(0x00283006, "US", [int(v) for v in ramp * 16]))
    else:
        lut.LUTDescriptor = [4096, 0, 16]
        lut.LUTData = ramp.astype("<u2").tobytes()
    header = read_header(sorted(phantom.glob("*.dcm"))[0])
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTFunction"):
        header.pop(keyword, None)
    header.VOILUTSequence = [lut]
    stored = np.array([[0, 1000, 2000, 4095]], dtype=np.uint16)
    shown = render(stored, header).pixels[0]
    gsps = _shown_through(_gsps_of(header), stored[0].astype(np.int64))
    np.testing.assert_allclose(gsps, shown, atol=1 / 255)


def test_conflicting_laterality_tags_give_every_object_the_breast_of_the_result(
    phantom: Path, tmp_path: Path
) -> None:
    """Image Laterality L with a series Laterality R: mammocad reads the image as left (Image
    Laterality wins, with a ``laterality_conflict`` warning), and so do the SR and the SC; the
    GSPS took the series' R and was filed as the right breast's marks on a left image."""

    def conflicting(ds: Dataset) -> None:
        ds.ImageLaterality = "L"
        ds.Laterality = "R"

    paths = edited_copies(phantom, tmp_path / "in", conflicting)
    outputs = _write(paths, tmp_path / "out", SrTemplate.TID1500)
    _written(outputs)
    for path in outputs.gsps.values():
        assert pydicom.dcmread(path).Laterality == "L"
    for path in outputs.sc.values():
        assert pydicom.dcmread(path, stop_before_pixels=True).ImageLaterality == "L"


def test_image_laterality_naming_no_breast_leaves_the_gsps_in_the_series_breast(
    phantom: Path, tmp_path: Path
) -> None:
    """Image Laterality B (or U) names no single breast: mammocad reads the breast from the
    series' Laterality (``mammocad.io.tags``), so result.json and the SR say L. The GSPS took
    the first tag present, B, and was filed in no breast's series, without Laterality."""

    def both(ds: Dataset) -> None:
        ds.ImageLaterality = "B"
        ds.Laterality = "L"

    paths = edited_copies(phantom, tmp_path / "in", both)
    result = _result(paths)
    for image, path in zip(result["images"], paths, strict=True):
        # the breast as analyze records it (test helpers copy Image Laterality as it stands)
        side, _, _ = read_laterality(pydicom.dcmread(path, stop_before_pixels=True))
        assert side is Laterality.L
        image["laterality"] = side.value
    picture = np.zeros((64, 48, 3), np.uint8)
    outputs = write_dicom_outputs(
        result, folder=tmp_path / "out", picture=lambda key: picture, sr_template=SrTemplate.TID1500
    )
    _written(outputs)
    assert outputs.gsps
    for path in outputs.gsps.values():
        assert pydicom.dcmread(path).get("Laterality") == "L"
    for path in outputs.sc.values():
        assert pydicom.dcmread(path, stop_before_pixels=True).get("ImageLaterality") == "L"
