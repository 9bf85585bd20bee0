"""The database job queue: a restart finishes what the last process left, a job whose
worker's heartbeat stopped is taken again from any host, a failing stage fails its job with a
sentence, and a study being analysed cannot be deleted."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from mammocad.jobs.inprocess import MAX_ATTEMPTS, InProcessWorkers, boot_id, is_orphan
from mammocad.jobs.runner import JobRunner
from mammocad.jobs.stages import StudyContext
from mammocad.pipeline import Pipeline
from mammocad.serve import create_app
from mammocad.store.models import Job, JobStatus, Study, as_utc, utcnow
from mammocad.store.repository import claim_next_job
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


def app_workers(api: Api, **intervals: float) -> InProcessWorkers:
    """In-process workers like the app's (its database and runner), with ``intervals``."""
    state = api.client.app.state.mammocad  # type: ignore[attr-defined]
    return InProcessWorkers(sessions=state.sessions, runner=state.workers.runner, **intervals)


def read_job(api: Api, job_id: str) -> dict[str, Any]:
    state = api.client.app.state.mammocad  # type: ignore[attr-defined]
    with transaction(state.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return {
            "status": job.status,
            "worker": job.worker,
            "attempts": job.attempts,
            "stage": job.stage,
            "error": job.error,
            "heartbeat_at": job.heartbeat_at,
            "result": job.study.result,
        }


#: another host's worker (a recreated container: another hostname, the same kernel boot):
#: its process cannot be checked from here, only its heartbeat tells whether it lives
OTHER_HOST = f"3f9a1c0e7b2d:1:0:{boot_id()}"


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


def test_a_job_a_recreated_container_left_running_is_analysed_at_start(
    tmp_path: Path, pipeline: Pipeline, database: str | None, phantom_study: Path
) -> None:
    """``docker compose up --force-recreate``: the new container has another hostname (its id)
    and the same boot id, so the job the old container left running named another host and
    was left alone for good; uploading the study again answered that job. The old container's
    heartbeat stopped with it."""
    settings = settings_for(tmp_path / "data", database)
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        long_ago = utcnow() - timedelta(hours=1)
        set_job(api, body["job_id"], status="running", worker=OTHER_HOST, attempts=1)
        set_job(api, body["job_id"], started_at=long_ago, heartbeat_at=long_ago)  # then died
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        api = Api(client=client, settings=settings, key=key)
        job = api.wait(body["location"])
        assert job["status"] == "done" and job["attempts"] == 2, job


def test_a_live_service_takes_a_job_whose_heartbeat_stopped_not_a_beating_one(
    tmp_path: Path, pipeline: Pipeline, database: str | None, phantom_study: Path
) -> None:
    """A job running on another live host (its heartbeat fresh) is never taken, at start or
    by the polling loop; once its heartbeat stops (that container is gone), a running service
    takes it without a restart."""
    settings = settings_for(tmp_path / "data", database)
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        job_id = body["job_id"]
        set_job(api, job_id, status="running", worker=OTHER_HOST, attempts=1, heartbeat_at=utcnow())
        beating = app_workers(api, heartbeat_interval_s=60.0)
        assert beating.start() == 0 and beating.requeue_stale() == 0
        beating.stop()
        assert read_job(api, job_id)["status"] == "running"
        # the other host keeps beating, ahead of every cutoff of these short intervals ...
        set_job(api, job_id, heartbeat_at=utcnow() + timedelta(hours=1))
        workers = app_workers(api, poll_interval_s=0.05, heartbeat_interval_s=0.05)
        assert workers.start() == 0
        try:
            assert read_job(api, job_id)["worker"] == OTHER_HOST
            set_job(api, job_id, heartbeat_at=utcnow() - timedelta(hours=1))  # ... then died
            job = api.wait(body["location"])
        finally:
            workers.stop()
        assert job["status"] == "done" and job["attempts"] == 2, job


HALF_HOUR = timedelta(minutes=30)


class WaitForHeartbeat:
    """A stage that takes "an hour" (it sets its job's heartbeat an hour back) and ends once
    the worker has refreshed the heartbeat, which a long stage on CPU must do."""

    name = "decode"
    queue = "cpu"

    def __init__(self, api: Api, job_id: str) -> None:
        self.api, self.job_id = api, job_id

    def run(self, context: StudyContext) -> None:
        set_job(self.api, self.job_id, heartbeat_at=utcnow() - timedelta(hours=1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if as_utc(read_job(self.api, self.job_id)["heartbeat_at"]) > utcnow() - HALF_HOUR:
                return
        raise RuntimeError("the heartbeat was not refreshed")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_running_job_keeps_its_heartbeat_fresh(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, database: str | None
) -> None:
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        workers = app_workers(api, heartbeat_interval_s=0.05)
        stages = workers.runner.stages
        workers.runner = JobRunner(
            sessions=workers.sessions,
            data_dir=settings.data_dir,
            stages=[WaitForHeartbeat(api, body["job_id"]), *stages],
        )
        assert workers.run_once()
        job = client.get(body["location"], headers=api.auth).json()
        assert job["status"] == "done" and job["attempts"] == 1, job


class TakeOver:
    """Where it stands among the stages, the worker's heartbeat is found stale (the process
    froze, or lost the database for minutes) and the job is taken by another worker; then the
    stale worker wakes up: it goes on, or its stage fails."""

    name = "analyze"
    queue = "gpu"

    def __init__(self, api: Api, job_id: str, *, then_fail: bool) -> None:
        self.api, self.job_id, self.then_fail = api, job_id, then_fail

    def run(self, context: StudyContext) -> None:
        set_job(self.api, self.job_id, heartbeat_at=utcnow() - timedelta(hours=1))
        assert app_workers(self.api).requeue_stale() == 1
        state = self.api.client.app.state.mammocad  # type: ignore[attr-defined]
        with transaction(state.sessions) as session:
            job = claim_next_job(session, worker="new-host:7:0")
            assert job is not None and job.attempts == 2
        if self.then_fail:
            raise RuntimeError("woke up to a closed connection")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["before report", "after report", "failing"])
def test_a_worker_whose_job_was_taken_over_writes_nothing_more(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, database: str | None, where: str
) -> None:
    """The stale worker must not record its next stage on the new run, store its result (the
    job done while the new run goes on), nor fail the new run; the new run finishes once."""
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        job_id = api.upload(dicoms(phantom_study)).json()["job_id"]
        decode, analyze, report = app_workers(api).runner.stages
        take_over = TakeOver(api, job_id, then_fail=where == "failing")
        stages = {
            "before report": [decode, analyze, take_over, report],
            "after report": [decode, analyze, report, take_over],
            "failing": [decode, take_over, analyze, report],
        }[where]
        state = client.app.state.mammocad  # type: ignore[attr-defined]
        with transaction(state.sessions) as session:
            claimed = claim_next_job(session, worker=OTHER_HOST)
            assert claimed is not None and claimed.attempts == 1
        stale = JobRunner(sessions=state.sessions, data_dir=settings.data_dir, stages=stages)
        assert not stale.run(job_id, attempt=1)
        job = read_job(api, job_id)
        assert job["status"] == "running" and job["worker"] == "new-host:7:0", job
        assert job["attempts"] == 2 and job["stage"] is None and job["error"] is None, job
        assert job["result"] is None
        assert state.workers.runner.run(job_id, attempt=2)  # the new run
        body = client.get(f"/api/v1/jobs/{job_id}", headers=api.auth).json()
        assert body["status"] == "done" and body["attempts"] == 2 and body["error"] is None
