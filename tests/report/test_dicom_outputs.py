"""DICOM outputs (SR TID 1500, Secondary Capture, GSPS) of an analysed phantom study.

The detector is a tiny untrained bundle whose ``predict`` is replaced by known findings, so the
SR content can be checked value by value against ``result.json``. Every object is written,
read back with pydicom and, where ``dciodvfy`` (Debian ``dicom3tools``) is installed, validated.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

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
from mammocad.report.dicom import DicomOutputs, write_dicom_outputs
from mammocad.report.dicom.codes import FINDING_TYPES
from mammocad.report.dicom.headers import completed_copy, read_header, source_of
from mammocad.report.overlay import render_overlay
from mammocad.structures import Finding, FindingLabel, PreprocessedImage
from mammocad.synthetic import write_studies

SIZE = (256, 208)
LABELS = list(FindingLabel)


class KnownDetector(Detector):
    """Finds two lesions per image at fixed ORIGINAL-pixel boxes, cycling through the labels."""

    calls = 0

    def predict(self, preprocessed: Sequence[PreprocessedImage]) -> list[ImagePrediction]:
        predictions = []
        for item in preprocessed:
            key = item.image.key
            findings = []
            for k in range(2):
                label = LABELS[(KnownDetector.calls * 2 + k) % len(LABELS)]
                x, y = 100.25 + 60 * k, 120.5 + 90 * k
                findings.append(
                    Finding(
                        id=f"{key}-f{k + 1}",
                        sop_instance_uid=key,
                        label=label,
                        score=0.9 - 0.1 * k,
                        malignancy_probability=0.734 - 0.3 * k,
                        box=(x, y, x + 50.5, y + 40.25),
                    )
                )
            KnownDetector.calls += 1
            predictions.append(ImagePrediction(image_key=key, findings=findings))
        return predictions


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path) -> Iterator[Pipeline]:
    threads = torch.get_num_threads()
    folder = tiny_bundle
    loaded = Detector.from_bundle(folder, num_threads=1)
    detector = KnownDetector(model=loaded.model, manifest=loaded.manifest)
    yield Pipeline(detector=detector, preprocessing=PreprocessParams(input_size=SIZE))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("studies"), seed=11, size="small"
    )
    return folder


def _analyse(pipeline: Pipeline, inputs: list[Path]) -> StudyAnalysis:
    KnownDetector.calls = 0
    (study,) = list(iter_studies(inputs))
    return pipeline.analyze(study)


def _write(analysis: StudyAnalysis, folder: Path) -> DicomOutputs:
    images = {image.key: image for image in analysis.study.images}

    def picture(key: str) -> np.ndarray | None:
        return render_overlay(images[key], analysis.findings(key), footer="tiny-test 0.0.1")

    return write_dicom_outputs(analysis.result, folder=folder, picture=picture)


@pytest.fixture(scope="module")
def written(
    pipeline: Pipeline, study_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StudyAnalysis, DicomOutputs]:
    analysis = _analyse(pipeline, [study_folder])
    return analysis, _write(analysis, tmp_path_factory.mktemp("dicom"))


def _content(sr: Dataset) -> list[Dataset]:
    """The measurement groups under "Imaging Measurements" (TID 1500 row 6)."""
    (measurements,) = [
        item for item in sr.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "126010"
    ]
    return list(measurements.ContentSequence)


def _items(group: Dataset, code: str) -> list[Dataset]:
    return [
        item for item in group.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == code
    ]


def test_sr_has_one_group_per_finding_matching_result(
    written: tuple[StudyAnalysis, DicomOutputs],
) -> None:
    analysis, outputs = written
    assert outputs.sr is not None and not outputs.messages
    sr = pydicom.dcmread(outputs.sr)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.StudyInstanceUID == analysis.result["study_instance_uid"]
    expected = {
        finding["id"]: (image, finding)
        for image in analysis.result["images"]
        for finding in image["findings"]
    }
    groups = {}
    for group in _content(sr):
        (tracking,) = _items(group, "112039")  # Tracking Identifier
        groups[tracking.TextValue] = group
    assert set(expected) <= set(groups)
    assert {"study", "breast-L", "breast-R"} <= set(groups)
    for finding_id, (image, finding) in expected.items():
        group = groups[finding_id]
        (kind,) = _items(group, "121071")  # Finding
        code = kind.ConceptCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == (
            FINDING_TYPES[FindingLabel(finding["label"])].value,
            FINDING_TYPES[FindingLabel(finding["label"])].scheme_designator,
        )
        (region,) = _items(group, "111030")  # Image Region
        assert region.GraphicType == "POLYLINE"
        points = np.array(region.GraphicData, dtype=np.float32).reshape(-1, 2)
        x1, y1, x2, y2 = finding["box"]
        corners = [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]
        # Graphic Data is FL: equal to result.json's box up to float32 rounding
        assert np.array_equal(points, np.array(corners, dtype=np.float32))
        reference = region.ContentSequence[0].ReferencedSOPSequence[0]
        assert reference.ReferencedSOPInstanceUID == image["sop_instance_uid"]
        (probability,) = _items(group, "111047")
        value = probability.MeasuredValueSequence[0]
        assert float(value.NumericValue) == finding["malignancy_probability"]
        assert value.MeasurementUnitsCodeSequence[0].CodeValue == "1"
        (site,) = _items(group, "363698007")  # Finding Site
        side = site.ContentSequence[0].ConceptCodeSequence[0].CodeValue
        assert side == {"L": "7771000", "R": "24028007"}[image["laterality"]]
    (study_probability,) = _items(groups["study"], "111047")
    assert (
        float(study_probability.MeasuredValueSequence[0].NumericValue)
        == (analysis.result["malignancy_probability"])
    )


def test_sr_references_every_source_and_names_the_device(
    written: tuple[StudyAnalysis, DicomOutputs],
) -> None:
    analysis, outputs = written
    assert outputs.sr is not None
    sr = pydicom.dcmread(outputs.sr)
    evidence = {
        instance.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
    assert evidence == {image["sop_instance_uid"] for image in analysis.result["images"]}
    names = [item.get("TextValue") for item in sr.ContentSequence]
    assert "tiny-test" in names  # Device Observer Name


def test_secondary_captures_are_rgb_burnt_in_and_reference_their_source(
    written: tuple[StudyAnalysis, DicomOutputs],
) -> None:
    analysis, outputs = written
    images = {image["sop_instance_uid"]: image for image in analysis.result["images"]}
    assert set(outputs.sc) == set(images)
    series = set()
    for key, path in outputs.sc.items():
        sc = pydicom.dcmread(path)
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert path.name == f"{sc.SOPInstanceUID}.dcm"
        assert (sc.SamplesPerPixel, sc.PhotometricInterpretation, sc.BitsAllocated) == (
            3,
            "RGB",
            8,
        )
        assert (sc.Rows, sc.Columns) == (images[key]["rows"], images[key]["columns"])
        assert sc.BurnedInAnnotation == "YES"
        assert sc.StudyInstanceUID == analysis.result["study_instance_uid"]
        assert sc.SeriesInstanceUID != images[key]["series_instance_uid"]
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == key
        assert sc.ReferencedImageSequence[0].ReferencedSOPInstanceUID == key
        assert sc.pixel_array.shape == (sc.Rows, sc.Columns, 3)
        series.add(sc.SeriesInstanceUID)
    assert len(series) == 1


def test_presentation_states_carry_the_boxes(written: tuple[StudyAnalysis, DicomOutputs]) -> None:
    analysis, outputs = written
    images = {image["sop_instance_uid"]: image for image in analysis.result["images"]}
    assert set(outputs.gsps) == set(images)
    for key, path in outputs.gsps.items():
        pr = pydicom.dcmread(path)
        assert pr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
        (annotation,) = pr.GraphicAnnotationSequence
        assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == key
        boxes = [
            np.array(item.GraphicData, dtype=np.float32).reshape(-1, 2)[[0, 2]].ravel()
            for item in annotation.GraphicObjectSequence
        ]
        expected = [finding["box"] for finding in images[key]["findings"]]
        assert np.array_equal(np.array(boxes), np.array(expected, dtype=np.float32))


def test_rerun_gives_the_same_uids(
    pipeline: Pipeline,
    study_folder: Path,
    written: tuple[StudyAnalysis, DicomOutputs],
    tmp_path: Path,
) -> None:
    _, first = written
    again = _write(_analyse(pipeline, [study_folder]), tmp_path)
    assert again.sr is not None and first.sr is not None
    uids = [
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in (first.sr, again.sr)
    ]
    assert uids[0] == uids[1]
    assert sorted(p.name for p in again.sc.values()) == sorted(p.name for p in first.sc.values())
    assert sorted(p.name for p in again.gsps.values()) == sorted(
        p.name for p in first.gsps.values()
    )


def test_sources_in_a_zip_and_missing_type_2_attributes(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path
) -> None:
    """Real files lack Type 2 attributes; the outputs fill them, the sources stay untouched."""
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(study_folder.glob("*.dcm")):
            ds = pydicom.dcmread(path)
            for keyword in ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID"):
                delattr(ds, keyword)
            ds.save_as(tmp_path / path.name)
            out.write(tmp_path / path.name, f"in zip/{path.name}")
    before = archive.read_bytes()
    analysis = _analyse(pipeline, [archive])
    outputs = _write(analysis, tmp_path / "out")
    assert outputs.sr is not None and not outputs.messages
    assert len(outputs.sc) == len(analysis.result["images"])
    sr = pydicom.dcmread(outputs.sr)
    assert sr.PatientBirthDate == "" and sr.PatientSex == ""
    assert archive.read_bytes() == before


def test_header_helpers(study_folder: Path, tmp_path: Path) -> None:
    path = sorted(study_folder.glob("*.dcm"))[0]
    header = read_header(str(path))
    assert header is not None and "PixelData" not in header
    del header.PatientSex
    completed = completed_copy(header)
    assert "PatientSex" in completed and not completed.PatientSex
    assert "PatientSex" not in header
    png = tmp_path / "x!y.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert read_header(str(png)) is None
    assert source_of(f"{png}!member.dcm").member == "member.dcm"
    with pytest.raises(FileNotFoundError):
        source_of(str(tmp_path / "nothing.zip!a.dcm"))


def _dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not on PATH: install Debian's dicom3tools (apt-get install dicom3tools)",
)
def test_dciodvfy_finds_no_errors(written: tuple[StudyAnalysis, DicomOutputs]) -> None:
    _, outputs = written
    errors = {str(path): _dciodvfy_errors(path) for path in outputs.paths()}
    assert len(errors) == 1 + 2 * 4
    assert {path: lines for path, lines in errors.items() if lines} == {}


def test_run_analyze_with_dicom_writes_the_study_folder(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path
) -> None:
    from mammocad.commands.analyze import run_analyze

    KnownDetector.calls = 0
    summary = run_analyze([study_folder], out_dir=tmp_path, pipeline=pipeline, dicom=True)
    (study,) = summary.studies
    folder = tmp_path / study["study_instance_uid"] / "dicom"
    assert study["dicom"] == f"{study['study_instance_uid']}/dicom"
    assert (folder / "sr.dcm").is_file()
    assert len(list((folder / "sc").glob("*.dcm"))) == 4
    assert len(list((folder / "gsps").glob("*.dcm"))) == 4
    assert study["dicom_issues"] == []


def test_summary_lists_the_dicom_objects_that_could_not_be_written(
    pipeline: Pipeline, study_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object that fails is logged and the others are written; summary.json says which,
    so a batch does not look complete when an image has no presentation state."""
    from mammocad.commands.analyze import run_analyze
    from mammocad.report.dicom import writer

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("could not convert string to float: 'abc'")

    monkeypatch.setattr(writer, "build_gsps", broken)
    summary = run_analyze([study_folder], out_dir=tmp_path, pipeline=pipeline, dicom=True)
    (study,) = summary.studies
    issues = study["dicom_issues"]
    assert [issue["code"] for issue in issues] == ["dicom_output_failed"] * 4
    assert {issue["sop_instance_uid"] for issue in issues} == {
        entry["key"] for entry in summary.inputs
    }
    assert all("could not convert" in str(issue["text"]) for issue in issues)
    folder = tmp_path / study["study_instance_uid"] / "dicom"
    assert (folder / "sr.dcm").is_file() and len(list((folder / "sc").glob("*.dcm"))) == 4


