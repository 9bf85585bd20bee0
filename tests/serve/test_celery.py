"""The Celery path: the API hands jobs to real `mammocad worker` processes (queues cpu and
gpu) through the real Redis on 127.0.0.1:6379; skipped when Redis or Celery is missing."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mammocad.pipeline import Pipeline
from mammocad.report.schema import validation_errors
from mammocad.serve import create_app

from .conftest import Api, dicoms, make_key, settings_for

celery = pytest.importorskip("celery")
redis = pytest.importorskip("redis")


@pytest.fixture
def broker_url() -> Iterator[str]:
    """An empty Redis database (8-15) of the local server, emptied again afterwards."""
    try:
        probe = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
        probe.ping()
    except Exception as error:
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({type(error).__name__}: {error})")
    for index in range(15, 7, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=index)
        if client.dbsize() == 0:
            yield f"redis://127.0.0.1:6379/{index}"
            client.flushdb()
            return
    pytest.skip("no empty Redis database among 8-15 to use")


def test_celery_settings(broker_url: str) -> None:
    from mammocad.jobs.distributed import TASKS, make_celery

    app = make_celery(broker_url=broker_url, time_limit_s=120)
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_soft_time_limit == 120 and app.conf.task_time_limit == 150
    routes = app.conf.task_routes
    assert routes[TASKS["decode"]] == {"queue": "cpu"}
    assert routes[TASKS["analyze"]] == {"queue": "gpu"}
    assert routes[TASKS["report"]] == {"queue": "cpu"}
    app.close()


def test_a_study_over_its_time_limit_fails(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    """The stage worker's own clock, without a broker: the limit spans the whole study."""
    from mammocad.jobs.distributed import StageWorker
    from mammocad.store.session import database_url

    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        worker = StageWorker(
            database_url=database_url(data_dir=settings.data_dir),
            data_dir=settings.data_dir,
            load_pipeline=lambda: pipeline,
            time_limit_s=3600,
        )
        worker.run("decode", body["job_id"])
        assert worker.context_path(body["job_id"]).is_file()
        worker.time_limit_s = 0.0
        worker.run("analyze", body["job_id"])
        job = client.get(body["location"], headers=api.auth).json()
        assert job["status"] == "failed" and "MAMMOCAD_JOB_TIME_LIMIT_S" in job["error"]
        assert not worker.context_path(body["job_id"]).exists()
        worker.run("report", body["job_id"])  # a later stage of a failed job does nothing
        assert client.get(body["location"], headers=api.auth).json()["status"] == "failed"


def _start_worker(
    queues: str, env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mammocad.cli", "worker", "--queues", queues]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_jobs_run_on_real_celery_workers(
    tmp_path: Path,
    broker_url: str,
    tiny_bundle: Path,
    pipeline: Pipeline,
    phantom_study: Path,
) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "MAMMOCAD_BROKER_URL": broker_url,
        "MAMMOCAD_DATA_DIR": str(data),
        "MAMMOCAD_MODEL": str(tiny_bundle),
        "MAMMOCAD_THREADS": "1",
    }
    env.pop("MAMMOCAD_DATABASE_URL", None)
    settings = settings_for(data, broker_url=broker_url)
    key = make_key(settings)  # also creates the database before the workers start
    logs = {queue: tmp_path / f"worker-{queue}.log" for queue in ("cpu", "gpu")}
    workers = [_start_worker(queue, env, tmp_path, log) for queue, log in logs.items()]
    try:
        with TestClient(create_app(settings, pipeline=pipeline)) as client:
            api = Api(client=client, settings=settings, key=key)
            ready = client.get("/health/ready").json()
            assert ready["checks"]["workers"] == "ok", ready
            uploaded = api.upload(dicoms(phantom_study))
            assert uploaded.status_code == 202, uploaded.text
            job = api.wait(uploaded.json()["location"], timeout_s=240)
            assert job["status"] == "done", (
                job,
                [log.read_text()[-3000:] for log in logs.values()],
            )
            assert {"decode", "analyze", "report", "total"} <= set(job["stage_timings_ms"])
            assert job["worker"].endswith(":celery")
            assert validation_errors(job["result"]) == []
            study = client.get(job["study_url"], headers=api.auth).json()
            overlay = client.get(study["images"][0]["overlay_url"], headers=api.auth)
            assert overlay.status_code == 200
            assert not any((data / "jobs").iterdir())  # stage hand-offs cleaned up
    finally:
        for process in workers:
            _stop(process)
    cpu_log, gpu_log = logs["cpu"].read_text(), logs["gpu"].read_text()
    # "Task <name>[<id>] received": each stage ran on its queue's worker
    assert "stage.decode[" in cpu_log and "stage.report[" in cpu_log
    assert "stage.analyze[" not in cpu_log
    assert "stage.analyze[" in gpu_log and "stage.decode[" not in gpu_log


