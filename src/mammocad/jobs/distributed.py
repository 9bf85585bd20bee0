"""Jobs on Celery workers: ``MAMMOCAD_BROKER_URL=redis://host:6379/N`` and
``mammocad worker --queues cpu`` / ``--queues gpu`` processes.

Each stage is one task on its stage's queue (decode and report on ``cpu``, analyze on
``gpu``), chained per job. Between stages the :class:`StudyContext` is pickled to
``<data-dir>/jobs/<job id>.pkl``, so every worker must see the same data dir and database.
Tasks acknowledge late and are rejected when their worker dies, so the broker hands a job to
another worker; a job delivered more than ``MAX_ATTEMPTS`` times fails instead. File-system
hiccups are retried a few times, a database that cannot be reached as long as it takes; a
failing stage fails its job at once (the same input would fail again).
``MAMMOCAD_JOB_TIME_LIMIT_S`` bounds a whole study: each stage checks the time since the job
started when it begins and when it returns (Celery's soft limit, raised inside a stage, may be
caught by a per-image guard), and each task has it as its Celery time limit.

Redelivery. When only a worker's pool child dies, its parent rejects the message and Redis
requeues it at once (``task_reject_on_worker_lost``). When the whole worker dies (SIGKILL,
power loss), nobody rejects: the message sits in Redis's "unacked" set until another
consumer's sweep finds it older than ``visibility_timeout`` and puts it back on its queue.
Redis cannot tell a dead worker from a slow one, so the timeout must exceed the longest task
(its hard time limit): the default is ``MAMMOCAD_JOB_TIME_LIMIT_S + 60`` s, set by
``MAMMOCAD_BROKER_VISIBILITY_TIMEOUT_S``; kombu's default of one hour (swept every 100 s)
would leave a dead worker's study waiting an hour.

Dispatch. The API commits a job as queued, then sends its chain and records the send in
``jobs.dispatched_at``, in one transaction around the send: of two processes only one sends a
job, and a send that fails leaves it unsent. A process that dies between the commit and the
send (or whose broker, then database, fails there) leaves a queued job with no message:
:class:`CeleryQueue` sends such jobs when it starts and every ``DISPATCH_SWEEP_S``. A process
that dies between the send and the commit leaves one message too many, which the rules below
make harmless.

Exactly once. A stage may still run twice (a redelivery of a stage whose worker died after
handing on, or a live task outliving a too-short visibility timeout). So a stage runs only
while its job is running and has not moved past it; a later stage of the job is never
re-entered by an earlier one; the result is stored (replacing, never appending) only by the
report stage of a job still running, under a row lock; and a stage found already entered
(its earlier delivery never finished) counts one more attempt.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mammocad.errors import MammocadError
from mammocad.jobs.inprocess import MAX_ATTEMPTS
from mammocad.jobs.runner import JobRunner, failure_text
from mammocad.jobs.stages import (
    AnalyzeStage,
    DecodeStage,
    PushStage,
    Queue,
    ReportStage,
    Stage,
    StudyContext,
)
from mammocad.pipeline import Pipeline
from mammocad.report.dicomweb_push import DicomwebDestination
from mammocad.store.models import Job, JobStatus, as_utc, utcnow
from mammocad.store.repository import (
    claim_dispatch,
    register_model,
    start_job,
    undispatched_jobs,
)
from mammocad.store.session import make_engine, session_factory, transaction

try:  # optional: only this module needs Celery
    from celery import Celery, Task, chain  # type: ignore[import-untyped]
    from celery.exceptions import SoftTimeLimitExceeded  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - exercised only without the extra
    Celery = None

logger = logging.getLogger(__name__)

#: stage → task name, in the order a job runs them
TASKS = {
    "decode": "mammocad.stage.decode",
    "analyze": "mammocad.stage.analyze",
    "report": "mammocad.stage.report",
}
QUEUES = {"decode": Queue.CPU, "analyze": Queue.GPU, "report": Queue.CPU}
RETRYABLE = (OperationalError, OSError, ConnectionError)
#: a file-system error (a full data dir) is retried this many times, 1, 2, 4 s apart
FILE_RETRIES = 3
#: longest wait between two tries of a stage while the database cannot be reached
DATABASE_RETRY_MAX_S = 60
CONTEXT_FOLDER = "jobs"
#: how often the API looks for queued jobs never handed to the broker
DISPATCH_SWEEP_S = 60.0
#: SQLSTATE classes of a PostgreSQL that cannot take the statement now (08 connection, 40
#: serialization / deadlock, 53 insufficient resources, 57 shutting down or starting up)
_AWAY_SQLSTATES = ("08", "40", "53", "57")
#: SQLite result codes of a database that cannot be used now: BUSY, LOCKED, IOERR, FULL,
#: CANTOPEN, PROTOCOL
_AWAY_SQLITE_CODES = {5, 6, 10, 13, 14, 15}


def database_away(error: OperationalError) -> bool:
    """Whether ``error`` is the database being unreachable or busy (retried as long as it
    lasts), not a statement it refuses (SQLite reports "no such column" as an
    OperationalError too), which would fail every time."""
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None)
    if isinstance(state, str):
        return state[:2] in _AWAY_SQLSTATES
    code = getattr(error.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _AWAY_SQLITE_CODES
    return True  # no answer from a server: a connection that failed


@dataclass(frozen=True, slots=True)
class _Opened:
    uid: str
    elapsed_s: float
    attempts: int


class QueueUnavailableError(MammocadError):
    """The broker cannot be reached, so the job cannot be handed to a worker."""


def require_celery() -> None:
    if Celery is None:
        raise MammocadError(
            "the Celery queue needs Celery and redis: pip install 'mammocad[celery]'"
        )


def visibility_timeout(*, time_limit_s: float, override_s: float | None = None) -> int:
    """Seconds an unacknowledged message waits before Redis gives it to another worker:
    ``override_s``, or just longer than a task's hard limit (``time_limit_s + 30``)."""
    if override_s is not None:
        return max(1, round(override_s))
    return round(time_limit_s + 60)


