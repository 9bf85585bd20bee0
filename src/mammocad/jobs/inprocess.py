"""In-process workers: threads that take jobs from the queue kept in the database.

The queue is the ``jobs`` table, so nothing outside the process is needed, and a restart
finds the jobs it had not finished: on :meth:`InProcessWorkers.start`, jobs left ``running``
by a process of this host that no longer exists (or ran before the host restarted) go back
to ``queued``. Workers wake up when
the API enqueues (:meth:`notify`) and otherwise poll, so jobs queued by another process on
the same database are taken too.

A process on another host cannot be checked from here, and a Docker container recreated is
another host (a new hostname, the kernel's boot id): so the worker running a job refreshes the
job's heartbeat, and a running job whose heartbeat is :data:`MISSED_HEARTBEATS` intervals old
goes back to the queue whatever host it names, at start and from the polling loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mammocad.jobs.runner import JobRunner
from mammocad.store.repository import (
    claim_next_job,
    database_now,
    record_heartbeat,
    requeue_orphans,
)
from mammocad.store.session import transaction

logger = logging.getLogger(__name__)

#: a job whose worker died this many times fails instead of being queued again
MAX_ATTEMPTS = 3

#: a running job whose heartbeat is this many intervals old has lost its worker: a few, so
#: that a database busy for a moment does not hand a live worker's job to another
MISSED_HEARTBEATS = 4


#: changes at every start of the machine (Linux); absent elsewhere
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """A short id of this boot of the machine, ``""`` where the system has none."""
    try:
        return BOOT_ID_FILE.read_text(encoding="ascii").strip()[:8]
    except (OSError, UnicodeDecodeError):
        return ""


def worker_name(index: int) -> str:
    """``host:pid:index:boot`` (``host:pid:index`` without a boot id): the boot tells a
    process number of an earlier boot, which another program may have now, from ours."""
    name = f"{socket.gethostname()}:{os.getpid()}:{index}"
    boot = boot_id()
    return f"{name}:{boot}" if boot else name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_orphan(worker: str | None) -> bool:
    """Whether a running job's worker is gone: same host, and the host restarted since (every
    process of the earlier boot is gone, whatever now runs under their numbers) or its process
    no longer exists.

    Workers on other hosts cannot be checked from here; their jobs are left to the heartbeat
    (:meth:`InProcessWorkers.requeue_stale`).
    """
    if not worker:
        return True
    host, _, rest = worker.partition(":")
    pid_text, _, rest = rest.partition(":")
    boot = rest.partition(":")[2]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if boot and boot != boot_id():
        return True
    pid = int(pid_text)
    return pid == os.getpid() or not _pid_alive(pid)


def _never(worker: str | None) -> bool:
    return False


class InProcessWorkers:
    """``count`` threads running jobs with ``runner``.

    Args:
        sessions: session factory of the service database.
        runner: runs one job's stages.
        count: worker threads; the model is shared, so more than one only helps when the
            stages release the GIL (decoding, torch).
        poll_interval_s: how often an idle worker looks at the queue without being notified.
        heartbeat_interval_s: how often the job a worker runs is marked alive, and how often
            the polling loop looks for running jobs whose heartbeat stopped. The same on every
            process of a database: another's job is taken after ``MISSED_HEARTBEATS`` of
            this process's intervals.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        runner: JobRunner,
        count: int = 1,
        poll_interval_s: float = 2.0,
        heartbeat_interval_s: float = 30.0,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if heartbeat_interval_s <= 0:
            raise ValueError(f"heartbeat_interval_s must be > 0, got {heartbeat_interval_s}")
        self.sessions = sessions
        self.runner = runner
        self.count = count
        self.poll_interval_s = poll_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self._next_sweep = 0.0  # time.monotonic() of the polling loop's next sweep
        self._sweep_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # job id → (attempt, failure text) that could not be written (the database was away):
        # retried by every loop, else the job would stay "running" until its heartbeat, no
        # longer refreshed, put it back in the queue
        self._unrecorded: dict[str, tuple[int, str]] = {}
        self._unrecorded_lock = threading.Lock()

    def start(self) -> int:
        """Requeue orphaned jobs and start the threads; returns the number requeued."""
        requeued = self._requeue(is_orphan)
        if requeued:
            logger.info("%d unfinished job(s) from an earlier run handled", requeued)
        self._next_sweep = time.monotonic() + self.heartbeat_interval_s
        self._stop.clear()
        for index in range(self.count):
            thread = threading.Thread(
                target=self._loop, args=(index,), name=f"mammocad-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._wake.set()
        return requeued

    def requeue_stale(self) -> int:
        """Requeue running jobs whose heartbeat stopped, on any host; returns their number.

        Only the heartbeat counts here: the host/pid rules of :func:`is_orphan` hold at start,
        when this process runs no job yet (while it runs, its own pid names live workers).
        """
        return self._requeue(_never)

    def _requeue(self, orphan: Callable[[str | None], bool]) -> int:
        with transaction(self.sessions) as session:
            stale = timedelta(seconds=MISSED_HEARTBEATS * self.heartbeat_interval_s)
            return requeue_orphans(
                session,
                is_orphan=orphan,
                max_attempts=MAX_ATTEMPTS,
                stale_before=database_now(session) - stale,
            )

    def notify(self) -> None:
        """A job was queued: wake an idle worker now rather than at its next poll."""
        self._wake.set()

    def submit(self, job_id: str) -> None:
        """The job is in the table already; the workers take jobs oldest first."""
        self.notify()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the threads to stop after their current job and wait up to ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def run_once(self, index: int = 0) -> bool:
        """Claim and run one job; ``False`` when the queue was empty."""
        with transaction(self.sessions) as session:
            job = claim_next_job(session, worker=worker_name(index))
            claimed = None if job is None else (job.id, job.attempts)
        if claimed is None:
            return False
        job_id, attempt = claimed
        done = threading.Event()
        threading.Thread(
            target=self._beat, args=(job_id, attempt, done), name=f"{job_id}-heartbeat", daemon=True
        ).start()
        try:
            self.runner.run(job_id, attempt=attempt)
        except Exception as error:  # e.g. the database went away while saving the result
            logger.exception("job %s failed outside its stages", job_id)
            self._record_failure(job_id, attempt, error)
        finally:
            done.set()  # a beat still on its way changes nothing: it needs the job running
        return True

    def _beat(self, job_id: str, attempt: int, done: threading.Event) -> None:
        """Refresh the heartbeat of ``job_id`` every interval until ``done`` or until the
        job is no longer this attempt's."""
        while not done.wait(self.heartbeat_interval_s):
            try:
                with transaction(self.sessions) as session:
                    if not record_heartbeat(session, job_id, attempt=attempt):
                        return
            except Exception:  # the database is away: the next beat may get through
                logger.warning("could not record the heartbeat of job %s", job_id, exc_info=True)

    def _record_failure(self, job_id: str, attempt: int, error: Exception) -> None:
        text = (
            f"the job could not be completed ({type(error).__name__}: {error}); "
            "upload the study again to retry"
        )
        if not self._write_failure(job_id, attempt, text):
            with self._unrecorded_lock:
                self._unrecorded[job_id] = (attempt, text)

    def _write_failure(self, job_id: str, attempt: int, text: str) -> bool:
        """Mark the job failed unless it ended or was taken over meanwhile; ``False`` when
        the database could not be written."""
        try:
            self.runner.fail(job_id, text, attempt=attempt)
        except Exception:
            logger.exception("could not record the failure of job %s; will try again", job_id)
            return False
        return True

    def _retry_unrecorded(self) -> None:
        with self._unrecorded_lock:
            pending = dict(self._unrecorded)
        for job_id, (attempt, text) in pending.items():
            if self._write_failure(job_id, attempt, text):
                with self._unrecorded_lock:
                    self._unrecorded.pop(job_id, None)

    def _sweep_due(self) -> bool:
        """Whether this thread sweeps for stale jobs now: one thread of the process, once per
        heartbeat interval (a query on the few running jobs)."""
        with self._sweep_lock:
            now = time.monotonic()
            if now < self._next_sweep:
                return False
            self._next_sweep = now + self.heartbeat_interval_s
            return True

    def _loop(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                self._retry_unrecorded()
                if self._sweep_due():
                    self.requeue_stale()
                busy = self.run_once(index)
            except Exception:  # the database is down: keep the thread, try again later
                logger.exception("worker %d could not read the job queue", index)
                busy = False
            if not busy:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()
