"""What the app holds for its lifetime: settings, database, model and workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mammocad.jobs.queue import JobQueue
from mammocad.pipeline import Pipeline
from mammocad.serve.settings import Settings


@dataclass(slots=True, kw_only=True)
class AppState:
    """Built by the app's start-up (``serve.app.lifespan``); ``pipeline`` and ``workers`` are
    ``None`` until the model is loaded and the workers run."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pipeline: Pipeline | None = None
    workers: JobQueue | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    model_version_id: int | None = None
    #: key name → (the worklist page it last listed, time.monotonic() of its audit row): the
    #: web UI refreshes the worklist every 5 s, and the same page seen again within
    #: ``WORKLIST_AUDIT_REPEAT_S`` adds nothing to the audit log
    listed: dict[str, tuple[str, float]] = field(default_factory=dict)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.mammocad
    return state
