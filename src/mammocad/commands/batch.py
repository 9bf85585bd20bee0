"""``mammocad batch``: a folder of studies → one zip of predictions and pictures, resumable.

Work folder (default ``<out>.work/`` beside the zip)::

    WORK/staging/<StudyInstanceUID>/   a study being written (cleared at the start of a run)
    WORK/studies/<StudyInstanceUID>/   a finished study: what ``mammocad analyze`` writes for
                                       it, plus ``study.json`` (its summary entries and
                                       prediction rows) and ``.done``, written last

A study is moved from ``staging/`` to ``studies/`` in one rename and only then marked done, so
an interrupted run leaves no half-written study that a re-run would take as finished. A re-run
skips every study marked done with the same model weights, ``--dicom`` and ``--sr-template``
settings and the same input files, then builds
the archive (docs/batch.md has its layout) from the work folder alone. ``WORK/lock`` is held
for the whole run: a second run on the same work folder is refused.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from mammocad.commands.analyze import (
    AnalyzeSummary,
    check_grouping,
    check_output_apart,
    input_entry,
    record_failed_study,
    release_pixels,
    safe_name,
    write_study_outputs,
)
from mammocad.commands.batch_archive import write_archive
from mammocad.commands.progress import batch_progress
from mammocad.errors import MammocadError
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.risk.aggregate import SuspicionThresholds
from mammocad.structures import Image, Study

try:  # POSIX: the work folder's lock; elsewhere runs are not guarded against each other
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

DONE_MARKER = ".done"
STUDY_RECORD = "study.json"
LOCK_FILE = "lock"
#: write failures of the disk, not of a study: they stop the batch, which the same command
#: resumes once there is room (recorded as a study failure, the study would never be redone)
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
#: the standard views whose presence makes a breast "complete" (as the study status does)
_STANDARD_VIEWS = frozenset({"CC", "MLO"})


class BatchStorageError(MammocadError):
    """The work folder or the archive cannot be written (disk full, read-only), or not
    there: among or inside the inputs."""


class BatchBusyError(MammocadError):
    """Another ``mammocad batch`` is using the same work folder."""


def default_work_dir(out: Path) -> Path:
    """``<out>.work`` beside the archive, e.g. ``results.zip.work``."""
    return out.with_name(out.name + ".work")


@dataclass(slots=True)
class BatchSummary:
    """What one ``mammocad batch`` run did; ``summary`` covers every study of the inputs."""

    archive: Path
    work_dir: Path
    summary: AnalyzeSummary
    analysed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [entry for entry in self.summary.inputs if entry["status"] == "rejected"]


def prediction_rows(
    result: dict[str, Any], thresholds: SuspicionThresholds
) -> list[dict[str, Any]]:
    """``predictions.csv`` rows of one result: the study row, then one row per breast.

    A breast's suspicion applies the study's operating thresholds to the breast probability;
    its status is ``complete`` with both CC and MLO processed, ``partial`` with fewer,
    ``rejected`` with none.
    """
    uid, patient = result["study_instance_uid"], result.get("x_patient_id")
    rows = [
        {
            "study_instance_uid": uid,
            "level": "study",
            "laterality": "",
            "malignancy_probability": result["malignancy_probability"],
            "suspicion": result["suspicion"],
            "status": result["status"],
            "patient_id": patient,
        }
    ]
    for breast in sorted(result["breasts"], key=lambda b: b["laterality"]):
        views = set(breast["views"])
        status = "complete" if views >= _STANDARD_VIEWS else "partial" if views else "rejected"
        probability = breast["malignancy_probability"]
        suspicion = thresholds.category(probability)
        rows.append(
            {
                "study_instance_uid": uid,
                "level": "breast",
                "laterality": breast["laterality"],
                "malignancy_probability": probability,
                "suspicion": suspicion.value if suspicion else None,
                "status": status,
                "patient_id": patient,
            }
        )
    return rows


def _failed_rows(uid: str, patient_id: str | None) -> list[dict[str, Any]]:
    return [
        {
            "study_instance_uid": uid,
            "level": "study",
            "laterality": "",
            "malignancy_probability": None,
            "suspicion": None,
            "status": "rejected",
            "patient_id": patient_id,
        }
    ]


class WorkDir:
    """The resumable state of a batch: finished studies, each in its own folder."""

    def __init__(self, root: Path, *, settings: dict[str, Any]) -> None:
        self.root = root
        self.settings = settings
        self.studies = root / "studies"
        self.staging = root / "staging"

    def prepare(self) -> None:
        """Create the folders; drop whatever an interrupted run left half-written."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.studies.mkdir(parents=True, exist_ok=True)

    def folder(self, uid: str) -> Path:
        return self.studies / safe_name(uid)

    def record(self, uid: str, *, inputs: str) -> dict[str, Any] | None:
        """The study's record when it is done with the current settings from the same input
        files (``inputs``: :func:`inputs_digest`), else ``None``."""
        folder = self.folder(uid)
        if not (folder / DONE_MARKER).is_file():
            return None
        try:
            record: dict[str, Any] = json.loads((folder / STUDY_RECORD).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("settings") != self.settings or record.get("inputs_sha256") != inputs:
            return None
        return record

    def stage(self, uid: str) -> Path:
        """An empty staging folder for ``uid`` (what ``write_study_outputs`` writes into)."""
        folder = self.staging / safe_name(uid)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def commit(self, staged: Path, record: dict[str, Any]) -> None:
        """Record, move into ``studies/`` in one rename, then mark done (last)."""
        record = {"settings": self.settings, **record}
        (staged / STUDY_RECORD).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
        final = self.studies / staged.name
        shutil.rmtree(final, ignore_errors=True)  # a stale or other-settings copy
        staged.replace(final)
        (final / DONE_MARKER).write_text("", "utf-8")


def inputs_digest(study: Study) -> str:
    """sha256 of what the study's result is made from: each image's tags, status and pixels,
    and the study's messages. A study done before whose files changed (an image added,
    removed or replaced) is analysed again instead of archiving its old result without the
    new image; so is one whose messages depend on other inputs that changed (a copy of one of
    its images added, ``duplicate_instance``; another study of its patient). Where the files
    are is left out: inputs moved (or named from another folder) resume, their summary
    entries brought up to date (:func:`_current_sources`)."""
    digest = hashlib.sha256(str((study.patient_id, study.accession_number)).encode("utf-8"))
    messages = [message.to_dict() for message in study.messages]
    digest.update(json.dumps(messages).encode("utf-8"))
    for image in sorted(study.images, key=lambda item: item.key):
        tags = {
            f.name: getattr(image, f.name)
            for f in dataclasses.fields(Image)
            if f.name not in ("pixels", "padding_mask", "source")
        }
        digest.update(json.dumps(tags, default=str, sort_keys=True).encode("utf-8"))
        for array in (image.pixels, image.padding_mask):
            if array is not None:
                digest.update(str((array.dtype, array.shape)).encode("utf-8"))
                digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


@contextmanager
def _stop_when_full(where: Path) -> Iterator[None]:
    """A full or read-only disk under ``where`` stops the batch with what to do."""
    try:
        yield
    except OSError as error:
        if error.errno not in _NO_ROOM:
            raise
        raise BatchStorageError(
            f"could not write to {where} ({error.strerror or error}): free some space there "
            "(or name another --out / --work-dir) and run the same command again; finished "
            "studies are kept"
        ) from error


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold ``root/lock`` for a run: a second run would clear this one's staging folder
    (its study then fails for good) and write the same ``<out>.partial``."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BatchBusyError(
                    f"another mammocad batch is using the work folder {root} (the same --out "
                    "or --work-dir): wait for it to end, or give this run another --out"
                ) from None
        yield


