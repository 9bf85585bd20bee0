"""Alembic: upgrade from an empty database creates every table, matches the ORM models
exactly, and downgrades cleanly — on SQLite and on PostgreSQL (fresh database, dropped)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from mammocad.store.models import Base
from mammocad.store.session import database_url, make_engine, upgrade

TABLES = {
    "studies",
    "images",
    "jobs",
    "results",
    "findings",
    "feedback",
    "api_keys",
    "model_versions",
    "audit_log",
}


def test_upgrade_from_empty_creates_the_models_schema(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables == TABLES | {"alembic_version"}
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() == "0004"
            differences = compare_metadata(context, Base.metadata)
        assert differences == [], "the models changed without a migration"
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(empty_database: str) -> None:
    upgrade(empty_database)
    upgrade(empty_database)  # idempotent
    from alembic import command

    from mammocad.store.session import alembic_config

    command.downgrade(alembic_config(empty_database), "base")
    engine = make_engine(empty_database)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_unreachable_database_says_what_to_check() -> None:
    from mammocad.store.session import DatabaseError

    url = database_url(data_dir=Path(), override="postgresql://u:secret@127.0.0.1:1/none")
    with pytest.raises(DatabaseError, match="MAMMOCAD_DATABASE_URL") as raised:
        upgrade(url)
    assert "secret" not in str(raised.value)


#: a process that says it is ready, waits for the go file, then upgrades the database
_STARTER = """
import pathlib, sys, time
from mammocad.store.session import upgrade
folder, url = pathlib.Path(sys.argv[1]), sys.argv[2]
(folder / sys.argv[3]).touch()
while not (folder / "go").exists():
    time.sleep(0.005)
upgrade(url)
"""


def test_processes_starting_together_all_find_the_schema(
    empty_database: str, tmp_path: Path
) -> None:
    """``docker compose up`` starts the API and a worker at once, and each upgrades the
    database at start: on a fresh PostgreSQL database all but one failed on a duplicate key
    (the version table created twice)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, str(tmp_path), empty_database, f"ready{index}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(3)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all three imported: they upgrade at once
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs


_AT = "2026-12-01 10:00:00+00:00"


def _old_rows(database: str, jobs: list[dict[str, object]], *, state: str) -> None:
    """A study (``state``) and its ``jobs`` written as an older revision's schema holds them
    (raw SQL: today's models have columns that revision lacks); each job gives ``id``,
    ``status`` and any other column of that revision."""
    from sqlalchemy import text

    engine = make_engine(database)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO studies (id, study_instance_uid, folder, state, created_at, "
                    "updated_at) VALUES (1, '1.2.3', 'studies/1.2.3', :state, :at, :at)"
                ),
                {"state": state, "at": _AT},
            )
            for job in jobs:
                row = {"study_id": 1, "stage_timings_ms": "{}", "attempts": 0, "created_at": _AT}
                row |= job
                columns = ", ".join(row)
                values = ", ".join(f":{column}" for column in row)
                connection.execute(text(f"INSERT INTO jobs ({columns}) VALUES ({values})"), row)
    finally:
        engine.dispose()


def _job_column(database: str, column: str) -> dict[str, object]:
    """Job id → ``column`` after the upgrade."""
    from sqlalchemy import text

    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(text(f"SELECT id, {column} FROM jobs")).all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_jobs_from_before_0003_count_as_sent_to_the_broker(empty_database: str) -> None:
    """0003 records when a job was sent to the Celery broker, and the service sends every
    queued job never sent: a job queued before the upgrade may have its message waiting in
    the broker already, and must not be sent a second time."""
    upgrade(empty_database, "0002")
    _old_rows(empty_database, [{"id": "old", "status": "queued"}], state="queued")
    upgrade(empty_database)
    assert _job_column(empty_database, "dispatched_at")["old"] is not None


def test_jobs_running_before_0004_in_process_count_as_beating_at_their_start(
    empty_database: str,
) -> None:
    """0004 adds the heartbeat that frees a job a dead worker of another host (a recreated
    container) left running. A job an in-process worker was running before the upgrade has
    none: it counts as having beaten when it started, so the one the container left before it
    was recreated with this version is freed too. A Celery job (sent to the broker) gets none:
    the broker redelivers it."""
    upgrade(empty_database, "0003")
    running = {"status": "running", "attempts": 1, "started_at": _AT}
    jobs = [{"id": "inprocess", **running}, {"id": "celery", **running, "dispatched_at": _AT}]
    _old_rows(empty_database, jobs, state="processing")
    upgrade(empty_database)
    beats = _job_column(empty_database, "heartbeat_at")
    assert beats["inprocess"] is not None and beats["celery"] is None


def test_a_job_running_in_process_before_0003_gets_a_heartbeat_at_the_upgrade(
    empty_database: str,
) -> None:
    """The case 0004 is for: a container running 0002 is recreated with this version (0002 →
    0004 at once) and left a job running under its old hostname. 0003 must not mark that
    running job sent to a broker, or 0004 takes it for a Celery job, gives it no heartbeat,
    and it stays running for good."""
    upgrade(empty_database, "0002")
    left = {"id": "left", "status": "running", "attempts": 1, "worker": "old-container:7:0"}
    _old_rows(empty_database, [{**left, "started_at": _AT}], state="processing")
    upgrade(empty_database)
    assert _job_column(empty_database, "heartbeat_at")["left"] is not None
