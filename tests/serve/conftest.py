"""Fixtures of the API tests: a phantom study, a pipeline over the tiny bundle, databases
(SQLite file per test; a fresh PostgreSQL database per test, dropped at the end of the
session, skipped when no server answers on 127.0.0.1:5432) and a running app with a key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mammocad.pipeline import Pipeline
from mammocad.serve import Settings, create_app
from mammocad.store.keys import create_api_key
from mammocad.store.session import (
    database_url,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)
from mammocad.synthetic import write_studies

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small four-view phantom study (DICOM files and truth.json)."""
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("phantom"), seed=3, size="small"
    )
    return folder


@pytest.fixture(scope="session")
def second_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("phantom2"), seed=11, size="small"
    )
    return folder


@pytest.fixture(scope="session")
def pipeline(tiny_bundle: Path) -> Pipeline:
    return Pipeline.from_bundle(tiny_bundle, num_threads=1)


class PostgresServer:
    """Makes fresh databases on the local server and drops them all at the end."""

    def __init__(self) -> None:
        import psycopg

        self._psycopg = psycopg
        self.created: list[str] = []
        with psycopg.connect(PG_ADMIN, connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")

    def new_database(self) -> str:
        name = f"mammocad_test_{uuid.uuid4().hex[:12]}"
        with self._psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def drop_all(self) -> None:
        with self._psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            for name in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except Exception as error:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({type(error).__name__}: {error})")
    yield server
    server.drop_all()


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> str | None:
    """``None`` (SQLite in the data dir) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@dataclass
class Api:
    """A running app, its settings and a valid key."""

    client: TestClient
    settings: Settings
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def upload(self, paths: list[Path], **kwargs: Any) -> Any:
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
        return self.client.post("/api/v1/studies", files=files, headers=self.auth, **kwargs)

    def wait(self, location: str, timeout_s: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.client.get(location, headers=self.auth)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in ("done", "failed") or time.monotonic() > deadline:
                return body
            time.sleep(0.2)


def make_key(settings: Settings, name: str = "tests") -> str:
    url = database_url(data_dir=settings.data_dir, override=settings.database_url)
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            return create_api_key(session, name=name)
    finally:
        engine.dispose()


def settings_for(data_dir: Path, database_url_: str | None = None, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database_url=database_url_,
        **extra,
    )


@pytest.fixture
def start_api(
    tmp_path: Path, pipeline: Pipeline, database: str | None
) -> Iterator[Callable[..., Api]]:
    """``start_api(**settings)``: an app over a fresh data dir and database, with a key."""
    started: list[TestClient] = []

    def start(**extra: Any) -> Api:
        settings = settings_for(tmp_path / f"data{len(started)}", database, **extra)
        key = make_key(settings)
        client = TestClient(create_app(settings, pipeline=pipeline))
        client.__enter__()
        started.append(client)
        return Api(client=client, settings=settings, key=key)

    yield start
    for client in started:
        client.__exit__(None, None, None)


def dicoms(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


@contextmanager
def queued_job(data_dir: Path, pipeline: Pipeline, study: Path) -> Iterator[tuple[Api, str, str]]:
    """An app without workers over ``data_dir`` and ``study`` uploaded to it: the job waits
    for a test to run its stages. Yields the API, the study's location and the job id."""
    settings = settings_for(data_dir)
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        uploaded = api.upload(dicoms(study)).json()
        yield api, uploaded["location"], uploaded["job_id"]


@pytest.fixture
def idle_api(tmp_path: Path, pipeline: Pipeline, database: str | None) -> Iterator[Api]:
    """An app whose workers are not started: jobs run only when a test says so (or tests set
    the jobs' state themselves)."""
    settings = settings_for(tmp_path / "data", database)
    key = make_key(settings)
    app = create_app(settings, pipeline=pipeline, start_workers=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, settings=settings, key=key)