def test_rejected_and_raster_images_are_listed_not_drawn(
    written: tuple[StudyAnalysis, DicomOutputs], tmp_path: Path
) -> None:
    analysis, _ = written
    result = copy.deepcopy(analysis.result)
    rejected, raster = result["images"][0], result["images"][1]
    rejected.update(status="rejected", rejection_code="no_tissue", findings=[])
    rejected["quality"]["issues"] = [{"code": "no_tissue", "severity": "error", "text": "Blank."}]
    png = tmp_path / "raster.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    raster["source"] = str(png)
    outputs = write_dicom_outputs(result, folder=tmp_path / "out", picture=lambda key: None)
    assert [m.code for m in outputs.messages] == ["no_dicom_header"]
    assert outputs.sc == {} and len(outputs.gsps) == 2
    assert outputs.sr is not None
    sr = pydicom.dcmread(outputs.sr)
    texts = [
        item.TextValue
        for group in _content(sr)
        for item in group.ContentSequence
        if item.ValueType == "TEXT" and item.TextValue.startswith("Image not processed")
    ]
    assert len(texts) == 2
    assert any(rejected["sop_instance_uid"] in t and "no_tissue: Blank." in t for t in texts)
    assert any(raster["sop_instance_uid"] in t and "raster" in t for t in texts)


