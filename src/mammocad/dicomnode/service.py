"""The service's database and job queue, opened by the node for :class:`QueuedStudyHandler`.

Built from the same :class:`~mammocad.serve.settings.Settings` as ``mammocad serve``, so the
node and the service may run on one data dir at once: both poll the same ``jobs`` table and a
job is claimed once (``store.repository.claim_next_job``). With ``broker_url`` the jobs go to
Celery workers (``mammocad worker``) and no model is loaded here; otherwise in-process
workers in the node's process run them with the model loaded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mammocad.dicomnode.queued import ACTOR, QueuedStudyHandler
from mammocad.jobs import JobRunner
from mammocad.jobs.queue import JobQueue
from mammocad.pipeline import Pipeline
from mammocad.serve.intake import clear_stale_staging
from mammocad.serve.job_queue import build_job_queue, service_stages
from mammocad.serve.settings import Settings
from mammocad.store.repository import register_model
from mammocad.store.session import (
    database_url,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)

logger = logging.getLogger(__name__)


def _runner(settings: Settings, sessions: sessionmaker[Session], pipeline: Pipeline) -> JobRunner:
    with transaction(sessions) as session:
        model_id = register_model(session, pipeline.detector.manifest.to_dict()).id
    return JobRunner(
        sessions=sessions,
        data_dir=settings.data_dir,
        # the node exists to send DICOM outputs back: written whatever MAMMOCAD_DICOM_OUTPUTS
        stages=service_stages(settings, pipeline, dicom=True),
        model_version_id=model_id,
    )


@dataclass(slots=True, kw_only=True)
class ServiceQueue:
    """An open database and a started job queue; :meth:`close` stops both."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    workers: JobQueue

    @classmethod
    def open(cls, settings: Settings, *, load_pipeline: Callable[[], Pipeline]) -> ServiceQueue:
        """Migrate the database, connect, start the job queue; ``load_pipeline`` is called
        only without a broker (the in-process workers need the model).

        Raises:
            DatabaseError: the database cannot be reached or migrated.
            MammocadError: Celery is not installed although a broker is set.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        clear_stale_staging(settings.data_dir)  # intakes a dead process left (a day untouched)
        url = database_url(data_dir=settings.data_dir, override=settings.database_url)
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        try:
            workers = build_job_queue(
                settings, sessions, lambda: _runner(settings, sessions, load_pipeline())
            )
            workers.start()
        except BaseException:
            engine.dispose()
            raise
        where = (
            "Celery workers" if settings.broker_url else f"{settings.workers} in-process worker(s)"
        )
        logger.info("studies go to the service in %s; jobs run on %s", settings.data_dir, where)
        return cls(settings=settings, engine=engine, sessions=sessions, workers=workers)

    def handler(self, *, gsps: bool = False, actor: str = ACTOR) -> QueuedStudyHandler:
        """A handler over this queue, waiting up to the settings' job time limit per study."""
        return QueuedStudyHandler(
            data_dir=self.settings.data_dir,
            sessions=self.sessions,
            workers=self.workers,
            gsps=gsps,
            timeout_s=self.settings.job_time_limit_s,
            actor=actor,
        )

    def close(self) -> None:
        self.workers.stop()
        self.engine.dispose()
