"""Review of the Celery stage worker's recovery paths, driven without a broker: a stage
redelivered after its whole worker died, and Celery's own retries of a stage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _celery_tasks(worker: Any) -> Iterator[dict[str, Any]]:
    """The stage tasks of ``worker`` by stage name, on an in-memory Celery app (run them with
    ``apply``: eager, retries at once)."""
    from mammocad.jobs.distributed import TASKS, make_celery, register_tasks

    app = make_celery(broker_url="memory://", time_limit_s=3600)
    try:
        register_tasks(app, worker)
        yield {stage: app.tasks[name] for stage, name in TASKS.items()}
    finally:
        app.close()


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


def test_a_soft_time_limit_swallowed_inside_the_report_fails_the_job(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery raises its soft time limit wherever the task is; inside the report stage, whose
    pictures must not cost the result (each drawing is guarded), it was taken for a picture's
    bug: the overlay was left out and the job ended ``done``, its result stored, although it
    had run past its time limit. Earlier stages are caught by the next stage's clock; the last
    one is checked when it returns."""
    from celery.exceptions import SoftTimeLimitExceeded

    import mammocad.commands.analyze as analyze_module

    time_limit_s = 2.0
    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, 3600)
        worker.run("decode", job_id)
        worker.run("analyze", job_id)
        with transaction(worker.sessions) as session:  # the report starts a fresh clock
            job = session.get(Job, job_id)
            assert job is not None
            job.started_at = utcnow()
        worker.time_limit_s = time_limit_s
        write_png = analyze_module.write_png
        calls: list[int] = []

        def slow_then_over_the_limit(path: Any, picture: Any) -> None:
            calls.append(1)
            if len(calls) == 1:  # the limit passes while the first overlay is drawn
                time.sleep(time_limit_s + 0.2)
                raise SoftTimeLimitExceeded()
            write_png(path, picture)

        monkeypatch.setattr(analyze_module, "write_png", slow_then_over_the_limit)
        worker.run("report", job_id)
        body = client.get(location, headers=api.auth).json()
        assert len(calls) > 1  # the stage went on with the other overlays
        assert body["status"] == "failed", body
        assert "MAMMOCAD_JOB_TIME_LIMIT_S" in body["error"] and body["result"] is None
        assert not worker.context_path(job_id).exists()


