"""The database job queue: a restart finishes what the last process left, a failing stage
fails its job with a sentence, and a study being analysed cannot be deleted."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from mammocad.jobs.inprocess import MAX_ATTEMPTS, is_orphan
from mammocad.jobs.stages import StudyContext
from mammocad.pipeline import Pipeline
from mammocad.serve import create_app
from mammocad.store.models import Job, JobStatus, Study
from mammocad.store.session import database_url, make_engine, session_factory, transaction

from .conftest import Api, make_key, settings_for


def dicoms(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def set_job(api: Api, job_id: str, **values: object) -> None:
    url = database_url(data_dir=api.settings.data_dir, override=api.settings.database_url)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
    engine.dispose()


def test_orphan_detection() -> None:
    host = socket.gethostname()
    assert is_orphan(None)
    assert is_orphan(f"{host}:999999999:0")  # no such process
    assert not is_orphan("another-host:1:0")  # cannot be checked from here: left alone
    assert not is_orphan(f"{host}:1:0")  # pid 1 lives


def test_restart_finishes_unfinished_jobs(
    tmp_path: Path, pipeline: Pipeline, database: str | None, phantom_study: Path
) -> None:
    settings = settings_for(tmp_path / "data", database)
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        uploaded = api.upload(dicoms(phantom_study))
        assert uploaded.status_code == 202
        body = uploaded.json()
        uid = body["study_instance_uid"]
        # the process "died" while a worker had the job
        dead = f"{socket.gethostname()}:999999999:0"
        set_job(api, body["job_id"], status=JobStatus.RUNNING.value, worker=dead, attempts=1)
        job = client.get(body["location"], headers=api.auth).json()
        assert job["status"] == "running"
        feedback = client.post(
            f"/api/v1/studies/{uid}/feedback",
            json={"reader_id": "r", "study": {"agree": True}},
            headers=api.auth,
        )
        assert feedback.status_code == 409  # no result yet
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        api = Api(client=client, settings=settings, key=key)
        job = api.wait(body["location"])
        assert job["status"] == "done" and job["attempts"] == 2
        assert job["result"]["study_instance_uid"] == uid


def test_a_job_that_keeps_killing_its_worker_fails(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        dead = f"{socket.gethostname()}:999999999:0"
        set_job(api, body["job_id"], status="running", worker=dead, attempts=MAX_ATTEMPTS)
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        api = Api(client=client, settings=settings, key=key)
        job = client.get(body["location"], headers=api.auth).json()
        assert job["status"] == "failed" and "worker stopped" in job["error"]
        study = client.get(job["study_url"], headers=api.auth).json()
        assert study["status"] == "failed"
        # uploading again retries a failed study
        again = api.upload(dicoms(phantom_study))
        assert again.status_code == 202 and again.json()["job_id"] != body["job_id"]
        assert api.wait(again.json()["location"])["status"] == "done"


class ExplodingStage:
    name = "analyze"
    queue = "gpu"

    def run(self, context: StudyContext) -> None:
        raise RuntimeError("boom")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_failing_stage_fails_the_job_with_a_sentence(
    tmp_path: Path,
    pipeline: Pipeline,
    phantom_study: Path,
    monkeypatch: pytest.MonkeyPatch,
    database: str | None,
) -> None:
    import mammocad.serve.app as app_module
    from mammocad.jobs.stages import DecodeStage

    monkeypatch.setattr(
        app_module, "service_stages", lambda *_, **__: [DecodeStage(), ExplodingStage()]
    )
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        job = api.wait(body["location"])
        assert job["status"] == "failed" and job["result"] is None
        assert "analyze stage (RuntimeError: boom)" in job["error"]
        assert "decode" in job["stage_timings_ms"]
        assert client.get("/health/live").status_code == 200  # the server goes on


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_study_being_analysed_cannot_be_deleted(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, database: str | None
) -> None:
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        url = database_url(data_dir=settings.data_dir, override=None)
        engine = make_engine(url)
        with transaction(session_factory(engine)) as session:
            study = session.scalar(select(Study))
            assert study is not None
            study.state = "processing"
        engine.dispose()
        uid = body["study_instance_uid"]
        refused = client.delete(f"/api/v1/studies/{uid}", headers=api.auth)
        assert refused.status_code == 409 and "being analysed" in refused.json()["detail"]


def test_a_job_left_running_before_the_host_restarted_is_an_orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss: the host comes back with other processes under the old numbers, and the
    number the job's worker had may belong to a live program again (pid 1 here, which lives).
    The job was taken for running and stayed so for good: neither analysed again nor
    deletable."""
    import os

    import mammocad.jobs.inprocess as inprocess

    boot = tmp_path / "boot_id"
    boot.write_text("1f0c3a52-7b1e-4c55-9d0a-0b8e5d0f6e21\n")
    monkeypatch.setattr(inprocess, "BOOT_ID_FILE", boot)
    # the worker's name as the job recorded it, with a number another program has now
    recorded = inprocess.worker_name(0).replace(f":{os.getpid()}:", ":1:", 1)
    assert not is_orphan(recorded)  # the same boot: pid 1 is that worker, alive
    boot.write_text("9d2e77c0-31aa-4f0e-8a9b-5c7d3e2f1a10\n")  # the power came back
    assert is_orphan(recorded)
