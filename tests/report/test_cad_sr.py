"""Mammography CAD SR (PS3.16 TID 4000) of an analysed phantom study.

The detector is a tiny untrained bundle whose ``predict`` returns known findings (every label,
one finding above and one below the presentation threshold per image), so the content tree can
be checked item by item against ``result.json``; the file is read back and, where ``dciodvfy``
(Debian ``dicom3tools``) is installed, validated.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset

from mammocad.detect import ImagePrediction
from mammocad.detect.predict import Detector
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.preprocess import PreprocessParams
from mammocad.report.dicom import DicomOutputs, SrTemplate, write_dicom_outputs
from mammocad.report.dicom.cad_codes import SINGLE_IMAGE_FINDING_TYPES, VIEWS
from mammocad.report.dicom.cad_sr import MAMMOGRAPHY_CAD_SR_STORAGE, presentation_threshold
from mammocad.structures import Finding, FindingLabel, PreprocessedImage, ViewPosition
from mammocad.synthetic import write_studies

SIZE = (256, 208)
LABELS = list(FindingLabel)
CAD = SrTemplate.MAMMOGRAPHY_CAD


class KnownDetector(Detector):
    """Two findings per image at fixed ORIGINAL-pixel boxes (or none), cycling the labels."""

    calls = 0
    empty = False

    def predict(self, preprocessed: Sequence[PreprocessedImage]) -> list[ImagePrediction]:
        predictions = []
        for item in preprocessed:
            key, findings = item.image.key, []
            for k in range(0 if KnownDetector.empty else 2):
                x, y = 100.25 + 60 * k, 120.5 + 90 * k
                findings.append(
                    Finding(
                        id=f"{key}-f{k + 1}",
                        sop_instance_uid=key,
                        label=LABELS[(KnownDetector.calls * 2 + k) % len(LABELS)],
                        score=0.9 - 0.1 * k,
                        malignancy_probability=0.734 - 0.7 * k,  # 0.73 shown, 0.03 hidden
                        box=(x, y, x + 50.5, y + 40.25),
                    )
                )
            KnownDetector.calls += 1
            predictions.append(ImagePrediction(image_key=key, findings=findings))
        return predictions


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path) -> Iterator[Pipeline]:
    threads = torch.get_num_threads()
    loaded = Detector.from_bundle(tiny_bundle, num_threads=1)
    detector = KnownDetector(model=loaded.model, manifest=loaded.manifest)
    yield Pipeline(detector=detector, preprocessing=PreprocessParams(input_size=SIZE))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("studies"), seed=11, size="small"
    )
    return folder


def _analyse(pipeline: Pipeline, folder: Path, *, empty: bool = False) -> StudyAnalysis:
    KnownDetector.calls, KnownDetector.empty = 0, empty
    try:
        (study,) = list(iter_studies([folder]))
        return pipeline.analyze(study)
    finally:
        KnownDetector.empty = False


def _write(analysis: StudyAnalysis, folder: Path, template: SrTemplate = CAD) -> DicomOutputs:
    return write_dicom_outputs(
        analysis.result, folder=folder, picture=lambda key: None, sr_template=template
    )


@pytest.fixture(scope="module")
def written(
    pipeline: Pipeline, study_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StudyAnalysis, DicomOutputs]:
    analysis = _analyse(pipeline, study_folder)
    return analysis, _write(analysis, tmp_path_factory.mktemp("cad"))


def _code(item: Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue)


def _value(item: Dataset) -> tuple[str, str]:
    code = item.ConceptCodeSequence[0]
    return str(code.CodeValue), str(code.CodingSchemeDesignator)


def _children(item: Dataset, code: str | None = None) -> list[Dataset]:
    items = list(item.get("ContentSequence", []))
    return (
        items
        if code is None
        else [i for i in items if "ConceptNameCodeSequence" in i and _code(i) == code]
    )


def _only(item: Dataset, code: str) -> Dataset:
    (child,) = _children(item, code)
    return child


def _resolve(sr: Dataset, identifier: Sequence[int]) -> Dataset:
    """The content item a Referenced Content Item Identifier points at (PS3.3 C.17.3.2.4)."""
    assert identifier[0] == 1
    node = sr
    for position in identifier[1:]:
        node = node.ContentSequence[position - 1]
    return node


def test_root_language_and_image_library(written: tuple[StudyAnalysis, DicomOutputs]) -> None:
    analysis, outputs = written
    assert outputs.sr is not None and not outputs.messages
    sr = pydicom.dcmread(outputs.sr)
    assert sr.SOPClassUID == MAMMOGRAPHY_CAD_SR_STORAGE
    assert sr.Modality == "SR" and sr.CompletionFlag == "COMPLETE"
    assert _code(sr) == "111036"  # Mammography CAD Report
    (template,) = sr.ContentTemplateSequence
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "4000")
    assert [(i.RelationshipType, _code(i)) for i in sr.ContentSequence] == [
        ("HAS CONCEPT MOD", "121049"),  # Language (TID 1204)
        ("CONTAINS", "111028"),  # Image Library
        ("CONTAINS", "111017"),  # CAD Processing and Findings Summary (TID 4001)
        ("CONTAINS", "111064"),  # Summary of Detections
        ("CONTAINS", "111065"),  # Summary of Analyses
    ]
    images = {i["sop_instance_uid"]: i for i in analysis.result["images"]}
    library = sr.ContentSequence[1].ContentSequence
    assert [e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for e in library] == list(images)
    for entry in library:
        image = images[entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID]
        assert entry.ValueType == "IMAGE" and "ConceptNameCodeSequence" not in entry
        side = {"L": ("80248007", "SCT"), "R": ("73056007", "SCT")}[image["laterality"]]
        assert _value(_only(entry, "111027")) == side  # Image Laterality, CID 6022
        view = VIEWS[ViewPosition(image["view"])]
        assert _value(_only(entry, "111031")) == (view.value, "SCT")  # Image View, CID 4014
        assert _only(entry, "111060").Date == sr.StudyDate  # Study Date
        row, column = _only(entry, "111044"), _only(entry, "111043")  # Patient Orientation
        source = pydicom.dcmread(image["source"], stop_before_pixels=True)
        assert [row.TextValue, column.TextValue] == list(source.PatientOrientation)


def _findings(sr: Dataset) -> list[Dataset]:
    summary = sr.ContentSequence[2]
    impressions = _children(summary, "111034")
    assert all(i.RelationshipType == "INFERRED FROM" for i in impressions)
    return [_only(impression, "111059") for impression in impressions]


def test_one_single_image_finding_per_finding(written: tuple[StudyAnalysis, DicomOutputs]) -> None:
    analysis, outputs = written
    assert outputs.sr is not None
    sr = pydicom.dcmread(outputs.sr)
    expected = [(i, f) for i in analysis.result["images"] for f in i["findings"]]
    found = _findings(sr)
    assert len(found) == len(expected) == 8
    threshold = presentation_threshold(analysis.result)
    for item, (image, finding) in zip(found, expected, strict=True):
        kind = SINGLE_IMAGE_FINDING_TYPES[FindingLabel(finding["label"])]
        assert _value(item) == (kind.value, kind.scheme_designator)
        intent = _value(_only(item, "111056"))[0]
        shown = finding["malignancy_probability"] >= threshold
        assert intent == ("111150" if shown else "111152")
        probability = _only(item, "111047").MeasuredValueSequence[0]
        assert float(probability.NumericValue) == pytest.approx(
            100 * finding["malignancy_probability"]
        )
        assert probability.MeasurementUnitsCodeSequence[0].CodeValue == "%"
        certainty = _only(item, "111012").MeasuredValueSequence[0]
        assert float(certainty.NumericValue) == pytest.approx(100 * finding["score"])
        assert _only(item, "111001").TextValue == analysis.result["model"]["name"]
        x1, y1, x2, y2 = finding["box"]
        center, outline = _only(item, "111010"), _only(item, "111041")
        assert center.GraphicType == "POINT" and outline.GraphicType == "POLYLINE"
        assert np.array_equal(
            np.array(center.GraphicData, dtype=np.float32),
            np.array([(x1 + x2) / 2, (y1 + y2) / 2], dtype=np.float32),
        )
        corners = [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]
        assert np.array_equal(
            np.array(outline.GraphicData, dtype=np.float32), np.array(corners, dtype=np.float32)
        )
        for scoord in (center, outline):
            (reference,) = scoord.ContentSequence
            assert reference.RelationshipType == "SELECTED FROM" and "ValueType" not in reference
            target = _resolve(sr, reference.ReferencedContentItemIdentifier)
            uid = target.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            assert uid == image["sop_instance_uid"]
    intents = {_value(_only(item, "111056"))[0] for item in found}
    assert intents == {"111150", "111152"}


def test_summaries_and_study_probability(written: tuple[StudyAnalysis, DicomOutputs]) -> None:
    analysis, outputs = written
    assert outputs.sr is not None
    sr = pydicom.dcmread(outputs.sr)
    summary, detections, analyses = sr.ContentSequence[2:5]
    assert _value(summary) == ("111242", "DCM")  # All algorithms succeeded; with findings
    text = _only(summary, "111033").TextValue  # Impression Description (TID 4002)
    study = analysis.result["malignancy_probability"]
    assert f"study: {100 * study:.0f}%" in text
    assert _value(detections) == ("111222", "DCM") and _value(analyses) == ("111222", "DCM")
    performed = _children(_only(detections, "111063"), "111022")
    kinds = {_value(p) for p in performed}
    assert kinds == {(c.value, c.scheme_designator) for c in SINGLE_IMAGE_FINDING_TYPES.values()}
    library = sr.ContentSequence[1].ContentSequence
    for item in [*performed, *_children(_only(analyses, "111062"), "111004")]:
        references = [c for c in item.ContentSequence if "ReferencedContentItemIdentifier" in c]
        assert [c.RelationshipType for c in references] == ["INFERRED FROM"] * len(library)
        targets = [_resolve(sr, c.ReferencedContentItemIdentifier) for c in references]
        assert targets == list(library)
        assert _only(item, "111003").TextValue == analysis.result["model"]["version"]


def test_reads_back_identically(
    written: tuple[StudyAnalysis, DicomOutputs], tmp_path: Path
) -> None:
    analysis, outputs = written
    assert outputs.sr is not None
    from mammocad.report.dicom.cad_sr import build_cad_sr
    from mammocad.report.dicom.headers import read_header
    from mammocad.report.dicom.uids import OutputUids

    result = analysis.result
    headers: dict[str, Any] = {}
    for image in result["images"]:
        headers[image["sop_instance_uid"]] = read_header(image["source"])
    model = result["model"]
    uids = OutputUids(
        study_instance_uid=result["study_instance_uid"],
        model_name=model["name"],
        model_version=model["version"],
    )
    built = build_cad_sr(result, headers, uids=uids)
    path = tmp_path / "sr.dcm"
    built.save_as(path, enforce_file_format=True)
    read = pydicom.dcmread(path)
    # the same elements and values (JSON normalises str vs DA/TM value classes) ...
    assert json.loads(json.dumps(read.to_json_dict(), default=str)) == json.loads(
        json.dumps(Dataset(built).to_json_dict(), default=str)
    )
    # ... and written again, the same bytes
    again = io.BytesIO()
    read.save_as(again, enforce_file_format=True)
    assert again.getvalue() == path.read_bytes()
    assert read.file_meta.MediaStorageSOPClassUID == MAMMOGRAPHY_CAD_SR_STORAGE
    # deterministic: rebuilt from the same result, the same UIDs (a PACS replaces the object)
    assert read.SOPInstanceUID == pydicom.dcmread(outputs.sr).SOPInstanceUID


def test_no_findings_says_without_findings(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path
) -> None:
    outputs = _write(_analyse(pipeline, study_folder, empty=True), tmp_path)
    assert outputs.sr is not None and not outputs.messages
    sr = pydicom.dcmread(outputs.sr)
    summary = sr.ContentSequence[2]
    assert _value(summary) == ("111241", "DCM")  # All algorithms succeeded; without findings
    assert _children(summary, "111034") == []


@pytest.mark.parametrize("template", list(SrTemplate))
def test_exactly_one_sr_per_study(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path, template: SrTemplate
) -> None:
    outputs = _write(_analyse(pipeline, study_folder), tmp_path, template)
    files = [p for p in tmp_path.rglob("*.dcm") if pydicom.dcmread(p).Modality == "SR"]
    assert files == [tmp_path / "sr.dcm"] == [outputs.sr]
    expected = {
        SrTemplate.TID1500: "1.2.840.10008.5.1.4.1.1.88.33",
        CAD: MAMMOGRAPHY_CAD_SR_STORAGE,
    }
    assert pydicom.dcmread(files[0]).SOPClassUID == expected[template]


def test_images_not_analysed_are_described(
    written: tuple[StudyAnalysis, DicomOutputs], tmp_path: Path
) -> None:
    analysis, _ = written
    result = copy.deepcopy(analysis.result)
    rejected = result["images"][0]
    rejected.update(status="rejected", rejection_code="no_tissue", findings=[])
    rejected["quality"]["issues"] = [{"code": "no_tissue", "severity": "error", "text": "Blank."}]
    outputs = write_dicom_outputs(
        result, folder=tmp_path, picture=lambda key: None, gsps=False, sr_template="mammography-cad"
    )
    assert outputs.sr is not None
    sr = pydicom.dcmread(outputs.sr)
    # the rejected image is in it, for its failed detections (TID 4015 row 3; see
    # test_review_dicom_standards.py)
    assert len(sr.ContentSequence[1].ContentSequence) == 4
    text = _only(sr.ContentSequence[2], "111033").TextValue
    assert f"Image not analysed: {rejected['sop_instance_uid']}" in text and "Blank." in text
    # CID 6047: the detector did not read every view (was "All algorithms succeeded")
    assert _value(sr.ContentSequence[2]) == ("111244", "DCM")
    if shutil.which("dciodvfy"):
        assert _dciodvfy_errors(outputs.sr) == []
    assert len(_findings(sr)) == 6


def _dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def _dsrdump_problems(path: Path) -> list[str]:
    """dcmtk's reader checks PS3.3 Table A.35.5-2 (relationship content constraints)."""
    run = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    known = "W: Check for template constraints not yet supported"  # dcmtk checks no templates
    return [line for line in lines if line[:2] in ("E:", "W:") and line != known]


