"""The queries of the API and the workers: studies, the job queue, results and feedback.

Every function takes an open :class:`~sqlalchemy.orm.Session` and leaves committing to the
caller (``store.session.transaction``), so one request or one job step is one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from mammocad.store.models import (
    Feedback,
    Finding,
    Image,
    Job,
    JobStatus,
    ModelVersion,
    Result,
    Study,
    StudyState,
    as_utc,
    utcnow,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyHeader:
    """What an upload tells about its study (from the DICOM headers)."""

    study_instance_uid: str
    patient_id: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_time: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """One uploaded instance, already placed under ``<study folder>/input/``."""

    sop_instance_uid: str
    file_name: str
    size_bytes: int


def get_study(session: Session, study_instance_uid: str) -> Study | None:
    return session.scalar(select(Study).where(Study.study_instance_uid == study_instance_uid))


def known_instances(session: Session, study: Study) -> set[str]:
    return {image.sop_instance_uid for image in study.images}


def _fitting(column: str, value: str | None) -> str | None:
    """``value`` when the ``studies`` column can hold it, else ``None``: a value longer than
    its DICOM VR allows (the column's length) is not a valid one, and PostgreSQL would refuse
    the whole upload for it; ``result.json`` keeps the header as read."""
    length = getattr(Study.__table__.c[column].type, "length", None)
    if value is None or (length is not None and len(value) > length) or "\x00" in value:
        return None  # NUL: no character of a DICOM text value, and PostgreSQL refuses it
    return value


def add_study_files(
    session: Session, *, header: StudyHeader, folder: str, files: Sequence[StoredFile]
) -> Study:
    """The study of ``header`` (created when new) with ``files`` added as images.

    Instances the study already has are the caller's to skip: uploading a study twice must
    not duplicate it.
    """
    study = get_study(session, header.study_instance_uid)
    if study is None:
        study = Study(study_instance_uid=header.study_instance_uid, folder=folder)
        session.add(study)
    for name in ("patient_id", "accession_number", "study_date", "study_time"):
        value = _fitting(name, getattr(header, name))
        if value and not getattr(study, name):
            setattr(study, name, value)
    for stored in files:
        study.images.append(
            Image(
                sop_instance_uid=stored.sop_instance_uid,
                file_name=stored.file_name,
                size_bytes=stored.size_bytes,
            )
        )
    session.flush()
    return study


def latest_job(study: Study) -> Job | None:
    return study.jobs[-1] if study.jobs else None


def enqueue_job(session: Session, study: Study) -> Job:
    """A new queued analysis of ``study``; the study goes back to ``queued``."""
    job = Job(id=str(uuid.uuid4()), status=JobStatus.QUEUED.value, created_at=utcnow())
    study.jobs.append(job)
    study.state = StudyState.QUEUED.value
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def claim_next_job(session: Session, *, worker: str) -> Job | None:
    """Take the oldest queued job for ``worker``, or ``None`` when the queue is empty.

    The conditional UPDATE makes the claim atomic: of two workers (threads or processes on
    one database) that pick the same job, only one sees its row change.
    """
    job_id = session.scalar(
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED.value)
        .order_by(Job.created_at, Job.id)
        .limit(1)
    )
    if job_id is None:
        return None
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            worker=worker,
            started_at=utcnow(),
            heartbeat_at=func.now(),
            attempts=Job.attempts + 1,
        )
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    job = session.get(Job, job_id, populate_existing=True)
    if job is not None and latest_job(job.study) is job:
        # an older job (requeued after a newer one was queued) stops at its first stage as
        # superseded: the study's state is the newer job's
        job.study.state = StudyState.PROCESSING.value
    return job


def start_job(session: Session, job_id: str, *, worker: str) -> Job | None:
    """Job ``job_id`` taken by ``worker`` (a message-queue worker: the broker, not the table,
    decides who runs it). ``None`` when the job is gone or already finished; a job delivered
    again after its worker died counts one more attempt."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.status in (JobStatus.DONE.value, JobStatus.FAILED.value):
        return None
    job.status, job.worker, job.started_at = JobStatus.RUNNING.value, worker, utcnow()
    job.attempts += 1
    if latest_job(job.study) is job:  # a stale delivery of an older job: see claim_next_job
        job.study.state = StudyState.PROCESSING.value
    return job


def undispatched_jobs(session: Session) -> list[str]:
    """Queued jobs never sent to the broker, oldest first (see :func:`claim_dispatch`)."""
    return list(
        session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED.value, Job.dispatched_at.is_(None))
            .order_by(Job.created_at, Job.id)
        )
    )


