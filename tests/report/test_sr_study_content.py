"""What result.json says of the study that the SRs must carry too (review findings).

* TID 1500: the study's ``status`` and ``suspicion`` (study group), and each finding's CC/MLO
  link (``linked_finding_ids``) as a TEXT item of its group that names the linked group.
* Mammography CAD SR: the same in the Impression Description (TID 4002), which ended in ".."
  when a reason already ended with a full stop.
* Text outside the SR's character set (an em dash in the internal-error sentence, with a
  source in the default repertoire) was written as "?": the SR now switches to UTF-8, or,
  when that would re-encode a non-ASCII value copied from the source (a Japanese name), spells
  the text within the declared set.

The result object is built by hand from the phantom's headers (no model runs). Every SR is
validated with ``dciodvfy`` where installed, and the TID 1500 SR is read back with highdicom
(``srread`` does not know the Mammography CAD SR SOP class: that one is read with pydicom).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import highdicom.sr
import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.report.dicom import SrTemplate, write_dicom_outputs

from .conftest import JAPANESE, dciodvfy_errors, edited_copies, processed_image

EM_DASH_SENTENCE = (
    "mammocad failed during detection of this image (RuntimeError: boom); the other images "
    "were read \u2014 please report this with the log."
)


def _sources(phantom: Path, folder: Path, edit: Callable[[Dataset], None] | None) -> list[Path]:
    if edit is None:
        return sorted(phantom.glob("*.dcm"))
    return edited_copies(phantom, folder, edit)


def _result(paths: list[Path]) -> dict[str, Any]:
    """A result-schema object for the phantom (L, R, L, R): views CC, CC, MLO, MLO, one
    finding each, the left CC and MLO findings linked as one lesion, status partial."""
    views = ["CC", "CC", "MLO", "MLO"]
    images = [processed_image(path, view) for path, view in zip(paths, views, strict=True)]
    ds = pydicom.dcmread(paths[-1], stop_before_pixels=True)
    left_cc, left_mlo = images[0]["findings"][0], images[2]["findings"][0]
    left_cc["linked_finding_ids"] = [left_mlo["id"]]
    left_mlo["linked_finding_ids"] = [left_cc["id"]]
    return {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "status": "partial",
        "malignancy_probability": 0.61,
        "suspicion": "high",
        "model": {"name": "review-model", "version": "0.0.1"},
        "breasts": [
            {"laterality": "L", "malignancy_probability": 0.61, "views": ["CC", "MLO"]},
            {"laterality": "R", "malignancy_probability": 0.2, "views": ["CC", "MLO"]},
        ],
        "images": images,
    }


def _reject(image: dict[str, Any], code: str, text: str) -> None:
    image.update(status="rejected", rejection_code=code, findings=[])
    image["quality"] = {
        "score": 0.0,
        "acceptable": False,
        "issues": [{"code": code, "severity": "error", "text": text}],
    }


def _write_sr(result: dict[str, Any], folder: Path, template: SrTemplate) -> Dataset:
    outputs = write_dicom_outputs(
        result, folder=folder, picture=lambda key: None, gsps=False, sr_template=template
    )
    assert outputs.sr is not None, outputs.messages
    assert dciodvfy_errors(outputs.sr) == []
    return pydicom.dcmread(outputs.sr)


def _groups(sr: Dataset) -> dict[str, Dataset]:
    """TID 1500 measurement groups by tracking identifier."""
    (measurements,) = [
        item for item in sr.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "126010"
    ]
    groups = {}
    for group in measurements.ContentSequence:
        (tracking,) = _texts(group, "112039")
        groups[tracking] = group
    return groups


def _texts(group: Dataset, code: str) -> list[str]:
    return [
        str(item.TextValue)
        for item in group.ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == code
    ]


def _highdicom_texts(folder: Path, tracking: str) -> list[str]:
    """The TEXT items of one TID 1500 group, read back with highdicom."""
    read = highdicom.sr.srread(folder / "out" / "sr.dcm")
    report = highdicom.sr.MeasurementReport.from_sequence(read.content)
    groups = [
        *report.get_image_measurement_groups(),
        *report.get_planar_roi_measurement_groups(),
    ]
    (group,) = [g for g in groups if g.tracking_identifier == tracking]
    return [
        str(item.value)
        for item in group[0].ContentSequence
        if isinstance(item, highdicom.sr.TextContentItem)
    ]


def _impression_description(sr: Dataset) -> str:
    summary = sr.ContentSequence[2]  # CAD Processing and Findings Summary (TID 4001)
    (text,) = [
        item.TextValue
        for item in summary.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "111033"
    ]
    return str(text)


def test_tid1500_study_group_says_status_and_suspicion(phantom: Path, tmp_path: Path) -> None:
    result = _result(_sources(phantom, tmp_path / "in", None))
    sr = _write_sr(result, tmp_path / "out", SrTemplate.TID1500)
    study = _groups(sr)["study"]
    assert _texts(study, "121065") == [  # Procedure Description
        "Study status: partial (at least one image processed, but a standard view is missing "
        "or was rejected)"
    ]
    (suspicion,) = _texts(study, "121073")  # Impression
    assert suspicion.startswith("Suspicion: high (")
    # result.json has no suspicion per breast (result schema): the breast groups get none
    assert _texts(_groups(sr)["breast-L"], "121073") == []
    assert any(t.startswith("Study status: partial") for t in _highdicom_texts(tmp_path, "study"))


def test_tid1500_study_without_suspicion_has_no_impression(phantom: Path, tmp_path: Path) -> None:
    result = _result(_sources(phantom, tmp_path / "in", None))
    result.update(status="complete", suspicion=None)
    study = _groups(_write_sr(result, tmp_path / "out", SrTemplate.TID1500))["study"]
    assert _texts(study, "121073") == []
    assert _texts(study, "121065")[0].startswith("Study status: complete (both views")


def test_tid1500_finding_groups_name_the_linked_finding(phantom: Path, tmp_path: Path) -> None:
    result = _result(_sources(phantom, tmp_path / "in", None))
    left_cc, right_cc, left_mlo, _ = (image["findings"][0] for image in result["images"])
    groups = _groups(_write_sr(result, tmp_path / "out", SrTemplate.TID1500))
    assert _texts(groups[left_cc["id"]], "121106") == [  # Comment
        f"Same lesion as {left_mlo['id']} (L MLO) in the other view"
    ]
    assert _texts(groups[left_mlo["id"]], "121106") == [
        f"Same lesion as {left_cc['id']} (L CC) in the other view"
    ]
    assert _texts(groups[right_cc["id"]], "121106") == []
    assert f"Same lesion as {left_mlo['id']} (L MLO) in the other view" in _highdicom_texts(
        tmp_path, left_cc["id"]
    )
    # the link names a group a reader can follow: its tracking identifier
    assert left_mlo["id"] in groups
    # the finding type stays the group's only "Finding" item (TID 1501)
    finding_items = [
        item
        for item in groups[left_cc["id"]].ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "121071"
    ]
    assert [item.ValueType for item in finding_items] == ["CODE"]


def test_cad_impression_names_status_and_links(phantom: Path, tmp_path: Path) -> None:
    result = _result(_sources(phantom, tmp_path / "in", None))
    left_cc, _, left_mlo, _ = (image["findings"][0] for image in result["images"])
    text = _impression_description(_write_sr(result, tmp_path / "out", SrTemplate.MAMMOGRAPHY_CAD))
    assert "Study status: partial (at least one image processed" in text
    # each pair once, each finding by its view and box centre (the TID 4021 Center)
    assert text.count("Same lesion in two views:") == 1
    assert (
        f"Same lesion in two views: {left_cc['id']} (L CC, centre 35.2, 50.5) and "
        f"{left_mlo['id']} (L MLO, centre 35.2, 50.5)."
    ) in text


def test_cad_impression_ends_each_sentence_with_one_full_stop(
    phantom: Path, tmp_path: Path
) -> None:
    result = _result(_sources(phantom, tmp_path / "in", None))
    _reject(result["images"][1], "no_tissue", "Blank.")
    _reject(result["images"][3], "too_dark", "Underexposed")
    text = _impression_description(_write_sr(result, tmp_path / "out", SrTemplate.MAMMOGRAPHY_CAD))
    assert ".." not in text
    assert "no_tissue: Blank. " in text and text.endswith("too_dark: Underexposed.")


def _no_charset(ds: Dataset) -> None:
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet


def _japanese(ds: Dataset) -> None:
    ds.SpecificCharacterSet = ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    ds.PatientName = JAPANESE


@pytest.mark.parametrize("template", list(SrTemplate))
@pytest.mark.parametrize(
    ("edit", "sentence", "declared", "written"),
    [
        (_no_charset, EM_DASH_SENTENCE, "ISO_IR 192", EM_DASH_SENTENCE),
        # JIS X 0208 has neither "é" nor the em dash; UTF-8 would re-encode the Japanese name
        # (other bytes than the images': a PACS matches the patient by them), so the set stays
        # and the sentence is spelt within it
        (
            _japanese,
            "Image illisible (cliché sous-exposé) \u2014 reprise nécessaire.",
            ["ISO 2022 IR 6", "ISO 2022 IR 87"],
            "Image illisible (cliche sous-expose) - reprise necessaire.",
        ),
    ],
    ids=["default-repertoire", "iso2022-japanese"],
)
def test_text_outside_the_character_set_is_not_corrupted(
    phantom: Path,
    tmp_path: Path,
    template: SrTemplate,
    edit: Callable[[Dataset], None],
    sentence: str,
    declared: str | list[str],
    written: str,
) -> None:
    paths = _sources(phantom, tmp_path / "in", edit)
    source = pydicom.dcmread(paths[0], stop_before_pixels=True)
    source_name = bytes(source.get_item(0x00100010).value)
    result = _result(paths)
    _reject(result["images"][3], "internal_error", sentence)
    sr = _write_sr(result, tmp_path / "out", template)
    assert sr.SpecificCharacterSet == declared
    texts = [str(e.value) for e in sr.iterall() if e.keyword == "TextValue"]
    assert any(written in t for t in texts), texts
    assert not any("?" in t for t in texts)
    assert str(sr.PatientName) == str(source.PatientName)
    sr_name = pydicom.dcmread(tmp_path / "out" / "sr.dcm", stop_before_pixels=True)
    assert bytes(sr_name.get_item(0x00100010).value) == source_name
    if template is SrTemplate.TID1500:
        assert any(written in t for t in _highdicom_texts(tmp_path, "study"))


@pytest.mark.parametrize("template", list(SrTemplate))
def test_text_in_the_character_set_keeps_it(
    phantom: Path, tmp_path: Path, template: SrTemplate
) -> None:
    """UTF-8 only when needed: an ASCII report keeps the source's character set."""
    paths = _sources(phantom, tmp_path / "in", _japanese)
    sr = _write_sr(_result(paths), tmp_path / "out", template)
    assert list(sr.SpecificCharacterSet) == ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    assert str(sr.PatientName) == JAPANESE


