"""Review of the batch path: a study some of whose images lack a Patient ID, read with
``--group-by patient``, and ``mammocad analyze`` on a disk that is full or a study folder that
cannot be replaced."""

from __future__ import annotations

import errno
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

import mammocad.commands.analyze as analyze
from mammocad.cli import app
from mammocad.commands.analyze import run_analyze
from mammocad.commands.batch import BatchStorageError, run_batch
from mammocad.errors import MammocadError
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline
from mammocad.synthetic import write_studies


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two four-view phantom studies (IM0001.dcm … IM0004.dcm each)."""
    root = tmp_path_factory.mktemp("review-grouping") / "written"
    return write_studies(n_studies=2, out_dir=root, seed=47, size="small")


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path) -> Pipeline:
    return Pipeline.from_bundle(tiny_bundle, num_threads=1)


def _uid(folder: Path) -> str:
    first = sorted(folder.glob("*.dcm"))[0]
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _set_patient_ids(folder: Path, ids: dict[str, str]) -> None:
    for name, patient_id in ids.items():
        ds = pydicom.dcmread(folder / name)
        ds.PatientID = patient_id  # "": Type 2, present but empty (an export that blanks it)
        ds.save_as(folder / name)


@pytest.fixture
def half_anonymous(studies: list[Path], tmp_path: Path) -> Path:
    """The first study with the Patient ID of two of its four images blanked."""
    folder = tmp_path / "in" / "study"
    shutil.copytree(studies[0], folder)
    _set_patient_ids(folder, {"IM0001.dcm": "", "IM0003.dcm": ""})
    return folder


def test_images_without_a_patient_id_join_the_patient_of_their_study(
    half_anonymous: Path,
) -> None:
    """Read by patient, the study fell apart into a ``patient:`` and a ``study:`` group, two
    partial studies under the same Study Instance UID."""
    patient = pydicom.dcmread(half_anonymous / "IM0002.dcm").PatientID
    (study,) = list(iter_studies([half_anonymous], group_by="patient"))
    assert len(study.images) == 4
    assert study.study_instance_uid == _uid(half_anonymous)  # one whole study: its own UID
    assert study.patient_id == patient


def test_a_study_naming_two_patients_is_read_under_distinct_uids(
    studies: list[Path], tmp_path: Path
) -> None:
    """Images of one study with two Patient IDs (and one with none): each group kept the
    study's UID, so their results replaced one another."""
    folder = tmp_path / "study"
    shutil.copytree(studies[0], folder)
    _set_patient_ids(folder, {"IM0001.dcm": "A1", "IM0002.dcm": "A1", "IM0003.dcm": "B2"})
    _set_patient_ids(folder, {"IM0004.dcm": ""})
    read = list(iter_studies([folder], group_by="patient"))
    assert sorted(len(study.images) for study in read) == [1, 1, 2]
    uids = {study.study_instance_uid for study in read}
    assert len(uids) == 3 and _uid(folder) not in uids
    for study in read:
        assert "split_study" in {message.code for message in study.messages}