def _analyse_one(
    study: Study, *, pipeline: Pipeline, work: WorkDir, dicom: bool, sr_template: str
) -> dict[str, Any]:
    """Analyse and write one study into staging; return its record (never raises Exception)."""
    staged = work.stage(study.study_instance_uid)
    summary = AnalyzeSummary(model=pipeline.model_info.to_dict())
    try:
        analysis: StudyAnalysis = pipeline.analyze(study)
        write_study_outputs(analysis, work.staging, summary, dicom=dicom, sr_template=sr_template)
        rows = prediction_rows(analysis.result, pipeline.thresholds)
    except Exception as error:  # a bug must cost one study, not the batch
        if isinstance(error, OSError) and error.errno in _NO_ROOM:
            raise  # the disk's, not the study's: stop, and redo the study on resume
        summary = AnalyzeSummary(model=summary.model)
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        record_failed_study(study, error, summary)
        rows = _failed_rows(study.study_instance_uid, study.patient_id)
    return {
        "folder": staged,
        "study": summary.studies[0],
        "inputs": summary.inputs,
        "predictions": rows,
    }


def _current_sources(record: dict[str, Any], study: Study) -> None:
    """A finished study's summary entries name its files where they are now (its digest
    leaves the paths out, so a study whose files moved is not analysed again)."""
    sources = {image.key: image.source for image in study.images}
    for entry in record["inputs"]:
        entry["source"] = sources.get(entry["key"], entry["source"])


