"""Engine, sessions and schema migrations of the service database.

SQLite (``<data-dir>/mammocad.db``) by default, PostgreSQL with a ``postgresql://`` URL. The
schema is created and upgraded only by Alembic (``upgrade``), never by ``create_all``, so a
database made by one version is upgraded in place by the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mammocad.errors import MammocadError

DATABASE_FILE = "mammocad.db"


class DatabaseError(MammocadError):
    """The database cannot be reached or migrated."""


def database_url(*, data_dir: Path, override: str | None = None) -> str:
    """``override`` (``MAMMOCAD_DATABASE_URL``) or the SQLite file in ``data_dir``.

    ``postgresql://`` URLs get the psycopg 3 driver (the one mammocad installs).
    """
    if override:
        url = make_url(override)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # cascades are declared in the schema; SQLite ignores them unless asked
    cursor.execute("PRAGMA foreign_keys=ON")
    # API threads read while a worker writes: WAL lets readers go on during a write
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for ``url``; SQLite connections get foreign keys, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {"check_same_thread": False, "timeout": 10})
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **options)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    """Alembic configuration of the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(files("mammocad.store") / "migrations"))
    # '%' is interpolation syntax in the ini layer below Config
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """One migration at a time per SQLite file: serve, worker and dicom-node each upgrade at
    start, and started together on a fresh database each created the version table (all but
    one failed). PostgreSQL takes an advisory lock inside the migration (``migrations/env.py``);
    a file lock beside the database does it for SQLite, which only one machine opens."""
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".migrate.lock")):
        yield


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at ``url`` to ``revision``.

    Raises:
        DatabaseError: the database cannot be reached (the message names the URL without its
            password).
    """
    try:
        with _migration_lock(url):
            command.upgrade(alembic_config(url), revision)
    except Exception as error:
        shown = make_url(url).render_as_string(hide_password=True)
        raise DatabaseError(
            f"could not migrate the database at {shown} ({type(error).__name__}: {error}); "
            "check MAMMOCAD_DATABASE_URL and that the server is running"
        ) from error