def test_series_level_laterality_agrees_within_each_series(
    written: tuple[StudyAnalysis, DicomOutputs],
) -> None:
    """Laterality (0020,0060) is a Series attribute (General Series, PS3.3 C.7.3.1): all the
    instances of a series share it. The SCs and GSPSs of a study's two breasts were put in
    one series each with R on some instances and L on others (dicom3tools' ``dcentvfy``:
    "String attribute has different value - Element=<Laterality> IE=<Series>"). The breast
    of each object must still be said: the SC's Image Laterality (General Image, C.7.6.1),
    the GSPS's series (one per breast, as the GSPS has no image-level laterality)."""
    analysis, outputs = written
    images = {image["sop_instance_uid"]: image for image in analysis.result["images"]}
    assert {image["laterality"] for image in images.values()} == {"L", "R"}
    for kind in (outputs.sc, outputs.gsps):
        by_series: dict[str, set[str]] = {}
        for key, path in kind.items():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            by_series.setdefault(str(ds.SeriesInstanceUID), set()).add(str(ds.get("Laterality")))
            side = ds.get("ImageLaterality") or ds.get("Laterality")
            assert side == images[key]["laterality"]
        assert all(len(values) == 1 for values in by_series.values()), by_series
    if shutil.which("dcentvfy") is not None:
        paths = [str(p) for p in (*outputs.sc.values(), *outputs.gsps.values())]
        run = subprocess.run(["dcentvfy", *paths], capture_output=True, text=True, timeout=120)
        errors = [line for line in (run.stdout + run.stderr).splitlines() if "Error" in line]
        assert errors == []