def make_celery(
    *, broker_url: str, time_limit_s: float, visibility_timeout_s: float | None = None
) -> Any:
    """The Celery app: late acks, one message per worker at a time, stage routes, and a dead
    worker's message back on its queue after ``visibility_timeout`` (module docstring)."""
    require_celery()
    visibility = visibility_timeout(time_limit_s=time_limit_s, override_s=visibility_timeout_s)
    if visibility < time_limit_s + 30:
        logger.warning(
            "visibility timeout %d s is shorter than a task may run (%g s): a slow stage may "
            "be delivered twice (results stay single, work is wasted)",
            visibility,
            time_limit_s + 30,
        )
    app = Celery("mammocad", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_soft_time_limit=time_limit_s,
        task_time_limit=time_limit_s + 30,
        task_routes={name: {"queue": QUEUES[stage].value} for stage, name in TASKS.items()},
        task_default_queue=Queue.CPU.value,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # kombu sweeps for expired messages every interval × throttle seconds (10 × 10)
            "unacked_restore_interval": max(1, min(60, visibility // 10)),
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
    )
    return app


def job_chain(app: Any, job_id: str) -> Any:
    return chain(*(app.signature(name, args=(job_id,), immutable=True) for name in TASKS.values()))


class CeleryQueue:
    """The API's side: hands each queued job to the workers through the broker, and, at
    :meth:`start` and every ``sweep_interval_s`` after, any queued job never sent (module
    docstring, "Dispatch")."""

    def __init__(
        self,
        *,
        app: Any,
        sessions: sessionmaker[Session],
        sweep_interval_s: float = DISPATCH_SWEEP_S,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.sweep_interval_s = sweep_interval_s
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def start(self) -> int:
        """Send the queued jobs never sent, now and every ``sweep_interval_s``; returns how many
        were sent now."""
        sent = self.dispatch_lost()
        self._stop.clear()
        self._sweeper = threading.Thread(
            target=self._sweep, name="mammocad-dispatch-sweep", daemon=True
        )
        self._sweeper.start()
        return sent

    def submit(self, job_id: str) -> None:
        """Send job ``job_id`` to the broker (nothing when a sweep already did).

        Raises:
            QueueUnavailableError: the broker cannot be reached.
        """
        with transaction(self.sessions) as session:
            if claim_dispatch(session, job_id):
                self._send(job_id)  # before the commit: a failed send leaves it unsent

    def dispatch_lost(self) -> int:
        """Send every queued job never sent: its process died between committing and sending
        it, or the broker and then the database failed it. Stops at the first send that fails
        (the next sweep tries again); returns how many were sent."""
        with transaction(self.sessions) as session:
            job_ids = undispatched_jobs(session)
        sent = 0
        for job_id in job_ids:
            try:
                with transaction(self.sessions) as session:
                    if not claim_dispatch(session, job_id):
                        continue  # sent meanwhile by another process, or deleted
                    self._send(job_id)
            except QueueUnavailableError as error:
                logger.warning(
                    "queued jobs never sent to the broker wait for the next try in %g s: %s",
                    self.sweep_interval_s, error,
                )  # fmt: skip
                break
            sent += 1
        if sent:
            logger.info("sent %d queued job(s) that had never been sent to the broker", sent)
        return sent

    def _send(self, job_id: str) -> None:
        try:
            job_chain(self.app, job_id).apply_async(retry=False)
        except Exception as error:  # kombu raises many types when the broker is away
            raise QueueUnavailableError(
                f"could not hand the job to the workers ({type(error).__name__}: {error}): "
                "check MAMMOCAD_BROKER_URL and that Redis runs, then upload again"
            ) from error

    def _sweep(self) -> None:
        while not self._stop.wait(self.sweep_interval_s):
            try:
                self.dispatch_lost()
            except Exception:  # the database is away: keep the thread, try again later
                logger.exception("could not look for queued jobs never sent to the broker")

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=timeout_s)
        self.app.close()

    @property
    def alive(self) -> bool:
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception:
            return False
        return True


class StageWorker:
    """The worker's side: runs one stage of one job and keeps the database in step.

    Database engine and model are made on first use, in the worker's child process (not in
    the parent that forks it). ``dicom`` / ``sr_template`` as for :class:`ReportStage`;
    with a ``push`` destination the report task also runs :class:`PushStage` (before the
    result is stored, as in-process), so the chain stays decode → analyze → report.
    """

    def __init__(
        self,
        *,
        database_url: str,
        data_dir: Path,
        load_pipeline: Any,
        time_limit_s: float,
        dicom: bool = True,
        sr_template: str = "tid1500",
        push: DicomwebDestination | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.load_pipeline = load_pipeline
        self.time_limit_s = time_limit_s
        self.dicom = dicom
        self.sr_template = sr_template
        self.push = push
        self._sessions: sessionmaker[Session] | None = None
        self._pipeline: Pipeline | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = session_factory(make_engine(self.database_url))
        return self._sessions

    @property
    def runner(self) -> JobRunner:
        return JobRunner(sessions=self.sessions, data_dir=self.data_dir, stages=[])

    def stage(self, name: str) -> Stage:
        if name == "decode":
            return DecodeStage()
        if name == "report":
            return ReportStage(dicom=self.dicom, sr_template=self.sr_template)
        if self._pipeline is None:
            pipeline: Pipeline = self.load_pipeline()
            with transaction(self.sessions) as session:
                register_model(session, pipeline.detector.manifest.to_dict())
            self._pipeline = pipeline
        return AnalyzeStage(pipeline=self._pipeline)

    def context_path(self, job_id: str) -> Path:
        return self.data_dir / CONTEXT_FOLDER / f"{job_id}.pkl"

    def _save(self, job_id: str, context: StudyContext) -> None:
        path = self.context_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")  # two deliveries must not share it
        partial.write_bytes(pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(path)

    def _load(self, job_id: str) -> StudyContext | None:
        path = self.context_path(job_id)
        if not path.is_file():
            return None
        # written by our own workers into our own data dir, never from a request
        context: StudyContext = pickle.loads(path.read_bytes())
        return context

    def _discard(self, job_id: str) -> None:
        self.context_path(job_id).unlink(missing_ok=True)

    def _open(self, name: str, job_id: str, worker: str, *, retried: bool) -> _Opened | None:
        """The job's study and clock, or ``None`` when the job must not run (deleted,
        finished, failed, or already past this stage). ``retried``: a Celery retry of ours,
        not a redelivery."""
        with transaction(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status in (JobStatus.DONE.value, JobStatus.FAILED.value):
                return None
            order = list(TASKS)
            # the push runs inside the report task: a report redelivered after its worker died
            # while pushing is that task's own earlier delivery, not another stage's
            stage = "report" if job.stage == PushStage.name else job.stage
            if stage in order and order.index(stage) > order.index(name):
                return None  # a stale redelivery: this stage's work was handed on already
            if name == "decode" and not (retried and job.status == JobStatus.RUNNING.value):
                job = start_job(session, job_id, worker=worker)  # counts the attempt
                if job is None:
                    return None
            else:  # a later stage, or Celery retrying a decode of ours (not a new attempt)
                if job.status != JobStatus.RUNNING.value:
                    return None
                if stage == name and not retried:  # its earlier delivery never finished
                    job.attempts += 1
                    # it comes back only after the visibility timeout, which exceeds the time
                    # limit: the dead worker's wait must not count as this attempt's time
                    job.started_at = utcnow()
                job.worker = worker
            started = as_utc(job.started_at) if job.started_at else utcnow()
            return _Opened(
                uid=job.study.study_instance_uid,
                elapsed_s=(utcnow() - started).total_seconds(),
                attempts=job.attempts,
            )

    def fail(self, job_id: str, text: str) -> None:
        self.runner.fail(job_id, text)
        self._discard(job_id)

    def run(self, name: str, job_id: str, *, retried: bool = False) -> None:
        worker = f"{socket.gethostname()}:{os.getpid()}:celery"
        clock = perf_counter()
        opened = self._open(name, job_id, worker, retried=retried)
        if opened is None:
            if name == "report":  # the job ended or is gone: its hand-off is garbage
                self._discard(job_id)
            return
        uid = opened.uid
        if opened.attempts > MAX_ATTEMPTS:
            text = f"the job was delivered {opened.attempts} times and its worker stopped "
            self.fail(job_id, text + "each time; giving up — check the worker logs")
            return
        if opened.elapsed_s > self.time_limit_s:
            self.fail(job_id, self._too_long())
            return
        context = StudyContext(study_instance_uid=uid, data_dir=self.data_dir)
        if name != "decode":
            loaded = self._load(job_id)
            if loaded is None:
                self.fail(job_id, f"{name}: the previous stage's output is gone; upload again")
                return
            context = loaded
        if not self.runner.enter(job_id, name, context.timings_ms):
            self._discard(job_id)  # deleted or superseded: no later stage will read it
            return
        begun = perf_counter()
        try:
            self.stage(name).run(context)
        except RETRYABLE:
            raise  # Celery retries the task
        except SoftTimeLimitExceeded:
            self.fail(job_id, self._too_long())
            return
        except Exception as error:
            logger.exception("job %s (study %s): %s failed", job_id, uid, name)
            self.fail(job_id, failure_text(name, error))
            return
        context.timings_ms[name] = (perf_counter() - begun) * 1000.0
        if opened.elapsed_s + perf_counter() - clock > self.time_limit_s:
            # Celery's soft limit was raised inside the stage, where a guard that keeps one
            # image's or picture's error from costing the study took it for one: what the
            # stage handed on may lack those images (the push, which follows, never fails)
            self.fail(job_id, self._too_long())
            return
        if name == "report":
            if self.push is not None:
                self._push(job_id, context, self.push)
            context.timings_ms["total"] = sum(
                context.timings_ms.get(n, 0.0) for n in (*TASKS, PushStage.name)
            )
            self.runner.finish(job_id, context)
            self._discard(job_id)
        else:
            self._save(job_id, context)

    def _push(self, job_id: str, context: StudyContext, destination: DicomwebDestination) -> None:
        """The push stage inside the report task; it records its failure, never raises."""
        if not self.runner.enter(job_id, PushStage.name, context.timings_ms):
            return  # superseded or deleted: its results are not the study's to push
        begun = perf_counter()
        PushStage(destination=destination).run(context)
        context.timings_ms[PushStage.name] = (perf_counter() - begun) * 1000.0

    def _too_long(self) -> str:
        return (
            f"the analysis took longer than {self.time_limit_s:g} s "
            "(MAMMOCAD_JOB_TIME_LIMIT_S); check the workers' load or raise the limit"
        )


def register_tasks(app: Any, worker: StageWorker) -> None:
    """The three stage tasks on ``app``, retried on database / file-system errors: a
    file-system error :data:`FILE_RETRIES` times; a database that cannot be reached for as
    long as it takes (a restart, a failover), every :data:`DATABASE_RETRY_MAX_S` s at most
    (a statement it refuses, :func:`database_away` false, as a file-system error). A
    stage that gave up while the database was away could not record its failure either, and
    left its job ``running`` for good."""

    class StageTask(Task):
        max_retries = None  # bounded per error in ``body``

        def on_failure(
            self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            # retries exhausted (or a hard time limit): the job must not stay "running"
            try:
                worker.fail(args[0], f"{self.name}: {type(exc).__name__}: {exc}")
            except Exception:
                logger.exception("could not record the failure of job %s", args[0])

    for stage, name in TASKS.items():

        def body(task: Any, job_id: str, _stage: str = stage) -> None:
            retries = task.request.retries
            try:
                worker.run(_stage, job_id, retried=bool(retries))
            except OperationalError as error:
                if not database_away(error):  # a refused statement: as a file-system error
                    if retries >= FILE_RETRIES:
                        raise
                    raise task.retry(exc=error, countdown=2**retries) from error
                logger.warning("job %s: %s: the database is away, retrying", job_id, _stage)
                countdown = min(DATABASE_RETRY_MAX_S, 2**retries)
                raise task.retry(exc=error, countdown=countdown) from error
            except (OSError, ConnectionError) as error:
                if retries >= FILE_RETRIES:
                    raise
                raise task.retry(exc=error, countdown=2**retries) from error

        # not shared: another app of the process (a test's) must not take this worker's tasks
        app.task(name=name, base=StageTask, bind=True, shared=False)(body)
