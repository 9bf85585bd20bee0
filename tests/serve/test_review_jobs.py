"""Review of the database job queue: two jobs of one study, and a database that goes away
between two stages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from mammocad.jobs import InProcessWorkers, JobRunner
from mammocad.jobs.stages import AnalyzeStage, DecodeStage, ReportStage, StudyContext
from mammocad.pipeline import Pipeline
from mammocad.store.repository import claim_next_job
from mammocad.store.session import transaction

from .conftest import Api, dicoms


def test_an_older_job_of_the_study_never_replaces_the_newer_result(
    idle_api: Api, pipeline: Pipeline, phantom_study: Path
) -> None:
    """Images added while a job runs queue a newer job; two workers (threads, ``serve``
    beside ``dicom-node``, Celery) may then run both. The older job stops at its next stage
    and stores nothing: finishing last, it replaced the newer job's result with one that
    lacked the added image (which lost its overlay too)."""
    files = dicoms(phantom_study)
    state = idle_api.client.app.state.mammocad  # type: ignore[attr-defined]
    first = idle_api.upload(files[:3]).json()
    later: dict[str, Any] = {}

    class MoreImagesArrive(AnalyzeStage):
        """While the first job analyses its three images, the fourth is uploaded and a
        second worker runs the job it queues from start to end."""

        def run(self, context: StudyContext) -> None:
            if not later:
                later.update(idle_api.upload(files[3:]).json())
                assert later["status"] == "queued", later
                run_next("worker-1")
            super().run(context)

    runner = JobRunner(
        sessions=state.sessions,
        data_dir=idle_api.settings.data_dir,
        stages=[DecodeStage(), MoreImagesArrive(pipeline=pipeline), ReportStage(dicom=False)],
        model_version_id=state.model_version_id,
    )

    def run_next(worker: str) -> bool:
        with transaction(state.sessions) as session:
            job = claim_next_job(session, worker=worker)
            assert job is not None
            job_id = job.id
        return runner.run(job_id)

    assert run_next("worker-0") is False  # the first job stopped without a result
    auth = idle_api.auth
    older = idle_api.client.get(first["location"], headers=auth).json()
    assert older["status"] == "failed" and older["error"].startswith("superseded"), older
    assert later["job_id"] in older["error"]
    newer = idle_api.client.get(later["location"], headers=auth).json()
    assert newer["status"] == "done", newer
    study = idle_api.client.get(f"/api/v1/studies/{first['study_instance_uid']}", headers=auth)
    body = study.json()
    assert body["status"] == "done" and body["job"]["id"] == later["job_id"]
    assert len(body["result"]["images"]) == len(files) == 4
    assert all(image["overlay_url"] for image in body["images"])


def test_a_job_whose_failure_met_a_database_outage_is_failed_once_it_is_back(
    idle_api: Api, pipeline: Pipeline, phantom_study: Path
) -> None:
    """The database goes away for a second as a job moves to its next stage: the stage
    cannot be entered and the failure cannot be written either. The job stayed "running"
    (the study could be neither analysed again nor deleted) until the process restarted."""
    state = idle_api.client.app.state.mammocad  # type: ignore[attr-defined]
    down_until = [0.0]

    def sessions() -> Any:  # the workers' session factory, refusing while the server is down
        if time.monotonic() < down_until[0]:
            raise OperationalError("connect", {}, ConnectionRefusedError("server restarting"))
        return state.sessions()

    class AnalyzeThenOutage(AnalyzeStage):
        def run(self, context: StudyContext) -> None:
            super().run(context)
            down_until[0] = time.monotonic() + 1.0

    runner = JobRunner(
        sessions=sessions,  # type: ignore[arg-type]
        data_dir=idle_api.settings.data_dir,
        stages=[DecodeStage(), AnalyzeThenOutage(pipeline=pipeline), ReportStage(dicom=False)],
        model_version_id=state.model_version_id,
    )
    workers = InProcessWorkers(sessions=sessions, runner=runner, poll_interval_s=0.1)  # type: ignore[arg-type]
    uploaded = idle_api.upload(dicoms(phantom_study)).json()
    workers.start()
    try:
        job = idle_api.wait(uploaded["location"], timeout_s=30)
    finally:
        workers.stop(5)
    assert job["status"] == "failed", job
    assert "OperationalError" in job["error"] and "upload the study again" in job["error"]
    again = idle_api.upload(dicoms(phantom_study))
    assert again.status_code == 202 and again.json()["status"] == "queued"


def test_a_stale_delivery_of_an_older_job_leaves_the_newer_jobs_study_state(
    idle_api: Api, pipeline: Pipeline, phantom_study: Path
) -> None:
    """Celery may deliver an old job's decode again after a newer job of the study finished:
    the old job stops as superseded, and the study stays ``done`` (it was left
    ``processing`` for good)."""
    from mammocad.jobs.distributed import StageWorker
    from mammocad.store.session import database_url

    files = dicoms(phantom_study)
    first = idle_api.upload(files[:3]).json()
    worker = StageWorker(
        database_url=database_url(
            data_dir=idle_api.settings.data_dir, override=idle_api.settings.database_url
        ),
        data_dir=idle_api.settings.data_dir,
        load_pipeline=lambda: pipeline,
        time_limit_s=900,
    )
    worker.run("decode", first["job_id"])  # the first job starts, then images are added
    later = idle_api.upload(files[3:]).json()
    for stage in ("decode", "analyze", "report"):
        worker.run(stage, later["job_id"])
    worker.run("decode", first["job_id"])  # the old job's decode, delivered again
    auth = idle_api.auth
    older = idle_api.client.get(first["location"], headers=auth).json()
    assert older["status"] == "failed" and older["error"].startswith("superseded"), older
    study = idle_api.client.get(f"/api/v1/studies/{first['study_instance_uid']}", headers=auth)
    assert study.json()["status"] == "done"


def test_an_overlong_accession_number_does_not_cost_the_result(
    idle_api: Api, phantom_study: Path, tmp_path: Path
) -> None:
    """An AccessionNumber longer than its column (SH allows 16 characters; the column holds
    64) is left out of the study row at upload, as PostgreSQL refuses it; the result, which
    keeps the header as read, then wrote it into the row when the job finished: PostgreSQL
    refused the result and the job failed, at every upload again."""
    import pydicom

    long_accession = "A" * 70
    files = []
    for path in dicoms(phantom_study):
        ds = pydicom.dcmread(path)
        ds.AccessionNumber = long_accession
        ds.save_as(tmp_path / path.name)
        files.append(tmp_path / path.name)
    uploaded = idle_api.upload(files).json()
    state = idle_api.client.app.state.mammocad  # type: ignore[attr-defined]
    assert state.workers.run_once() is True
    job = idle_api.client.get(uploaded["location"], headers=idle_api.auth).json()
    assert job["status"] == "done", job
    assert job["result"]["accession_number"] == long_accession  # result.json keeps it
    study = idle_api.client.get(job["study_url"], headers=idle_api.auth).json()
    assert study["status"] == "done" and study["accession_number"] is None