@pytest.mark.skipif(
    shutil.which("dsrdump") is None,
    reason="dsrdump not on PATH: install Debian's dcmtk (apt-get install dcmtk)",
)
def test_dcmtk_accepts_the_relationships(
    written: tuple[StudyAnalysis, DicomOutputs], tmp_path: Path
) -> None:
    _, outputs = written
    assert outputs.sr is not None
    assert _dsrdump_problems(outputs.sr) == []
    broken = pydicom.dcmread(outputs.sr)
    broken.ContentSequence[1].ContentSequence[0].RelationshipType = "HAS PROPERTIES"
    broken.save_as(tmp_path / "broken.dcm")
    assert _dsrdump_problems(tmp_path / "broken.dcm") != []  # the check does check


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not on PATH: install Debian's dicom3tools (apt-get install dicom3tools)",
)
def test_dciodvfy_finds_no_errors(
    written: tuple[StudyAnalysis, DicomOutputs],
    pipeline: Pipeline,
    study_folder: Path,
    tmp_path: Path,
) -> None:
    _, outputs = written
    empty = _write(_analyse(pipeline, study_folder, empty=True), tmp_path)
    assert outputs.sr is not None and empty.sr is not None
    assert _dciodvfy_errors(outputs.sr) == []
    assert _dciodvfy_errors(empty.sr) == []


