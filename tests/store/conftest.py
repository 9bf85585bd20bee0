"""Fixtures of the database tests: an empty database on SQLite and on PostgreSQL (a fresh
database, dropped afterwards; skipped when no server answers on 127.0.0.1:5432)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mammocad.store.session import database_url

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield database_url(data_dir=tmp_path / "data")
        return
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, connect_timeout=3, autocommit=True)
    except Exception as error:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({type(error).__name__}: {error})")
    name = f"mammocad_migrate_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(
            data_dir=tmp_path, override=f"postgresql://postgres@127.0.0.1:5432/{name}"
        )
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