@pytest.mark.parametrize("template", list(SrTemplate))
def test_a_name_in_utf8_without_a_declaration_is_copied_byte_for_byte(
    phantom: Path, tmp_path: Path, template: SrTemplate
) -> None:
    """A common defect: a name in UTF-8 bytes and no Specific Character Set. pydicom reads it as
    Latin-1; switching the SR to UTF-8 re-encoded that reading, so the SR named the patient
    'MÃ¼ller' where the images say 'Müller' (review). The declaration and the name bytes stay;
    mammocad's own sentence is spelt in the default repertoire instead."""
    from pydicom.dataelem import DataElement

    name = "M\u00fcller^J\u00fcrgen".encode()

    def utf8_name(ds: Dataset) -> None:
        _no_charset(ds)
        ds.add(DataElement(0x00100010, "PN", name))

    paths = _sources(phantom, tmp_path / "in", utf8_name)
    result = _result(paths)
    _reject(result["images"][3], "internal_error", EM_DASH_SENTENCE)
    outputs = write_dicom_outputs(
        result, folder=tmp_path / "out", picture=lambda key: None, gsps=False, sr_template=template
    )
    assert outputs.sr is not None
    sr = pydicom.dcmread(outputs.sr, stop_before_pixels=True)
    assert "SpecificCharacterSet" not in sr or sr.SpecificCharacterSet in ("", "ISO_IR 6")
    assert bytes(sr.get_item(0x00100010).value).rstrip(b" ") == name
    texts = [str(e.value) for e in sr.iterall() if e.keyword == "TextValue"]
    plain = EM_DASH_SENTENCE.replace("\u2014", "-")
    assert any(plain in text for text in texts), texts


