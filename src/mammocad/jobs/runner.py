"""One job, start to end: run the stages and keep the database in step.

The database is touched in short transactions between stages (never while the model runs),
so API requests are not blocked by a long analysis on SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter

from sqlalchemy.orm import Session, sessionmaker

from mammocad.commands.analyze import release_pixels
from mammocad.errors import MammocadError
from mammocad.jobs.stages import Stage, StudyContext
from mammocad.store.models import Job, JobStatus
from mammocad.store.repository import (
    find_model_version,
    get_job,
    latest_job,
    mark_done,
    mark_failed,
    mark_stage,
    save_result,
)
from mammocad.store.session import transaction

logger = logging.getLogger(__name__)


def failure_text(stage: str, error: Exception) -> str:
    """The sentence a failed job shows: ours say what to do; anything else is a bug."""
    if isinstance(error, MammocadError):
        return f"{stage}: {error}"
    # an OSError's text names the file, a path on the server that clients must not see
    # (CWE-497); the service log has it
    reason = error.strerror if isinstance(error, OSError) and error.strerror else error
    return (
        f"mammocad failed during the {stage} stage ({type(error).__name__}: {reason}); "
        "please report this with the service log"
    )


def superseded_text(newer: Job) -> str:
    """Why a job stopped without storing its result: images were added to its study while it
    ran, and the newer job reads them all; its result would replace the newer one's."""
    return (
        "superseded: images were added to the study while this job ran; job "
        f"{newer.id} analyses the study with all of them (GET /api/v1/jobs/{newer.id})"
    )


def _taken_over(job: Job, attempt: int | None) -> bool:
    """Whether attempt ``attempt`` (an in-process worker's claim) lost its job: its heartbeat
    went stale, the job was queued again and maybe claimed anew (each claim counts one more
    attempt). Such a run writes nothing more: the state is the new run's. ``None``: no check
    (Celery workers, whose redeliveries the broker decides)."""
    return attempt is not None and (
        job.status != JobStatus.RUNNING.value or job.attempts != attempt
    )


def _stop_if_superseded(session: Session, job: Job) -> bool:
    """Fail ``job`` and say so when a newer job of its study exists (under the caller's
    transaction); ``True`` when it was superseded."""
    newer = latest_job(job.study)
    if newer is None or newer is job:
        return False
    mark_failed(session, job, error=superseded_text(newer))
    return True


class JobRunner:
    """Runs ``stages`` for a job id and records stage, timings, result and errors.

    ``attempt`` (of :meth:`run`, :meth:`enter`, :meth:`fail`, :meth:`finish`): the job's
    ``attempts`` when the caller claimed it; the job is left alone once another claim has it.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        data_dir: Path,
        stages: Sequence[Stage],
        model_version_id: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.data_dir = data_dir
        self.stages = list(stages)
        self.model_version_id = model_version_id

    def run(self, job_id: str, *, attempt: int | None = None) -> bool:
        """Run job ``job_id``; ``True`` when it finished with a result."""
        with transaction(self.sessions) as session:
            job = get_job(session, job_id)
            if job is None:  # its study was deleted meanwhile
                return False
            uid = job.study.study_instance_uid
        context = StudyContext(study_instance_uid=uid, data_dir=self.data_dir)
        start = perf_counter()
        try:
            for stage in self.stages:
                if not self.enter(job_id, stage.name, context.timings_ms, attempt=attempt):
                    return False
                begun = perf_counter()
                try:
                    stage.run(context)
                except Exception as error:
                    logger.exception("job %s (study %s): %s failed", job_id, uid, stage.name)
                    self.fail(job_id, failure_text(stage.name, error), attempt=attempt)
                    return False
                context.timings_ms[stage.name] = (perf_counter() - begun) * 1000.0
            context.timings_ms["total"] = (perf_counter() - start) * 1000.0
            return self.finish(job_id, context, attempt=attempt)
        finally:
            if context.study is not None:
                release_pixels(context.study)

    def enter(
        self, job_id: str, stage: str, timings_ms: dict[str, float], *, attempt: int | None = None
    ) -> bool:
        """Record that ``stage`` starts (with the timings so far); ``False`` when the job must
        stop instead: its study was deleted, another claim took it over, or images added
        meanwhile queued a newer job (two jobs of one study must not both write its pictures
        and result)."""
        with transaction(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or _taken_over(job, attempt) or _stop_if_superseded(session, job):
                return False
            mark_stage(session, job, stage=stage, timings_ms=timings_ms)
            return True

    def fail(self, job_id: str, text: str, *, attempt: int | None = None) -> None:
        """The job failed with ``text``; the study is marked failed. A job that ended already
        keeps its end: a Celery task failing after its job stored the result (its hand-off
        could not be removed) must not turn the result into a failure; nor does a job taken
        over by another claim."""
        with transaction(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or _taken_over(job, attempt):
                return
            if job.status not in (JobStatus.DONE, JobStatus.FAILED):
                mark_failed(session, job, error=text)

    def finish(self, job_id: str, context: StudyContext, *, attempt: int | None = None) -> bool:
        """Store the context's result and pictures and mark the job done (its error: the
        context's ``delivery_error``, if any); ``False`` when the job (its study) was deleted
        meanwhile, or is no longer running (another delivery of the same Celery stage finished
        it: the row lock makes that one store the result), or was superseded by a newer job of
        its study (its older result must not replace the newer one's), or taken over by another
        claim."""
        analysis = context.require_analysis()
        with transaction(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status != JobStatus.RUNNING.value or _taken_over(job, attempt):
                return False
            if _stop_if_superseded(session, job):
                return False
            model_id = self.model_version_id
            if model_id is None:  # a worker that did not load the model itself
                model_id = find_model_version(session, str(analysis.result["model"]["sha256"]))
            save_result(
                session,
                job.study,
                document=analysis.result,
                model_version_id=model_id,
                pictures=context.pictures,
            )
            mark_done(session, job, timings_ms=context.timings_ms, error=context.delivery_error)
        return True
