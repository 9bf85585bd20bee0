"""A `gpu` worker SIGKILLed in the middle of a study's analyze stage: Redis hands the stage to
a replacement worker after the visibility timeout and the study completes exactly once (one
result, attempts == 2, nothing left in the broker). Real Redis on 127.0.0.1:6379 and real
`mammocad worker` processes; skipped when Redis or Celery is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mammocad.pipeline import Pipeline
from mammocad.serve import create_app
from mammocad.store.models import Finding, Job, JobStatus, Result
from mammocad.store.session import database_url, make_engine, session_factory

from .conftest import Api, dicoms, make_key, queued_job, settings_for
from .test_celery import _stop, broker_url  # noqa: F401 - broker_url is a fixture

redis = pytest.importorskip("redis")

#: small enough for a test, longer than the replacement's whole analyze task (model load too)
VISIBILITY_TIMEOUT_S = 12
#: the killed worker's analyze stage sleeps this long first: the test kills it meanwhile
SLOW_ANALYZE_S = 120

# Test-only hook, in the killed worker's process only: ``python -c SLOW_WORKER worker ...``
# runs the ordinary CLI after making AnalyzeStage.run sleep first (the pool child inherits
# the patch through fork). Nothing in the library changes.
SLOW_WORKER = f"""
import time
from mammocad.jobs import stages
from mammocad.cli import app

_run = stages.AnalyzeStage.run

def _slow_run(self, context):
    time.sleep({SLOW_ANALYZE_S})
    _run(self, context)

stages.AnalyzeStage.run = _slow_run
app()
"""


def _worker(queues: str, env: dict[str, str], log: Path, *, slow: bool) -> subprocess.Popen[bytes]:
    """A `mammocad worker` in its own process group (so the pool child dies with it)."""
    boot = ["-c", SLOW_WORKER] if slow else ["-m", "mammocad.cli"]
    return subprocess.Popen(
        [sys.executable, *boot, "worker", "--queues", queues],
        cwd=log.parent,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_analyze(api: Api, location: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.client.get(location, headers=api.auth).json()
        if job["stage"] == "analyze" and job["status"] == "running":
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    raise AssertionError(f"the analyze stage did not start within {timeout_s} s")


def _broker_leftovers(url: str) -> dict[str, int]:
    """Non-empty queues and unacknowledged messages left in the test's Redis database."""
    client = redis.Redis.from_url(url)
    left = {key.decode(): int(client.llen(key)) for key in client.scan_iter(_type="list")}
    left["unacked"] = int(client.hlen("unacked"))
    return {key: count for key, count in left.items() if count}


def _rows(settings: Any, study_uid: str) -> tuple[int, int, list[str]]:
    """(result rows, finding rows, status of every job) of the study, from the database."""
    engine = make_engine(database_url(data_dir=settings.data_dir))
    try:
        with session_factory(engine)() as session:
            jobs = session.scalars(select(Job)).all()
            mine = [job for job in jobs if job.study.study_instance_uid == study_uid]
            study_id = mine[0].study_id
            results = session.scalar(
                select(func.count()).select_from(Result).where(Result.study_id == study_id)
            )
            findings = session.scalar(
                select(func.count()).select_from(Finding).where(Finding.study_id == study_id)
            )
            return int(results or 0), int(findings or 0), [job.status for job in jobs]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_gpu_worker_killed_mid_study_the_study_completes_once(
    tmp_path: Path,
    broker_url: str,  # noqa: F811 - the fixture imported above
    tiny_bundle: Path,
    pipeline: Pipeline,
    phantom_study: Path,
) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "MAMMOCAD_BROKER_URL": broker_url,
        "MAMMOCAD_BROKER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "MAMMOCAD_DATA_DIR": str(data),
        "MAMMOCAD_MODEL": str(tiny_bundle),
        "MAMMOCAD_THREADS": "1",
    }
    env.pop("MAMMOCAD_DATABASE_URL", None)
    settings = settings_for(data, broker_url=broker_url)
    key = make_key(settings)  # also creates the database before the workers start
    logs = {name: tmp_path / f"{name}.log" for name in ("cpu", "gpu-killed", "gpu-spare")}
    workers = {
        "cpu": _worker("cpu", env, logs["cpu"], slow=False),
        "gpu-killed": _worker("gpu", env, logs["gpu-killed"], slow=True),
    }

    def tails() -> dict[str, str]:
        return {name: log.read_text()[-2500:] for name, log in logs.items() if log.exists()}

    try:
        with TestClient(create_app(settings, pipeline=pipeline)) as client:
            api = Api(client=client, settings=settings, key=key)
            uploaded = api.upload(dicoms(phantom_study))
            assert uploaded.status_code == 202, uploaded.text
            location = uploaded.json()["location"]
            running = _wait_for_analyze(api, location, timeout_s=120)
            pid = int(running["worker"].split(":")[-2])  # host:pid:celery, the pool child
            assert os.getpgid(pid) == workers["gpu-killed"].pid, (running, tails())
            assert running["attempts"] == 1

            os.killpg(workers["gpu-killed"].pid, signal.SIGKILL)  # parent and pool child
            assert workers["gpu-killed"].wait(timeout=10) == -signal.SIGKILL
            killed_at = time.monotonic()
            workers["gpu-spare"] = _worker("gpu", env, logs["gpu-spare"], slow=False)

            job = api.wait(location, timeout_s=VISIBILITY_TIMEOUT_S + 120)
            assert job["status"] == "done", (job, tails())
            # redelivered only once the visibility timeout passed, by the sweep of a live worker
            assert time.monotonic() - killed_at < VISIBILITY_TIMEOUT_S + 90
            assert job["attempts"] == 2, (job, tails())
            assert job["error"] is None and job["stage"] is None
            assert {"decode", "analyze", "report", "total"} <= set(job["stage_timings_ms"])
            study = client.get(job["study_url"], headers=api.auth).json()
            assert study["status"] == "done" and study["result"] == job["result"]
            ids = [f["id"] for image in job["result"]["images"] for f in image["findings"]]
            assert len(ids) == len(set(ids))
            rows = _rows(settings, study["study_instance_uid"])
            assert rows == (1, len(ids), [JobStatus.DONE.value])
            assert len(list(data.glob("studies/*/result.json"))) == 1
            assert not any((data / "jobs").iterdir()), "a stage hand-off was left behind"
            assert _broker_leftovers(broker_url) == {}
    finally:
        for process in workers.values():
            if process.poll() is None:
                _stop(process)
    spare = logs["gpu-spare"].read_text()
    assert "stage.analyze[" in logs["gpu-killed"].read_text()
    assert "stage.analyze[" in spare and "succeeded" in spare