def _records(
    inputs: Sequence[Path],
    *,
    pipeline: Pipeline,
    work: WorkDir,
    dicom: bool,
    sr_template: str,
    console: Console | None,
    batch: BatchSummary,
    group_by: str,
) -> Iterator[dict[str, Any]]:
    """Each study's record, from the work folder when done, else analysed now."""
    stream = iter_studies(list(inputs), group_by=group_by)
    with batch_progress(console) as progress:
        task = progress.add_task("batch", total=len(stream))
        for study in stream:
            uid = study.study_instance_uid
            batch.summary.count_split_patient(study)
            digest = inputs_digest(study)
            record = work.record(uid, inputs=digest)
            if record is None:
                fresh = _analyse_one(
                    study, pipeline=pipeline, work=work, dicom=dicom, sr_template=sr_template
                )
                staged = fresh.pop("folder")
                work.commit(staged, {**fresh, "inputs_sha256": digest})
                record = fresh
                batch.analysed.append(uid)
            else:
                _current_sources(record, study)
                batch.skipped.append(uid)
            release_pixels(study)
            progress.advance(task)
            yield record
    for image in stream.unassigned:
        yield {"unassigned": input_entry(image, result=None, overlay=None)}


def run_batch(
    inputs: Sequence[Path],
    *,
    out: Path,
    pipeline: Pipeline,
    work_dir: Path | None = None,
    dicom: bool = False,
    sr_template: str = "tid1500",
    console: Console | None = None,
    group_by: str = "study",
) -> BatchSummary:
    """Analyse every study of ``inputs`` not yet done in the work folder, then write ``out``;
    ``dicom`` and ``sr_template`` as for :func:`mammocad.commands.analyze.run_analyze`.

    ``group_by`` as there too. Interrupting (Ctrl-C) loses at most the study in progress; the
    same call again resumes.

    Raises:
        BatchStorageError: ``out`` or the work folder is an input, or lies inside an input
            folder (before anything is read), or the disk is full or read-only.
        BatchBusyError: another run holds the work folder.
    """
    check_grouping(group_by, dicom=dicom)
    work_root = work_dir if work_dir is not None else default_work_dir(out)
    try:  # an input zip would be replaced by the archive; in an input folder, the work
        # folder's lock and overlays (and, next time, the archive) would be read as inputs
        check_output_apart(inputs, out)
        check_output_apart(inputs, work_root, option="the work folder")
    except ValueError as error:
        raise BatchStorageError(str(error)) from None
    # a study done under other settings is analysed again; the SR template matters only
    # with DICOM outputs, so changing it alone does not redo a batch without them
    settings: dict[str, Any] = {"model_sha256": pipeline.model_info.sha256, "dicom": dicom}
    if dicom:
        settings["sr_template"] = sr_template
    work = WorkDir(work_root, settings=settings)
    summary = AnalyzeSummary(model=pipeline.model_info.to_dict())
    batch = BatchSummary(archive=out, work_dir=work_root, summary=summary)
    with _stop_when_full(work_root), _exclusive(work_root):
        work.prepare()
        rows: list[dict[str, Any]] = []
        folders: list[Path] = []
        for record in _records(
            inputs, pipeline=pipeline, work=work, dicom=dicom, sr_template=sr_template,
            console=console, batch=batch, group_by=group_by,
        ):  # fmt: skip
            if "unassigned" in record:
                summary.inputs.append(record["unassigned"])
                continue
            summary.studies.append(record["study"])
            summary.inputs.extend(record["inputs"])
            rows.extend(record["predictions"])
            folders.append(work.folder(record["study"]["study_instance_uid"]))
        with _stop_when_full(out.parent):
            try:
                write_archive(out, summary=summary, predictions=rows, study_folders=folders)
            except OSError:
                out.with_name(out.name + ".partial").unlink(missing_ok=True)  # give back room
                raise
    return batch
