"""``mammocad batch``: the archive's content, its failures, and resuming after an interruption.

Phantom studies plus three broken inputs (random bytes, a truncated DICOM, a CT image) through
an untrained tiny bundle: its detections are arbitrary, which is enough for the contract.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    MammographyCADSRStorage,
    generate_uid,
)
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.commands.batch import DONE_MARKER, run_batch
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.structures import Study
from mammocad.synthetic import write_studies


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    folder: Path
    study_uids: frozenset[str]
    broken: dict[str, str]  # file name → expected rejection code


def _patient_of(folder: Path, study_uid: str) -> str:
    for path in sorted(folder.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue  # the broken inputs
        if ds.get("StudyInstanceUID") == study_uid:
            return str(ds.PatientID)
    raise AssertionError(f"no file of study {study_uid}")


def _study_uid(folder: Path) -> str:
    first = next(folder.glob("*.dcm"))
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def _copy_as(source: Path, target: Path, **tags: str) -> None:
    dataset = pydicom.dcmread(source)
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    if "SOPClassUID" in tags:
        dataset.file_meta.MediaStorageSOPClassUID = tags["SOPClassUID"]
    for name, value in tags.items():
        setattr(dataset, name, value)
    dataset.save_as(target)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("batch-inputs") / "studies"
    folders = write_studies(n_studies=4, out_dir=root, seed=11, size="small")
    rng = np.random.default_rng(1)
    (root / "random.dcm").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    source = next(folders[0].glob("*.dcm"))
    _copy_as(source, root / "truncated.dcm")
    data = (root / "truncated.dcm").read_bytes()
    (root / "truncated.dcm").write_bytes(data[: len(data) // 2])
    _copy_as(source, root / "ct.dcm", Modality="CT", SOPClassUID=CTImageStorage)
    return Inputs(
        folder=root,
        study_uids=frozenset(_study_uid(folder) for folder in folders),
        broken={
            "random.dcm": "not_dicom",
            "truncated.dcm": "truncated_pixel_data",
            "ct.dcm": "not_mammography",
        },
    )


def _csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"))))


def _check_archive(path: Path, uids: frozenset[str]) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    assert names == sorted(names[:4]) + sorted(names[4:])  # deterministic order
    assert {"predictions.csv", "failures.csv", "summary.html", "summary.json"} <= set(names)
    assert not [name for name in names if name.endswith((DONE_MARKER, "study.json"))]
    rows = _csv(archive, "predictions.csv")
    html = archive.read("summary.html").decode("utf-8")
    for uid in uids:
        assert f"{uid}/result.json" in names
        overlays = [n for n in names if n.startswith(f"{uid}/overlays/") and n.endswith(".png")]
        assert len(overlays) == 4
        assert all(f'href="{name}"' in html for name in overlays)
        levels = sorted(
            (r["level"], r["laterality"]) for r in rows if r["study_instance_uid"] == uid
        )
        assert levels == [("breast", "L"), ("breast", "R"), ("study", "")]
        assert len({r["patient_id"] for r in rows if r["study_instance_uid"] == uid}) == 1
    assert {row["study_instance_uid"] for row in rows} == uids
    assert all(row["patient_id"] for row in rows)
    return archive


def test_archive_is_complete_and_lists_broken_inputs(
    inputs: Inputs, tiny_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.zip"
    arguments = ["batch", str(inputs.folder), "--out", str(out), "--model", str(tiny_bundle)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    archive = _check_archive(out, inputs.study_uids)
    failures = {Path(row["source"]).name: row for row in _csv(archive, "failures.csv")}
    for name, code in inputs.broken.items():
        assert name in failures, {n: row["rejection_code"] for n, row in failures.items()}
        assert failures[name]["rejection_code"] == code and failures[name]["text"]
        assert name in archive.read("summary.html").decode("utf-8")
    assert (tmp_path / "results.zip.work" / "studies").is_dir()
    assert not (tmp_path / "results.zip.partial").exists()
    # the evaluation commands read the archive as it is
    arguments = ["eval", "findings", "--results", str(out), "--phantoms", str(inputs.folder)]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "f"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    # 16 phantom views, and the truncated and the CT copy of one, rejected in its study
    assert "18 images (2 rejected" in " ".join(result.output.split())


def test_rerun_resumes_without_recomputing(
    inputs: Inputs, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline.from_bundle(tiny_bundle)
    analysed: list[str] = []
    original = Pipeline.analyze

    def interrupt_third(self: Pipeline, study: Study) -> StudyAnalysis:
        if len(analysed) == 2:
            raise KeyboardInterrupt
        analysed.append(study.study_instance_uid)
        return original(self, study)

    out, work = tmp_path / "results.zip", tmp_path / "work"
    monkeypatch.setattr(Pipeline, "analyze", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        run_batch([inputs.folder], out=out, pipeline=pipeline, work_dir=work)
    assert not out.exists()
    first = list(analysed)
    done = {p.parent.name for p in (work / "studies").glob(f"*/{DONE_MARKER}")}
    assert done == set(first)
    mtimes = {uid: (work / "studies" / uid / "result.json").stat().st_mtime_ns for uid in first}

    def counting(self: Pipeline, study: Study) -> StudyAnalysis:
        analysed.append(study.study_instance_uid)
        return original(self, study)

    monkeypatch.setattr(Pipeline, "analyze", counting)
    summary = run_batch([inputs.folder], out=out, pipeline=pipeline, work_dir=work)
    assert sorted(summary.skipped) == sorted(first)
    assert set(analysed[2:]) == inputs.study_uids - set(first) and len(analysed) == 4
    for uid, mtime in mtimes.items():
        assert (work / "studies" / uid / "result.json").stat().st_mtime_ns == mtime
    _check_archive(out, inputs.study_uids)


def test_failed_study_is_listed_and_batch_goes_on(
    inputs: Inputs, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline.from_bundle(tiny_bundle)
    original = Pipeline.analyze
    victim = min(inputs.study_uids)

    def failing(self: Pipeline, study: Study) -> StudyAnalysis:
        if study.study_instance_uid == victim:
            raise RuntimeError("injected")
        return original(self, study)

    monkeypatch.setattr(Pipeline, "analyze", failing)
    summary = run_batch([inputs.folder], out=tmp_path / "r.zip", pipeline=pipeline)
    assert summary.summary.internal_errors == 4
    archive = zipfile.ZipFile(tmp_path / "r.zip")
    assert f"{victim}/result.json" not in archive.namelist()
    rows = [r for r in _csv(archive, "predictions.csv") if r["study_instance_uid"] == victim]
    assert rows == [
        {
            "study_instance_uid": victim,
            "level": "study",
            "laterality": "",
            "malignancy_probability": "",
            "suspicion": "",
            "status": "rejected",
            "patient_id": _patient_of(inputs.folder, victim),  # to join labels kept per patient
        }
    ]
    codes = {r["rejection_code"] for r in _csv(archive, "failures.csv")}
    assert "internal_error" in codes
    assert len(summary.analysed) == 4


@pytest.mark.slow
def test_hundred_studies(tiny_bundle: Path, tmp_path: Path) -> None:
    folders = write_studies(n_studies=100, out_dir=tmp_path / "in", seed=3, size="small")
    out = tmp_path / "results.zip"
    arguments = ["batch", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_bundle)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    _check_archive(out, frozenset(_study_uid(folder) for folder in folders))


def test_dicom_setting_change_recomputes_and_archives_dicom(
    inputs: Inputs, tiny_bundle: Path, tmp_path: Path
) -> None:
    one = next(p for p in inputs.folder.iterdir() if p.is_dir())
    uid = _study_uid(one)
    pipeline = Pipeline.from_bundle(tiny_bundle)
    out, work = tmp_path / "results.zip", tmp_path / "work"
    assert run_batch([one], out=out, pipeline=pipeline, work_dir=work).analysed == [uid]
    again = run_batch([one], out=out, pipeline=pipeline, work_dir=work, dicom=True)
    assert again.analysed == [uid] and not again.skipped
    archive = zipfile.ZipFile(out)
    dicom_names = [n for n in archive.namelist() if n.startswith(f"{uid}/dicom/")]
    assert f"{uid}/dicom/sr.dcm" in dicom_names
    for name in dicom_names:
        dataset = pydicom.dcmread(io.BytesIO(archive.read(name)))
        assert dataset.StudyInstanceUID == uid


def test_sr_template_is_written_and_part_of_the_resume_key(
    inputs: Inputs, tiny_bundle: Path, tmp_path: Path
) -> None:
    """``--sr-template mammography-cad --dicom`` archives a Mammography CAD SR (TID 4000); a
    re-run with the other template re-analyses, one with the same template skips."""
    one = next(p for p in inputs.folder.iterdir() if p.is_dir())
    uid = _study_uid(one)
    out, work = tmp_path / "results.zip", tmp_path / "work"
    arguments = ["batch", str(one), "--out", str(out), "--model", str(tiny_bundle), "--dicom"]
    arguments += ["--work-dir", str(work)]
    result = CliRunner().invoke(app, [*arguments, "--sr-template", "mammography-cad"])
    assert result.exit_code == 0, result.output
    sr = pydicom.dcmread(io.BytesIO(zipfile.ZipFile(out).read(f"{uid}/dicom/sr.dcm")))
    assert sr.SOPClassUID == MammographyCADSRStorage
    assert sr.StudyInstanceUID == uid

    pipeline = Pipeline.from_bundle(tiny_bundle)
    same = run_batch(
        [one], out=out, pipeline=pipeline, work_dir=work, dicom=True, sr_template="mammography-cad"
    )
    assert same.skipped == [uid] and not same.analysed
    other = run_batch([one], out=out, pipeline=pipeline, work_dir=work, dicom=True)
    assert other.analysed == [uid] and not other.skipped
    sr = pydicom.dcmread(io.BytesIO(zipfile.ZipFile(out).read(f"{uid}/dicom/sr.dcm")))
    assert sr.SOPClassUID == ComprehensiveSRStorage


def test_group_by_patient_archives_views_stored_as_studies_as_one_study(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    [study] = write_studies(n_studies=1, out_dir=tmp_path / "written", seed=12, size="small")
    views = tmp_path / "views"
    views.mkdir()
    for k, path in enumerate(sorted(study.glob("*.dcm"))):  # each view its own study (CBIS-DDSM)
        _copy_as(path, views / path.name, StudyInstanceUID=generate_uid(entropy_srcs=[str(k)]))
    apart = CliRunner().invoke(
        app,
        ["batch", str(views), "--out", str(tmp_path / "apart.zip"), "--model", str(tiny_bundle)],
    )
    assert apart.exit_code == 0, apart.output
    assert "4 studies of fewer than four images" in " ".join(apart.output.split())
    out = tmp_path / "results.zip"
    arguments = ["batch", str(views), "--out", str(out), "--model", str(tiny_bundle)]
    result = CliRunner().invoke(app, [*arguments, "--group-by", "patient"])
    assert result.exit_code == 0, result.output
    assert "--group-by patient reads them" not in result.output
    rows = _csv(zipfile.ZipFile(out), "predictions.csv")
    merged = {row["study_instance_uid"] for row in rows}
    assert len(merged) == 1
    _check_archive(out, frozenset(merged))