def test_redelivered_stages_run_once(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    """The stage worker's guards, without a broker: a redelivered stage counts an attempt, a
    stale one (its job moved on or ended) does nothing, and one result is stored."""
    from mammocad.jobs.distributed import StageWorker
    from mammocad.jobs.stages import StudyContext

    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = StageWorker(
            database_url=database_url(data_dir=settings.data_dir),
            data_dir=settings.data_dir,
            load_pipeline=lambda: pipeline,
            time_limit_s=3600,
        )

        def job() -> dict[str, Any]:
            body: dict[str, Any] = client.get(location, headers=api.auth).json()
            return body

        worker.run("decode", job_id)
        worker.runner.enter(job_id, "analyze", {})  # an analyze whose worker then died
        worker.run("analyze", job_id)  # its redelivery
        assert (job()["stage"], job()["attempts"]) == ("analyze", 2)
        worker.run("analyze", job_id, retried=True)  # a Celery retry is not a new attempt
        assert job()["attempts"] == 2
        worker.runner.enter(job_id, "report", {})
        worker.run("decode", job_id)  # stale: the job is past decode
        worker.run("analyze", job_id)
        assert (job()["stage"], job()["attempts"], job()["status"]) == ("report", 2, "running")
        worker.run("report", job_id)  # the report entered above never finished: attempt 3
        done = job()
        assert done["status"] == "done" and done["attempts"] == 3
        uid = done["study_instance_uid"]
        worker._save(job_id, StudyContext(study_instance_uid=uid, data_dir=settings.data_dir))
        worker.run("report", job_id)  # delivered twice: stores nothing, drops the hand-off
        worker.run("analyze", job_id)
        assert job() == done
        assert not worker.context_path(job_id).exists()
        assert _rows(settings, uid)[0] == 1


def test_visibility_timeout_follows_the_time_limit_or_the_setting() -> None:
    from mammocad.jobs.distributed import make_celery

    default = make_celery(broker_url="redis://127.0.0.1:6379/15", time_limit_s=900)
    options = default.conf.broker_transport_options
    # longer than the hard limit (900 + 30 s), swept every minute instead of kombu's 100 s
    assert options["visibility_timeout"] == 960 and options["visibility_timeout"] < 3600
    assert options["unacked_restore_interval"] == 60
    assert options["unacked_restore_throttle"] == 1
    short = make_celery(
        broker_url="redis://127.0.0.1:6379/15", time_limit_s=60, visibility_timeout_s=12
    )
    assert short.conf.broker_transport_options["visibility_timeout"] == 12
    assert short.conf.broker_transport_options["unacked_restore_interval"] == 1
    default.close()
    short.close()
    settings = settings_for(Path("unused"), broker_visibility_timeout_s=30)
    assert settings.broker_visibility_timeout_s == 30