def test_run_analyze_writes_the_mammography_cad_sr(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path
) -> None:
    from mammocad.commands.analyze import run_analyze

    KnownDetector.calls = 0
    summary = run_analyze(
        [study_folder], out_dir=tmp_path, pipeline=pipeline, dicom=True,
        sr_template="mammography-cad",
    )  # fmt: skip
    (study,) = summary.studies
    folder = tmp_path / study["study_instance_uid"] / "dicom"
    assert [p.name for p in folder.glob("*.dcm")] == ["sr.dcm"]
    assert pydicom.dcmread(folder / "sr.dcm").SOPClassUID == MAMMOGRAPHY_CAD_SR_STORAGE
    assert len(list((folder / "sc").glob("*.dcm"))) == 4


def test_cli_offers_the_sr_template_option() -> None:
    from typer.testing import CliRunner

    from mammocad.cli import app

    run = CliRunner().invoke(app, ["analyze", "--help"], terminal_width=200)
    assert run.exit_code == 0 and "--sr-template" in run.output and "mammography-cad" in run.output
    wrong = CliRunner().invoke(app, ["analyze", "x", "--out", "y", "--sr-template", "tid9999"])
    assert wrong.exit_code == 2


def test_sources_missing_optional_and_type_2_attributes(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path
) -> None:
    """Real files lack Type 2 attributes and orientation/dates: the SR is still complete."""
    sources = tmp_path / "sources"
    sources.mkdir()
    dropped = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID")
    for path in sorted(study_folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword in (*dropped, "PatientOrientation", "ContentDate", "ContentTime"):
            delattr(ds, keyword)
        ds.save_as(sources / path.name)
    outputs = _write(_analyse(pipeline, sources), tmp_path / "out")
    assert outputs.sr is not None and not outputs.messages
    sr = pydicom.dcmread(outputs.sr)
    assert sr.PatientBirthDate == "" and sr.PatientSex == ""
    for entry in sr.ContentSequence[1].ContentSequence:
        names = [_code(item) for item in entry.ContentSequence]
        assert names == ["111027", "111031", "111060", "111061", "111026", "111066"]
    if shutil.which("dciodvfy"):
        assert _dciodvfy_errors(outputs.sr) == []