def test_names_mammocad_writes_are_spelt_within_the_declared_set() -> None:
    """The fold takes person names too (a PN value is no str to pydicom)."""
    from pydicom.dataelem import DataElement
    from pydicom.sequence import Sequence as DicomSequence

    from mammocad.report.dicom.charset import declare_character_set

    sr = Dataset()
    sr.add(DataElement(0x00100010, "PN", "M\u00c3\u00bcller"))  # a UTF-8 name read as Latin-1
    item = Dataset()
    item.PersonName = "Dupr\u00e9^Ren\u00e9"
    item.TextValue = "read \u2014 fine"
    sr.ContentSequence = DicomSequence([item])
    declare_character_set(sr)
    assert "SpecificCharacterSet" not in sr
    assert str(sr.ContentSequence[0].PersonName) == "Dupre^Rene"
    assert sr.ContentSequence[0].TextValue == "read - fine"
    assert str(sr.PatientName) == "M\u00c3\u00bcller"


def _without_size(result: dict[str, Any], index: int, code: str, text: str) -> str:
    """Image ``index`` turned into a file rejected before its size was known: result.json
    cannot list it as an image (rows, columns ≥ 1), so its rejection is a study message
    naming it (``report.study_json``); returns its SOP Instance UID."""
    image = result["images"].pop(index)
    uid = str(image["sop_instance_uid"])
    for other in result["images"]:
        for finding in other["findings"]:
            finding.pop("linked_finding_ids", None)
    result["messages"] = [
        {"code": "missing_view", "severity": "warning", "text": "The left MLO image was "
         f"rejected ({code}): the left breast is read without it.", "sop_instance_uid": None},
        {"code": code, "severity": "error", "text": text, "sop_instance_uid": uid},
    ]  # fmt: skip
    return uid


@pytest.mark.parametrize("template", list(SrTemplate))
def test_an_image_rejected_before_its_size_was_known_is_named_in_the_sr(
    phantom: Path, tmp_path: Path, template: SrTemplate
) -> None:
    """A study file refused before its size was read (no Rows, undecodable header) is in
    result.json's study messages only. Both SRs named every image not processed but this
    one: the CAD SR said "All algorithms succeeded" and neither said which image was missed."""
    result = _result(_sources(phantom, tmp_path / "in", None))
    sentence = "The Image Pixel module lacks Rows, so the pixels cannot be interpreted."
    uid = _without_size(result, 2, "missing_metadata", sentence)
    sr = _write_sr(result, tmp_path / "out", template)
    expected = f"{uid}: missing_metadata: {sentence}"
    if template is SrTemplate.TID1500:
        assert _texts(_groups(sr)["study"], "121071") == [f"Image not processed: {expected}"]
    else:
        assert f"Image not analysed: {expected}" in _impression_description(sr)
        summary = sr.ContentSequence[2].ConceptCodeSequence[0]
        assert summary.CodeValue == "111244"  # Not all algorithms succeeded; with findings