def claim_dispatch(session: Session, job_id: str) -> bool:
    """Mark queued job ``job_id`` sent to the broker; ``False`` when it was already, or is no
    longer queued.

    The caller sends the job's message before committing: the conditional UPDATE holds the
    row until then, so of two processes sending the same job only one does, and a send that
    fails (or a process that dies before the commit) leaves the job to be sent again rather
    than queued with no message.
    """
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.QUEUED.value,
            Job.dispatched_at.is_(None),
        )
        .values(dispatched_at=utcnow())
    )
    return getattr(claimed, "rowcount", 0) == 1


def database_now(session: Session) -> datetime:
    """The database's clock (UTC): heartbeats written by several hosts are compared on one
    clock, whatever the hosts' own say."""
    now: datetime = session.scalars(select(func.now())).one()
    return as_utc(now)


def record_heartbeat(session: Session, job_id: str, *, attempt: int) -> bool:
    """The worker running attempt ``attempt`` of job ``job_id`` is alive; ``False`` when the
    job is no longer that attempt's (it ended, or was taken over after a stale heartbeat)."""
    beat = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.attempts == attempt)
        .values(heartbeat_at=func.now())
    )
    return getattr(beat, "rowcount", 0) == 1


def requeue_orphans(
    session: Session,
    *,
    is_orphan: Callable[[str | None], bool],
    max_attempts: int,
    stale_before: datetime | None = None,
) -> int:
    """Put running jobs whose worker is gone back in the queue: ``is_orphan(worker)``, or a
    heartbeat older than ``stale_before`` (on the database's clock) whatever the worker's host.

    A job that was already tried ``max_attempts`` times fails instead: a study that kills
    its worker must not kill every restart too.
    """
    count = 0
    # locked (in one order: processes sweeping at once must not deadlock) so that a job
    # another process requeued meanwhile, and a worker then claimed, is not requeued again
    running = session.scalars(
        select(Job).where(Job.status == JobStatus.RUNNING.value).order_by(Job.id).with_for_update()
    )
    for job in running:
        beat = job.heartbeat_at
        stale = stale_before is not None and beat is not None and as_utc(beat) < stale_before
        if not stale and not is_orphan(job.worker):
            continue
        if job.attempts >= max_attempts:
            mark_failed(
                session,
                job,
                error=f"the worker stopped during this job {job.attempts} times; "
                "giving up — check the service log for the cause",
            )
        else:
            job.status, job.worker, job.stage = JobStatus.QUEUED.value, None, None
            job.heartbeat_at = None
            if latest_job(job.study) is job:  # an older job: the study is the newer one's
                job.study.state = StudyState.QUEUED.value
        count += 1
    return count


def mark_stage(session: Session, job: Job, *, stage: str, timings_ms: dict[str, float]) -> None:
    job.stage = stage
    job.stage_timings_ms = dict(timings_ms)  # a new object: JSON columns track assignment only


def mark_failed(session: Session, job: Job, *, error: str) -> None:
    job.status, job.error, job.finished_at = JobStatus.FAILED.value, error, utcnow()
    if latest_job(job.study) is job:  # a newer queued job keeps the study queued
        job.study.state = StudyState.FAILED.value


def mark_done(
    session: Session, job: Job, *, timings_ms: dict[str, float], error: str | None = None
) -> None:
    """The job finished with its result; ``error``: what went wrong after the result was
    saved (a failed push of the DICOM outputs), else an earlier attempt's error is cleared."""
    job.status, job.stage, job.finished_at = JobStatus.DONE.value, None, utcnow()
    job.stage_timings_ms = dict(timings_ms)
    job.error = error
    if latest_job(job.study) is job:
        job.study.state = StudyState.DONE.value


#: INSERT ... ON CONFLICT DO NOTHING of the databases mammocad supports
_UPSERTS: dict[str, Callable[[type[ModelVersion]], Any]] = {
    "postgresql": postgresql_insert,
    "sqlite": sqlite_insert,
}


