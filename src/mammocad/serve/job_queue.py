"""The job queue and stages of a service process, built from its settings in one place.

``mammocad serve`` and ``mammocad dicom-node --data-dir`` both use it, so the two run jobs the
same way on one data dir (same stages, same Celery limits).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from mammocad.jobs import InProcessWorkers, JobRunner, Stage, default_stages
from mammocad.jobs.queue import JobQueue
from mammocad.pipeline import Pipeline
from mammocad.serve.settings import Settings


def service_stages(
    settings: Settings, pipeline: Pipeline, *, dicom: bool | None = None
) -> list[Stage]:
    """decode → analyze → report (→ push with a DICOMweb destination), with the settings'
    DICOM outputs (``dicom`` overrides MAMMOCAD_DICOM_OUTPUTS), SR template and push."""
    return default_stages(
        pipeline=pipeline,
        dicom=settings.dicom_outputs if dicom is None else dicom,
        sr_template=settings.sr_template,
        push=settings.push_destination(),
    )


def build_job_queue(
    settings: Settings, sessions: sessionmaker[Session], make_runner: Callable[[], JobRunner]
) -> JobQueue:
    """Celery workers (``mammocad worker``) when a broker is set, else ``settings.workers``
    threads in this process running ``make_runner()``'s runner (not called for Celery: no
    model has to be loaded here then)."""
    if settings.broker_url:
        from mammocad.jobs.distributed import CeleryQueue, make_celery

        app = make_celery(
            broker_url=settings.broker_url,
            time_limit_s=settings.job_time_limit_s,
            visibility_timeout_s=settings.broker_visibility_timeout_s,
        )
        return CeleryQueue(app=app, sessions=sessions)
    return InProcessWorkers(sessions=sessions, runner=make_runner(), count=settings.workers)
