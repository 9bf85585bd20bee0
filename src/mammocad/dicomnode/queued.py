"""The node's default handler: every closed study goes through the service's job queue.

::

    SPOOL/closed/<study>/instances/   staged copies ─▶ intake, as an upload would
                                      (<data-dir>/studies/<uid>/input/, study row, job, audit)
    job queue (in-process workers or Celery) ─▶ job done: <data-dir>/studies/<uid>/dicom/
    copies of sr.dcm, sc/ (and gsps/) ─▶ SPOOL/closed/<study>/results/<uid>/dicom/ ─▶ C-STORE

The study is then in the service database, API and web UI like an uploaded one. Intake is
:func:`mammocad.serve.intake.store_scanned`, the same as for uploads: a study sent again with
nothing new queues nothing, and its existing outputs are sent back.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mammocad.dicomnode.handler import StudyHandlingError
from mammocad.jobs.queue import JobQueue
from mammocad.jobs.stages import DICOM_FOLDER, study_folder
from mammocad.serve.intake import STAGING_FOLDER, store_scanned
from mammocad.serve.uploads import Received, UploadError, scan
from mammocad.store.models import JobStatus
from mammocad.store.repository import get_job, get_study
from mammocad.store.session import transaction

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"
#: the audit log's actor for studies the node takes in (the CLI adds the node's AE title)
ACTOR = "dicom-node"


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishedJob:
    """A job's end as the handler saw it: ``status`` done or failed, ``error`` when failed."""

    job_id: str
    study_instance_uid: str
    status: str
    error: str | None = None


class QueuedStudyHandler:
    """A :class:`~mammocad.dicomnode.handler.StudyHandler` over the service's job queue.

    Args:
        data_dir: the service data folder (the workers must see the same one).
        sessions: session factory of the service database.
        workers: the job queue the study's job is submitted to.
        gsps: also return the presentation states.
        timeout_s: how long to wait for the job, from hand-over (queue wait included).
        poll_interval_s: how often the jobs table is read while waiting.
        actor: recorded in the audit log for the studies taken in.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        sessions: sessionmaker[Session],
        workers: JobQueue,
        gsps: bool = False,
        timeout_s: float = 900.0,
        poll_interval_s: float = 0.5,
        actor: str = ACTOR,
    ) -> None:
        if timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("timeout_s and poll_interval_s must be positive")
        self.data_dir = data_dir
        self.sessions = sessions
        self.workers = workers
        self.gsps = gsps
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.actor = actor

    def __call__(self, instances_dir: Path, *, out_dir: Path) -> list[Path]:
        job_id = self.take_in(instances_dir)
        finished = self.wait(job_id)
        if finished.status == JobStatus.FAILED.value:
            raise StudyHandlingError(f"job {job_id} failed: {finished.error}")
        return self.collect(finished.study_instance_uid, out_dir=out_dir)

    def take_in(self, instances_dir: Path) -> str:
        """Store the study's instances as an upload would and queue its job; the job's id
        (an earlier job's when nothing is new, as for a repeated upload)."""
        staging = self.data_dir / STAGING_FOLDER / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            files = sorted(instances_dir.glob("*.dcm"))
            received = [_stage(path, staging / f"n{i:05d}") for i, path in enumerate(files)]
            scanned, ignored = scan(received) if received else ([], [])
            if not scanned:
                raise StudyHandlingError(f"no DICOM instance in {instances_dir}")
            for item in ignored:
                logger.warning("%s not taken into the service: %s", item.name, item.reason)
            intake = store_scanned(
                self.data_dir, self.sessions, self.workers,
                scanned=scanned, ignored=ignored, actor=self.actor,
            )  # fmt: skip
        except UploadError as error:
            raise StudyHandlingError(f"the service did not take the study: {error}") from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        body = intake.body
        logger.info(
            "study %s → job %s (%s; %d new, %d known instances)", body.study_instance_uid,
            body.job_id, "queued" if intake.queued else body.status, body.new_instances,
            body.known_instances,
        )  # fmt: skip
        return body.job_id

    def wait(self, job_id: str) -> FinishedJob:
        """Poll the jobs table until the job is done or failed.

        Raises:
            StudyHandlingError: the job did not finish within ``timeout_s``, or its study was
                deleted meanwhile.
        """
        deadline = time.monotonic() + self.timeout_s
        while True:
            with transaction(self.sessions) as session:
                job = get_job(session, job_id)
                if job is None:
                    raise StudyHandlingError(
                        f"job {job_id} is gone: its study was deleted from the service"
                    )
                status, stage = job.status, job.stage
                if status in (JobStatus.DONE.value, JobStatus.FAILED.value):
                    uid = job.study.study_instance_uid
                    return FinishedJob(
                        job_id=job_id, study_instance_uid=uid, status=status, error=job.error
                    )
            if time.monotonic() >= deadline:
                raise StudyHandlingError(
                    f"job {job_id} not finished after {self.timeout_s:g} s (status {status}"
                    f"{f', stage {stage}' if stage else ''}): it stays in the service queue; "
                    "send the study again once the service shows it done, or check that "
                    "workers are running"
                )
            time.sleep(self.poll_interval_s)

    def collect(self, study_instance_uid: str, *, out_dir: Path) -> list[Path]:
        """Copy the study's DICOM outputs (and ``result.json``) into ``out_dir/<uid>/``, the
        layout :class:`~mammocad.dicomnode.handler.PipelineStudyHandler` writes; the node sends
        and files away the copies, the service keeps its own. Returns the DICOM copies.

        Raises:
            StudyHandlingError: the job wrote no DICOM output; the message says why.
        """
        folder = self.data_dir / study_folder(study_instance_uid)
        source = folder / DICOM_FOLDER
        kinds = ["sr.dcm", "sc/*.dcm", *(["gsps/*.dcm"] if self.gsps else [])]
        files = [path for kind in kinds for path in sorted(source.glob(kind))]
        if not files:
            raise StudyHandlingError(self._no_output(study_instance_uid, source))
        target = out_dir / folder.name
        copies = []
        for path in files:
            copy = target / DICOM_FOLDER / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            copies.append(copy)
        if (folder / RESULT_FILE).is_file():  # for whoever reads a kept spool folder
            shutil.copyfile(folder / RESULT_FILE, target / RESULT_FILE)
        return copies

    def _no_output(self, study_instance_uid: str, source: Path) -> str:
        with transaction(self.sessions) as session:
            study = get_study(session, study_instance_uid)
            images = list(study.images) if study is not None else []
            codes = sorted({image.rejection_code for image in images if image.rejection_code})
            processed = any(image.status == "processed" for image in images)
        if codes and not processed:
            return f"no DICOM output: no image of the study could be processed ({', '.join(codes)})"
        return (
            f"the job wrote no DICOM output under {source}: the workers need "
            "MAMMOCAD_DICOM_OUTPUTS=true"
        )


def _stage(path: Path, target: Path) -> Received:
    """A staged copy of ``path`` (a hard link when the spool and the data dir share a file
    system: intake moves it, the spool keeps its file for a failed study's re-run)."""
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return Received(name=path.name, path=target, size=target.stat().st_size)