def test_a_report_task_failing_after_the_result_was_stored_leaves_the_job_done(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report task stores the result, then removes the job's hand-off file; a data dir
    where that removal keeps failing (the file written by a gpu worker running as another
    user) made Celery retry the task, then give up: its failure hook marked the job failed,
    and the study ``failed``, with the result stored."""
    from mammocad.jobs.distributed import StageWorker

    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, 3600)
        worker.run("decode", job_id)
        worker.run("analyze", job_id)

        def not_permitted(self: StageWorker, job: str) -> None:
            raise PermissionError(13, "Permission denied", str(self.context_path(job)))

        monkeypatch.setattr(StageWorker, "_discard", not_permitted)
        with pytest.raises(PermissionError):
            worker.run("report", job_id)
        for _retry in range(3):  # Celery's retries (max_retries 3)
            with pytest.raises(PermissionError):
                worker.run("report", job_id, retried=True)
        with _celery_tasks(worker) as tasks:
            error = PermissionError(13, "Permission denied")
            tasks["report"].on_failure(error, "task-id", (job_id,), {}, None)
        body = client.get(location, headers=api.auth).json()
        assert body["status"] == "done" and body["result"] is not None, body
        study = client.get(body["study_url"], headers=api.auth).json()
        assert study["status"] == "done"


def test_a_database_outage_longer_than_the_retries_does_not_leave_the_job_running(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    """PostgreSQL restarting (an upgrade, a failover) for longer than the stage's retries
    (three, 1 + 2 + 4 s apart): Celery gave up, and the failure hook could not write the
    failure either. The job stayed ``running`` for good: its study could be neither analysed
    again (uploading it again answers the running job) nor deleted (409)."""
    from sqlalchemy.exc import OperationalError

    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, 3600)
        worker.run("decode", job_id)
        sessions = worker.sessions
        refused = [12]  # the next connections are refused: the server is restarting

        def restarting() -> Any:
            if refused[0] > 0:
                refused[0] -= 1
                raise OperationalError("connect", {}, ConnectionRefusedError("restarting"))
            return sessions()

        worker._sessions = restarting  # type: ignore[assignment]
        with _celery_tasks(worker) as tasks:
            tasks["analyze"].apply(args=(job_id,))  # eager: retries at once
        assert refused[0] == 0  # the server is back
        body = client.get(location, headers=api.auth).json()
        assert body["status"] == "running" and body["stage"] == "analyze", body
        assert body["attempts"] == 1  # Celery's retries are not new deliveries
        worker.run("report", job_id)
        assert client.get(location, headers=api.auth).json()["status"] == "done"


def test_a_statement_the_database_refuses_is_not_retried_for_ever(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy's OperationalError is not only a database that cannot be reached: SQLite
    reports a statement it refuses ("no such column": a worker of another version than the
    schema) as one too. Retried as an outage, with no bound, the task ran again every 60 s
    for ever and its job stayed ``running``; it is bounded like a file-system error."""
    from sqlalchemy import text

    from mammocad.jobs.distributed import (
        FILE_RETRIES,
        StageWorker,
    )

    with queued_job(tmp_path / "data", pipeline, phantom_study) as (api, location, job_id):
        client, settings = api.client, api.settings
        worker = _stage_worker(settings, pipeline, 3600)
        worker.run("decode", job_id)
        calls: list[int] = []

        class Refused:
            def run(self, context: Any) -> None:
                calls.append(1)
                if len(calls) > 10:  # the test's own bound: give up some other way
                    raise RuntimeError("still retrying")
                with transaction(worker.sessions) as session:
                    session.execute(text("SELECT no_such_column FROM jobs"))

        monkeypatch.setattr(StageWorker, "stage", lambda self, name: Refused())
        with _celery_tasks(worker) as tasks:
            tasks["analyze"].apply(args=(job_id,))  # eager: retries at once
        assert len(calls) == FILE_RETRIES + 1
        body = client.get(location, headers=api.auth).json()
        assert body["status"] == "failed" and "no_such_column" in body["error"], body


def test_a_job_handed_off_twice_is_analysed_once(
    tmp_path: Path, pipeline: Pipeline, phantom_study: Path
) -> None:
    """The API's sweep sends a queued job whose send is not recorded; the process that sent
    it may have died between the send and the record, so a job can have two chains. The
    second, whether it comes while the first waits for the gpu queue or after the first
    ended, leaves the job done once, with the first result."""
    from mammocad.jobs.distributed import job_chain

    with queued_job(tmp_path / "late", pipeline, phantom_study) as (api, location, job_id):
        worker = _stage_worker(api.settings, pipeline, 3600)
        with _celery_tasks(worker) as tasks:
            job_chain(tasks["decode"].app, job_id).apply()
            first = api.client.get(location, headers=api.auth).json()
            assert first["status"] == "done", first
            job_chain(tasks["decode"].app, job_id).apply()  # the second chain does nothing
        body = api.client.get(location, headers=api.auth).json()
        assert body["status"] == "done" and body["attempts"] == 1, body
        assert body["result"] == first["result"] and body["finished_at"] == first["finished_at"]
    with queued_job(tmp_path / "early", pipeline, phantom_study) as (api, location, job_id):
        worker = _stage_worker(api.settings, pipeline, 3600)
        worker.run("decode", job_id)
        worker.run("decode", job_id)  # the second chain, while the first waits for a gpu
        for stage in ("analyze", "report", "analyze", "report"):  # each queue in its order
            worker.run(stage, job_id)
        body = api.client.get(location, headers=api.auth).json()
        assert body["status"] == "done" and body["error"] is None, body
        assert not worker.context_path(job_id).exists()


def test_job_errors_name_no_path_on_the_server(tmp_path: Path) -> None:
    # a job's error reaches every client of the worklist: the decode stage named the study's
    # upload folder and an unexpected OSError its file, both paths of the server (CWE-497)
    from mammocad.jobs.runner import failure_text
    from mammocad.jobs.stages import DecodeStage, StageError, StudyContext

    data_dir = tmp_path / "secret-data-dir"
    context = StudyContext(study_instance_uid="1.2.3", data_dir=data_dir)
    with pytest.raises(StageError) as gone:
        DecodeStage().run(context)
    missing = FileNotFoundError(2, "No such file or directory", str(data_dir / "x.png"))
    for text in (failure_text("decode", gone.value), failure_text("report", missing)):
        assert "secret-data-dir" not in text, text
    assert "No such file or directory" in failure_text("report", missing)
