"""Review of ``mammocad batch`` resuming: a full disk, two runs on one work folder, and inputs
that changed between runs. Each resumed archive must equal an uninterrupted run's."""

from __future__ import annotations

import errno
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from mammocad.commands import analyze as analyze_module
from mammocad.commands.batch import DONE_MARKER, run_batch
from mammocad.errors import MammocadError
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.structures import Study
from mammocad.synthetic import write_studies


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("review-batch") / "in"
    return write_studies(n_studies=2, out_dir=root, seed=21, size="small")


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path) -> Pipeline:
    return Pipeline.from_bundle(tiny_bundle)


def _contents(archive: Path) -> dict[str, object]:
    """Every entry's bytes; result.json without its timings, which differ run to run."""
    entries: dict[str, object] = {}
    with zipfile.ZipFile(archive) as handle:
        for name in handle.namelist():
            entries[name] = handle.read(name)
            if name.endswith("/result.json"):
                entries[name] = {**json.loads(handle.read(name)), "timings_ms": None}
    return entries


def _uid(folder: Path) -> str:
    first = sorted(folder.glob("*.dcm"))[0]
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def _copy_as_new_instance(source: Path, target: Path) -> None:
    dataset = pydicom.dcmread(source)
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(target)


def test_a_full_disk_stops_the_batch_and_the_study_is_retried_on_resume(
    studies: list[Path], pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while a study is written is the work folder's problem, not the study's: it
    must not be recorded as a study mammocad failed on (done, never retried), and the
    resumed archive must equal an uninterrupted run's."""
    inputs = [studies[0].parent]
    reference = tmp_path / "reference.zip"
    run_batch(inputs, out=reference, pipeline=pipeline)

    original = analyze_module.write_study_outputs
    full = {"on": True}

    def write_until_full(analysis: StudyAnalysis, *args: object, **kwargs: object) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(analysis, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("mammocad.commands.batch.write_study_outputs", write_until_full)
    out, work = tmp_path / "results.zip", tmp_path / "work"
    with pytest.raises(MammocadError, match="space"):
        run_batch(inputs, out=out, pipeline=pipeline, work_dir=work)
    assert not list((work / "studies").glob(f"*/{DONE_MARKER}"))
    assert not out.exists()

    full["on"] = False  # space freed: the same command again
    again = run_batch(inputs, out=out, pipeline=pipeline, work_dir=work)
    assert sorted(again.analysed) == sorted(_uid(folder) for folder in studies)
    assert again.summary.internal_errors == 0
    assert _contents(out) == _contents(reference)


def test_a_second_batch_on_the_same_work_folder_is_refused(
    studies: list[Path], pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs on one --out share the work folder: the second clears the first's staging
    (its study then fails, recorded as done) and both write ``<out>.partial``. The second
    run must be refused with a sentence while the first runs, and the first must finish."""
    out = tmp_path / "results.zip"
    original = Pipeline.analyze
    inside, release = threading.Event(), threading.Event()
    first_thread = threading.current_thread()

    def held(self: Pipeline, study: Study) -> StudyAnalysis:
        if threading.current_thread() is not first_thread:
            inside.set()
            release.wait(60)
        return original(self, study)

    monkeypatch.setattr(Pipeline, "analyze", held)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            run_batch([studies[0]], out=out, pipeline=pipeline)
        except BaseException as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(60)
        with pytest.raises(MammocadError, match="another"):
            run_batch([studies[1]], out=out, pipeline=pipeline)
    finally:
        release.set()
        thread.join(120)
    assert not errors
    summary = json.loads(zipfile.ZipFile(out).read("summary.json"))
    assert [s["status"] for s in summary["studies"]] != ["rejected"]
    assert summary["studies"][0]["study_instance_uid"] == _uid(studies[0])
    # the lock goes with the run: the next one is not refused
    assert run_batch([studies[0]], out=out, pipeline=pipeline).skipped == [_uid(studies[0])]


def test_a_study_whose_files_changed_is_analysed_again(
    studies: list[Path], pipeline: Pipeline, tmp_path: Path
) -> None:
    """A study done in an earlier run, one of whose images was then replaced (same UIDs, new
    pixels), or that gained an image: skipping it would archive the old result and leave the
    new image out of every list. The resumed archive must equal a fresh run's."""
    folder = tmp_path / "in" / "study"
    folder.mkdir(parents=True)
    for path in sorted(studies[0].glob("*.dcm")):
        (folder / path.name).write_bytes(path.read_bytes())
    out, work = tmp_path / "results.zip", tmp_path / "work"
    uid = _uid(folder)
    assert run_batch([folder], out=out, pipeline=pipeline, work_dir=work).analysed == [uid]

    changed = sorted(folder.glob("*.dcm"))[0]
    dataset = pydicom.dcmread(changed)
    dataset.decompress()
    dataset.PixelData = np.ascontiguousarray(dataset.pixel_array[::-1]).tobytes()
    dataset.save_as(changed)
    again = run_batch([folder], out=out, pipeline=pipeline, work_dir=work)
    assert again.analysed == [uid] and not again.skipped
    assert _contents(out) == _contents(
        run_batch([folder], out=tmp_path / "a.zip", pipeline=pipeline).archive
    )

    _copy_as_new_instance(changed, folder / "extra.dcm")  # the study gains an image
    again = run_batch([folder], out=out, pipeline=pipeline, work_dir=work)
    assert again.analysed == [uid] and not again.skipped
    sources = {
        Path(entry["source"]).name
        for entry in json.loads(zipfile.ZipFile(out).read("summary.json"))["inputs"]
    }
    assert "extra.dcm" in sources
    assert _contents(out) == _contents(
        run_batch([folder], out=tmp_path / "b.zip", pipeline=pipeline).archive
    )


def test_the_command_says_a_busy_work_folder_without_a_traceback(
    studies: list[Path], tiny_bundle: Path, tmp_path: Path
) -> None:
    """The refusal reaches the user as its sentence (exit 1), not as a traceback."""
    import fcntl

    from typer.testing import CliRunner

    from mammocad.cli import app

    out = tmp_path / "results.zip"
    work = tmp_path / "results.zip.work"
    work.mkdir()
    with (work / "lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        outcome = CliRunner().invoke(
            app, ["batch", str(studies[0]), "--out", str(out), "--model", str(tiny_bundle)]
        )
    assert outcome.exit_code == 1, outcome.output
    assert "another mammocad batch is using the work folder" in " ".join(outcome.output.split())
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit)
    assert not out.exists()