def register_model(session: Session, manifest: dict[str, Any]) -> ModelVersion:
    """The row of the bundle with this manifest's sha256 (added on first load).

    Processes that load a new bundle at once (``serve`` and ``dicom-node`` started together,
    two Celery gpu workers' first studies) may all find no row: the insert does nothing when
    another one's row exists (or is being committed; the database waits for it), so none of
    them fails on the unique sha256.
    """
    sha = str(manifest.get("sha256", ""))
    query = select(ModelVersion).where(ModelVersion.sha256 == sha)
    model = session.scalar(query)
    if model is not None:
        return model
    row = {
        "name": str(manifest.get("name", "")),
        "version": str(manifest.get("version", "")),
        "sha256": sha,
        "manifest": manifest,
        "first_loaded_at": utcnow(),
    }
    insert = _UPSERTS.get(session.get_bind().dialect.name)
    if insert is None:  # another database: no race protection, as before
        model = ModelVersion(**row)
        session.add(model)
        session.flush()
        return model
    session.execute(
        insert(ModelVersion).values(**row).on_conflict_do_nothing(index_elements=["sha256"])
    )
    return session.scalars(query).one()


def find_model_version(session: Session, sha256: str) -> int | None:
    return session.scalar(select(ModelVersion.id).where(ModelVersion.sha256 == sha256))


def _finding_rows(document: dict[str, Any]) -> list[Finding]:
    rows = []
    for image in document.get("images", []):
        for finding in image.get("findings", []):
            rows.append(
                Finding(
                    finding_id=str(finding["id"]),
                    sop_instance_uid=str(image["sop_instance_uid"]),
                    laterality=image.get("laterality"),
                    label=str(finding["label"]),
                    score=float(finding["score"]),
                    malignancy_probability=float(finding["malignancy_probability"]),
                    box=list(finding["box"]),
                )
            )
    return rows


def save_result(
    session: Session,
    study: Study,
    *,
    document: dict[str, Any],
    model_version_id: int | None,
    pictures: dict[str, tuple[str | None, str | None]],
) -> None:
    """Store ``document`` as the study's result (replacing an earlier one), its findings,
    and per image the status and the pictures (``pictures[sop] = (overlay, input)``, paths
    relative to the data dir)."""
    if study.result is None:
        study.result = Result(document=document, model_version_id=model_version_id)
    else:
        study.result.document = document
        study.result.model_version_id = model_version_id
        study.result.created_at = utcnow()
    study.findings.clear()
    session.flush()  # the old findings go before the new ones reuse their ids
    study.findings.extend(_finding_rows(document))
    by_uid = {entry["sop_instance_uid"]: entry for entry in document.get("images", [])}
    for image in study.images:
        entry = by_uid.get(image.sop_instance_uid)
        if entry is not None:
            image.laterality, image.view = entry.get("laterality"), entry.get("view")
            image.status, image.rejection_code = entry.get("status"), entry.get("rejection_code")
        image.overlay, image.input_picture = pictures.get(image.sop_instance_uid, (None, None))
    study.result_status = document.get("status")
    study.malignancy_probability = document.get("malignancy_probability")
    study.suspicion = document.get("suspicion")
    accession = _fitting("accession_number", document.get("accession_number"))
    if accession and not study.accession_number:  # the result keeps the header as read
        study.accession_number = accession


def list_studies(
    session: Session, *, limit: int, offset: int, state: str | None = None
) -> tuple[list[Study], int]:
    """One page of studies, newest first, and the number of studies in all."""
    query = select(Study)
    counted = select(func.count()).select_from(Study)
    if state is not None:
        query, counted = query.where(Study.state == state), counted.where(Study.state == state)
    rows = session.scalars(
        query.options(selectinload(Study.images), selectinload(Study.jobs))
        .order_by(Study.created_at.desc(), Study.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(session.scalar(counted) or 0)


def add_feedback(
    session: Session,
    study: Study,
    *,
    finding_id: str | None,
    agree: bool,
    reader_id: str,
    corrected_label: str | None = None,
    corrected_box: list[float] | None = None,
    comment: str | None = None,
    api_key_name: str | None = None,
) -> Feedback:
    entry = Feedback(
        finding_id=finding_id,
        agree=agree,
        reader_id=reader_id,
        corrected_label=corrected_label,
        corrected_box=corrected_box,
        comment=comment,
        api_key_name=api_key_name,
        created_at=utcnow(),
    )
    study.feedback.append(entry)
    session.flush()
    return entry


def touch(study: Study, moment: datetime | None = None) -> None:
    study.updated_at = moment or utcnow()
