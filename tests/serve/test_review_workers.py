"""Review of the Celery stage worker's recovery paths, driven without a broker: a stage
redelivered after its whole worker died, and Celery's own retries of a stage."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mammocad.pipeline import Pipeline
from mammocad.store.models import Job, utcnow
from mammocad.store.session import database_url, transaction

from .conftest import queued_job


def _stage_worker(settings: Any, pipeline: Pipeline, time_limit_s: float) -> Any:
    from mammocad.jobs.distributed import StageWorker

    return StageWorker(
        database_url=database_url(data_dir=settings.data_dir),
        data_dir=settings.data_dir,
        load_pipeline=lambda: pipeline,
        time_limit_s=time_limit_s,
    )


def test_a_stage_redelivered_after_the_visibility_timeout_completes_the_job(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    """A whole worker SIGKILLed during analyze: Redis redelivers the stage only after the
    visibility timeout, which by default is the time limit + 60 s. The redelivered stage must
    run (a fresh attempt, with its own time), not fail the job as 'took longer than' the limit:
    the dead worker's wait is not the study's analysis time."""
    time_limit_s = 900.0
    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, time_limit_s)
        worker.run("decode", job_id)
        worker.runner.enter(job_id, "analyze", {})  # an analyze whose whole worker then died
        with transaction(worker.sessions) as session:  # ... and the visibility timeout passed
            job = session.get(Job, job_id)
            assert job is not None
            job.started_at = utcnow() - timedelta(seconds=time_limit_s + 60 + 5)
        worker.run("analyze", job_id)  # the redelivery, on a live worker
        worker.run("report", job_id)
        body = client.get(location, headers=api.auth).json()
        assert body["status"] == "done", body
        assert body["attempts"] == 2 and body["error"] is None


def test_a_report_redelivered_after_its_worker_died_pushing_completes_the_job(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    """The push runs inside the report task, under the job stage ``push``: the report task
    redelivered after its worker died while pushing is that task again (a fresh attempt with
    its own time), not a stage the job had already passed; it failed as 'took longer than'."""
    time_limit_s = 900.0
    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, time_limit_s)
        worker.run("decode", job_id)
        worker.run("analyze", job_id)
        worker.runner.enter(job_id, "report", {})
        worker.runner.enter(job_id, "push", {})  # the worker died while pushing
        with transaction(worker.sessions) as session:  # ... and the visibility timeout passed
            job = session.get(Job, job_id)
            assert job is not None
            job.started_at = utcnow() - timedelta(seconds=time_limit_s + 60 + 5)
        worker.run("report", job_id)  # the redelivery, on a live worker
        body = client.get(location, headers=api.auth).json()
        assert body["status"] == "done", body
        assert body["attempts"] == 2 and body["error"] is None


def test_celery_retries_of_the_decode_stage_are_not_worker_deaths(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode stage whose hand-off cannot be written (a full data dir) is retried by Celery
    (max_retries 3): each retry is the same delivery, not a dead worker's, so the last retry
    still runs, and a job that fails does not blame a worker that never stopped."""
    from mammocad.jobs.distributed import StageWorker

    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, 3600)
        original = StageWorker._save
        calls: list[int] = []

        def full_disk_three_times(self: StageWorker, job: str, context: Any) -> None:
            calls.append(1)
            if len(calls) <= 3:
                raise OSError(28, "No space left on device")
            original(self, job, context)

        monkeypatch.setattr(StageWorker, "_save", full_disk_three_times)
        with pytest.raises(OSError):
            worker.run("decode", job_id)
        for _retry in range(2):
            with pytest.raises(OSError):
                worker.run("decode", job_id, retried=True)
        worker.run("decode", job_id, retried=True)  # the third and last retry succeeds
        assert len(calls) == 4
        body = client.get(location, headers=api.auth).json()
        assert body["status"] == "running" and body["attempts"] == 1, body
        worker.run("analyze", job_id)
        worker.run("report", job_id)
        assert client.get(location, headers=api.auth).json()["status"] == "done"
