"""Review of the command-line batch path's inputs: outputs among or inside the inputs, file
names that are not UTF-8, linked folders, a file named twice, an image named alone with its
sidecar, a resumed batch whose other inputs changed what a finished study's result says; a
study some of whose images lack a Patient ID, read with ``--group-by patient``; and
``mammocad analyze`` on a disk that is full or a study folder that cannot be replaced."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

import mammocad.commands.analyze as analyze
from mammocad.cli import app
from mammocad.commands.analyze import run_analyze
from mammocad.commands.batch import BatchStorageError, run_batch
from mammocad.errors import MammocadError, RejectionCode
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline
from mammocad.structures import Laterality, ViewPosition
from mammocad.synthetic import write_studies


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One four-view phantom study (IM0001.dcm … IM0004.dcm and its truth.json)."""
    root = tmp_path_factory.mktemp("review-inputs") / "written"
    (folder,) = write_studies(n_studies=1, out_dir=root, seed=31, size="small")
    return folder


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path) -> Pipeline:
    return Pipeline.from_bundle(tiny_bundle, num_threads=1)


def _uid(folder: Path) -> str:
    first = sorted(folder.glob("*.dcm"))[0]
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_batch_archive_named_as_its_input_zip_is_refused_and_the_zip_kept(
    study: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """``mammocad batch studies.zip --out studies.zip``: the archive replaced the input zip,
    whose images were then lost."""
    archive = tmp_path / "studies.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(study.glob("*.dcm")):
            handle.write(path, path.name)
    before = archive.read_bytes()
    with pytest.raises(MammocadError, match="holds the input"):
        run_batch([archive], out=archive, pipeline=pipeline)
    assert archive.read_bytes() == before


def test_a_batch_into_its_input_folder_is_refused_before_anything_is_written(
    study: Path, tiny_bundle: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """An archive (and so its work folder) inside the input folder: the run read its own work
    folder's lock file as an input (a failure in failures.csv), and the next run the archive's
    and the work folder's overlays as images. The command says so, without a traceback."""
    folder = tmp_path / "in"
    shutil.copytree(study, folder)
    before = _files(folder)
    out = folder / "results.zip"
    outcome = CliRunner().invoke(
        app, ["batch", str(folder), "--out", str(out), "--model", str(tiny_bundle)]
    )
    assert outcome.exit_code == 2, outcome.output  # a usage error, before the model loads
    assert "is inside the input folder" in " ".join(outcome.output.split())
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit)
    assert _files(folder) == before
    assert not (folder / "results.zip.work").exists()  # not even an empty work folder
    with pytest.raises(MammocadError, match=r"work folder .* is inside the input folder"):
        run_batch([folder], out=tmp_path / "r.zip", pipeline=pipeline, work_dir=folder / "w")
    assert _files(folder) == before


def test_analyze_into_its_input_folder_is_refused(
    study: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    """``mammocad analyze . --out results``: a second run read the first's overlay pictures
    as images (rejected colour rasters and studies of none)."""
    folder = tmp_path / "in"
    shutil.copytree(study, folder)
    before = _files(folder)
    outcome = CliRunner().invoke(
        app, ["analyze", str(folder), "--out", str(folder / "results"), "--model", str(tiny_bundle)]
    )
    assert outcome.exit_code == 2, outcome.output
    assert "is inside the input folder" in " ".join(outcome.output.split())
    assert _files(folder) == before
    assert not (folder / "results").exists()  # not even an empty folder
    with pytest.raises(ValueError, match="inside the input folder"):
        run_analyze([folder], out_dir=folder / "results", pipeline=None)  # type: ignore[arg-type]


def test_a_file_name_that_is_not_utf8_is_listed_in_the_archive(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A Latin-1 file name on Linux (``caf\\xe9.dcm``) reaches Python as a surrogate, which
    failures.csv could not encode: the batch crashed after every study was analysed."""
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        (Path(os.fsdecode(bytes(folder) + b"/caf\xe9.dcm"))).write_bytes(b"not an image\n")
    except (OSError, UnicodeError):
        pytest.skip("this file system takes UTF-8 file names only")
    out = tmp_path / "results.zip"
    run_batch([folder], out=out, pipeline=pipeline)
    with zipfile.ZipFile(out) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("failures.csv").decode("utf-8"))))
        assert "caf\\udce9.dcm" in archive.read("summary.html").decode("utf-8")
    assert [(Path(r["source"]).name, r["rejection_code"]) for r in rows] == [
        ("caf\\udce9.dcm", RejectionCode.NOT_DICOM.value)
    ]


def test_a_linked_study_folder_is_read(study: Path, tmp_path: Path) -> None:
    """A dataset assembled from symbolic links to study folders read as empty ("no input file
    found"): its studies were lost without a word. A link to a folder above must not loop."""
    folder = tmp_path / "links"
    folder.mkdir()
    try:
        (folder / "study").symlink_to(study, target_is_directory=True)
        (folder / "loop").symlink_to(folder, target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not available here")
    stream = iter_studies([folder])
    (read,) = list(stream)
    assert read.study_instance_uid == _uid(study)
    assert len(read.images) == 4 and all(image.is_processed for image in read.images)
    assert stream.unassigned == []


def test_a_file_named_twice_in_the_inputs_is_read_once(study: Path) -> None:
    """A folder and a file inside it as inputs: the file was rejected as a duplicate of
    itself ("IM0001.dcm repeats SOPInstanceUID … of IM0001.dcm") and the study warned."""
    stream = iter_studies([study, study / "IM0001.dcm"])
    (read,) = list(stream)
    assert len(read.images) == 4
    assert stream.unassigned == []
    assert RejectionCode.DUPLICATE.value not in {message.code for message in read.messages}


def test_a_resumed_study_whose_image_gained_a_copy_is_analysed_again(
    study: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """A copy of one of a finished study's images added to the inputs: a fresh run's
    result.json warns ``duplicate_instance``; the resumed run skipped the study (its own files
    were unchanged) and archived the earlier result without the warning."""
    folder = tmp_path / "in"
    shutil.copytree(study, folder / "a")
    out, work = tmp_path / "results.zip", tmp_path / "work"
    uid = _uid(study)
    assert run_batch([folder], out=out, pipeline=pipeline, work_dir=work).analysed == [uid]

    (folder / "z").mkdir()
    shutil.copy(folder / "a" / "IM0001.dcm", folder / "z" / "IM0001.dcm")  # read after "a"
    again = run_batch([folder], out=out, pipeline=pipeline, work_dir=work)
    assert again.analysed == [uid] and not again.skipped
    result = json.loads(zipfile.ZipFile(out).read(f"{uid}/result.json"))
    codes = {message["code"] for message in result["messages"]}
    assert RejectionCode.DUPLICATE.value in codes


def test_a_png_given_as_a_file_keeps_its_sidecar(study: Path, tmp_path: Path) -> None:
    """``mammocad analyze film.png``: the sidecar film.png.json beside it was read only when
    the folder was the input; named alone, the image lost its side, view and study."""
    pixels = pydicom.dcmread(study / "IM0001.dcm").pixel_array
    image = tmp_path / "film.png"
    assert cv2.imwrite(str(image), pixels.astype(np.uint16))  # a 16-bit grey PNG
    sidecar = {"laterality": "L", "view": "CC", "patient_id": "p1", "study_instance_uid": "1.2.3"}
    (tmp_path / "film.png.json").write_text(json.dumps(sidecar), encoding="utf-8")
    for inputs in ([tmp_path], [image], [image, tmp_path / "film.png.json"]):
        stream = iter_studies(inputs)
        (read,) = list(stream)
        assert stream.unassigned == []
        (png,) = read.images
        assert (read.study_instance_uid, png.laterality, png.view, png.patient_id) == (
            "1.2.3", Laterality.L, ViewPosition.CC, "p1",
        ), inputs  # fmt: skip


def test_a_batch_resumes_after_its_inputs_moved(
    study: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """An interrupted batch whose input folder was then moved (another disk, a renamed
    folder, the same command from another folder): every finished study was analysed again,
    as if its files had changed. It resumes, and summary.json names the files where they are
    now."""
    folder = tmp_path / "in"
    shutil.copytree(study, folder)
    out, work = tmp_path / "results.zip", tmp_path / "work"
    uid = _uid(study)
    assert run_batch([folder], out=out, pipeline=pipeline, work_dir=work).analysed == [uid]

    moved = folder.rename(tmp_path / "moved")
    again = run_batch([moved], out=out, pipeline=pipeline, work_dir=work)
    assert again.skipped == [uid] and not again.analysed
    summary = json.loads(zipfile.ZipFile(out).read("summary.json"))
    sources = sorted(entry["source"] for entry in summary["inputs"])
    assert sources == sorted(str(path) for path in moved.glob("*.dcm"))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two four-view phantom studies (IM0001.dcm … IM0004.dcm each)."""
    root = tmp_path_factory.mktemp("review-grouping") / "written"
    return write_studies(n_studies=2, out_dir=root, seed=47, size="small")


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


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_analyze_on_a_disk_that_fills_up_under_an_overlay_stops(
    earlier: dict[str, Any], pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay written for real onto a full disk (/dev/full: every write fails with
    ENOSPC): OpenCV's imwrite does not check the file's last write and reports success, so the
    study's folder with empty overlays replaced the earlier complete one."""
    write_png = analyze.write_png

    def onto_a_full_disk(path: Path, image: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to("/dev/full")
        write_png(path, image)

    monkeypatch.setattr(analyze, "write_png", onto_a_full_disk)
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