def test_a_batch_by_patient_archives_such_a_study_once_and_resumes_it(
    half_anonymous: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """The archive held every file of the study twice (zipfile warned of duplicate names),
    the first half's overlays were lost, and every run analysed the study again."""
    uid = _uid(half_anonymous)
    out, work = tmp_path / "results.zip", tmp_path / "work"
    first = run_batch(
        [half_anonymous.parent], out=out, pipeline=pipeline, work_dir=work, group_by="patient"
    )
    assert first.analysed == [uid]
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        summary = json.loads(archive.read("summary.json"))
    assert len(names) == len(set(names))
    assert len([name for name in names if name.startswith(f"{uid}/overlays/")]) == 4
    assert len(summary["studies"]) == 1
    assert all(entry["overlay"] in names for entry in summary["inputs"])
    again = run_batch(
        [half_anonymous.parent], out=out, pipeline=pipeline, work_dir=work, group_by="patient"
    )
    assert again.skipped == [uid] and not again.analysed


def test_analyze_by_patient_writes_such_a_study_once(
    half_anonymous: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """The second half's folder replaced the first's: its overlays were lost, though
    summary.json listed them."""
    out = tmp_path / "out"
    summary = run_analyze(
        [half_anonymous.parent], out_dir=out, pipeline=pipeline, group_by="patient"
    )
    assert len(summary.studies) == 1
    overlays = [entry["overlay"] for entry in summary.inputs]
    assert len(overlays) == 4 and all((out / overlay).is_file() for overlay in overlays)


@pytest.fixture
def earlier(studies: list[Path], pipeline: Pipeline, tmp_path: Path) -> dict[str, Any]:
    """Both studies analysed into ``out``: what a later run must not destroy."""
    inputs = tmp_path / "in"
    for folder in studies:
        shutil.copytree(folder, inputs / folder.name)
    out = tmp_path / "out"
    run_analyze([inputs], out_dir=out, pipeline=pipeline)
    folders = {_uid(folder): out / _uid(folder) for folder in studies}
    return {
        "inputs": inputs,
        "out": out,
        "folders": folders,
        "files": {uid: _files(folder) for uid, folder in folders.items()},
    }


def _kept(earlier: dict[str, Any]) -> bool:
    folders: dict[str, Path] = earlier["folders"]
    return all(_files(folders[uid]) == files for uid, files in earlier["files"].items())


def _full_disk(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_analyze_on_a_full_disk_stops_and_keeps_the_earlier_results(
    earlier: dict[str, Any], pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """result.json could not be written: each study was rejected as ``internal_error``
    ("please report this"), its earlier folder removed and nothing written in its place."""
    write_text = Path.write_text

    def full(path: Path, *args: Any, **kwargs: Any) -> int:
        if path.name == "result.json":
            _full_disk()
        return write_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(MammocadError, match="No space left on device") as stopped:
        run_analyze([earlier["inputs"]], out_dir=earlier["out"], pipeline=pipeline)
    assert "run the same command again" in str(stopped.value)
    assert _kept(earlier)


def test_analyze_on_a_disk_full_while_writing_overlays_keeps_the_earlier_results(
    earlier: dict[str, Any], pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filled up after result.json: every overlay was dropped with a logged error
    and the study's folder without them replaced the earlier complete one, exit 0."""
    monkeypatch.setattr(analyze, "write_png", _full_disk)
    with pytest.raises(MammocadError, match="No space left on device"):
        run_analyze([earlier["inputs"]], out_dir=earlier["out"], pipeline=pipeline)
    assert _kept(earlier)


def test_the_command_says_the_disk_is_full_without_a_traceback(
    earlier: dict[str, Any], tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analyze, "write_png", _full_disk)
    outcome = CliRunner().invoke(
        app,
        ["analyze", str(earlier["inputs"]), "--out", str(earlier["out"]),
         "--model", str(tiny_bundle)],
    )  # fmt: skip
    assert outcome.exit_code == 1, outcome.output
    assert "No space left on device" in outcome.output
    assert isinstance(outcome.exception, SystemExit)  # a sentence, not a traceback
    assert _kept(earlier)


def test_an_earlier_study_folder_that_cannot_be_replaced_is_kept(
    earlier: dict[str, Any], pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study folder that cannot be moved or removed (an overlay open in a viewer on
    Windows, a folder of another user): it was emptied as far as it could be, then the study
    rejected as ``internal_error`` and the rest of its folder removed."""
    locked = next(iter(earlier["folders"].values()))
    replace = Path.replace

    def refuse(path: Path, target: Any) -> Path:
        if locked in (path, Path(target)):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))
        return replace(path, target)

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(MammocadError, match="Permission denied") as stopped:
        run_analyze([earlier["inputs"]], out_dir=earlier["out"], pipeline=pipeline)
    assert str(locked) in str(stopped.value)
    assert _kept(earlier)


def test_a_batch_on_a_disk_full_while_writing_overlays_stops(
    studies: list[Path], pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlays were dropped with a logged error and the study recorded as done without
    them, so a re-run once there was room never wrote them."""
    monkeypatch.setattr(analyze, "write_png", _full_disk)
    out, work = tmp_path / "results.zip", tmp_path / "work"
    with pytest.raises(BatchStorageError, match="run the same command again"):
        run_batch([studies[0]], out=out, pipeline=pipeline, work_dir=work)
    assert not list(work.rglob(".done")) and not out.exists()
    monkeypatch.undo()
    assert run_batch([studies[0]], out=out, pipeline=pipeline, work_dir=work).analysed
    assert len([n for n in zipfile.ZipFile(out).namelist() if "/overlays/" in n]) == 4
