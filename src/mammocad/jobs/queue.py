"""What the API needs from whatever runs the jobs: in-process threads or Celery workers."""

from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    """Runs queued jobs (rows of the ``jobs`` table) to completion."""

    def start(self) -> int:
        """Begin taking jobs; returns how many unfinished jobs were picked up again."""
        ...

    def submit(self, job_id: str) -> None:
        """Job ``job_id`` was committed as queued: run it."""
        ...

    def stop(self, timeout_s: float = 30.0) -> None: ...

    @property
    def alive(self) -> bool:
        """Whether jobs can run now (for ``/health/ready``)."""
        ...