def test_unreachable_broker_is_503_and_the_upload_can_be_retried(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    settings = settings_for(tmp_path / "data", broker_url="redis://127.0.0.1:1/0")
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        api = Api(client=client, settings=settings, key=key)
        assert client.get("/health/ready").status_code == 503
        refused = api.upload(dicoms(phantom_study))
        assert refused.status_code == 503 and refused.json()["code"] == "queue_unavailable"
        assert "MAMMOCAD_BROKER_URL" in refused.json()["detail"]
        study = client.get("/api/v1/studies", headers=api.auth).json()["items"][0]
        assert study["status"] == "failed"


def _waiting_jobs(broker_url: str) -> list[str]:
    """The job ids of the chains waiting in the broker (their decode tasks on queue ``cpu``),
    oldest first."""
    client = redis.Redis.from_url(broker_url)
    messages = [json.loads(raw) for raw in reversed(client.lrange("cpu", 0, -1))]
    # kombu's Redis transport: a base64 body [args, kwargs, embed]; LPUSH puts the newest first
    return [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]


def test_a_job_never_sent_to_the_broker_is_sent_when_the_service_starts(
    tmp_path: Path,
    broker_url: str,
    database: str | None,
    pipeline: Pipeline,
    phantom_study: Path,
    second_study: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API committed the job as queued and died before sending it to the broker: no
    worker ever got it, and uploading the study again answered the same queued job. The next
    start sends it; a job sent once is not sent again by later starts."""
    import mammocad.serve.intake as intake

    settings = settings_for(tmp_path / "data", database, broker_url=broker_url)
    key = make_key(settings)
    with monkeypatch.context() as patch:
        patch.setattr(intake, "_submit", lambda *args: None)  # died after the commit
        with TestClient(create_app(settings, pipeline=pipeline)) as client:
            api = Api(client=client, settings=settings, key=key)
            lost = api.upload(dicoms(phantom_study)).json()["job_id"]
    assert _waiting_jobs(broker_url) == []
    with TestClient(create_app(settings, pipeline=pipeline)) as client:  # the restart
        assert _waiting_jobs(broker_url) == [lost]
        api = Api(client=client, settings=settings, key=key)
        again = api.upload(dicoms(phantom_study)).json()
        assert again["job_id"] == lost and again["status"] == "queued"
        second = api.upload(dicoms(second_study)).json()["job_id"]
        assert _waiting_jobs(broker_url) == [lost, second]
    with TestClient(create_app(settings, pipeline=pipeline)):
        assert _waiting_jobs(broker_url) == [lost, second]


def test_a_job_never_sent_to_the_broker_is_sent_while_the_service_runs(
    tmp_path: Path,
    broker_url: str,
    database: str | None,
    pipeline: Pipeline,
    phantom_study: Path,
    second_study: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process on the same database (the DICOM node, a second API) died between its
    commit and its send: a running service's sweep sends the job, without a restart. A sweep
    whose broker is away leaves the job to the next one."""
    import mammocad.serve.intake as intake
    from mammocad.jobs.distributed import CeleryQueue, make_celery

    settings = settings_for(tmp_path / "data", database, broker_url=broker_url)
    key = make_key(settings)
    monkeypatch.setattr(intake, "_submit", lambda *args: None)
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        api = Api(client=client, settings=settings, key=key)
        sessions = client.app.state.mammocad.sessions
        lost = api.upload(dicoms(phantom_study)).json()["job_id"]
        away = CeleryQueue(
            app=make_celery(broker_url="redis://127.0.0.1:1/0", time_limit_s=60),
            sessions=sessions,
        )
        assert away.dispatch_lost() == 0
        away.stop()
        sweeping = CeleryQueue(
            app=make_celery(broker_url=broker_url, time_limit_s=60),
            sessions=sessions,
            sweep_interval_s=0.1,
        )
        assert sweeping.start() == 1
        try:
            assert _waiting_jobs(broker_url) == [lost]
            second = api.upload(dicoms(second_study)).json()["job_id"]
            deadline = time.monotonic() + 30
            while len(_waiting_jobs(broker_url)) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _waiting_jobs(broker_url) == [lost, second]
        finally:
            sweeping.stop()
