"""Queries: one job is claimed by one worker only; keys are stored hashed; deleting a study
takes its rows with it but leaves the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mammocad.store.keys import audit, check_api_key, create_api_key, hash_key
from mammocad.store.models import ApiKey, AuditEntry, Finding, Image, Job, Study
from mammocad.store.repository import (
    StoredFile,
    StudyHeader,
    add_study_files,
    claim_next_job,
    enqueue_job,
    save_result,
)
from mammocad.store.session import (
    database_url,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = database_url(data_dir=tmp_path)
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def add_study(factory: sessionmaker[Session], uid: str = "1.2.3") -> str:
    with transaction(factory) as session:
        study = add_study_files(
            session,
            header=StudyHeader(study_instance_uid=uid, patient_id="P1"),
            folder=f"studies/{uid}",
            files=[StoredFile(sop_instance_uid="1.2.3.4", file_name="a.dcm", size_bytes=10)],
        )
        return enqueue_job(session, study).id


def test_a_job_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    job_id = add_study(sessions)
    first, second = sessions(), sessions()
    try:
        claimed = claim_next_job(first, worker="a")
        first.commit()
        assert claimed is not None and claimed.id == job_id and claimed.attempts == 1
        assert claim_next_job(second, worker="b") is None
    finally:
        first.close()
        second.close()
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.worker == "a" and job.study.state == "processing"


def test_keys_are_stored_hashed(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        key = create_api_key(session, name="ward")
    with transaction(sessions) as session:
        row = session.scalar(select(ApiKey))
        assert row is not None and row.key_hash == hash_key(key) and key not in row.key_hash
        assert row.prefix == key[:12]
        assert check_api_key(session, key).valid
        assert not check_api_key(session, key + "x").valid
        assert row.last_used_at is not None


def test_delete_cascades_but_keeps_the_audit_log(sessions: sessionmaker[Session]) -> None:
    add_study(sessions)
    document = {
        "status": "partial",
        "malignancy_probability": 0.2,
        "suspicion": "low",
        "images": [
            {
                "sop_instance_uid": "1.2.3.4",
                "laterality": "L",
                "view": "CC",
                "status": "processed",
                "findings": [
                    {
                        "id": "f1",
                        "label": "mass",
                        "score": 0.5,
                        "malignancy_probability": 0.2,
                        "box": [1, 2, 3, 4],
                    }
                ],
            }
        ],
    }
    with transaction(sessions) as session:
        study = session.scalar(select(Study))
        assert study is not None
        pictures = {"1.2.3.4": ("studies/1.2.3/o.png", None)}
        save_result(session, study, document=document, model_version_id=None, pictures=pictures)
        save_result(session, study, document=document, model_version_id=None, pictures=pictures)
        audit(session, actor="k", action="create", study_instance_uid="1.2.3")
    with transaction(sessions) as session:
        study = session.scalar(select(Study))
        assert study is not None and study.images[0].overlay == "studies/1.2.3/o.png"
        assert study.images[0].laterality == "L" and study.suspicion == "low"
        assert session.scalar(select(func.count()).select_from(Finding)) == 1  # replaced
        session.delete(study)
    with sessions() as session:
        for table in (Study, Image, Job, Finding):
            assert session.scalar(select(func.count()).select_from(table)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_requeueing_an_older_orphan_leaves_the_newer_jobs_study_state(
    sessions: sessionmaker[Session],
) -> None:
    """A process died running job A; images added meanwhile queued job B, which another
    process (a second ``serve``, the DICOM node) finished. When the dead process's host starts
    again, A goes back to the queue, but the study is B's: it read ``queued`` for good (A
    then stops as superseded without touching the study state, and no job was left to set it)."""
    from mammocad.store.repository import mark_done, requeue_orphans

    older_id = add_study(sessions)
    with transaction(sessions) as session:
        older = claim_next_job(session, worker="dead")
        assert older is not None and older.id == older_id
        study = older.study
        newer = enqueue_job(session, study)
        newer_id = newer.id
    with transaction(sessions) as session:
        newer = claim_next_job(session, worker="alive")
        assert newer is not None and newer.id == newer_id
        mark_done(session, newer, timings_ms={})
    with transaction(sessions) as session:
        count = requeue_orphans(session, is_orphan=lambda worker: worker == "dead", max_attempts=3)
        assert count == 1
    with sessions() as session:
        job = session.get(Job, older_id)
        assert job is not None and job.status == "queued"
        assert job.study.state == "done"


def test_a_stale_heartbeat_requeues_a_job_whatever_its_host(empty_database: str) -> None:
    """A worker's host cannot always be checked (another machine, a recreated container): a
    running job whose heartbeat stopped goes back to the queue; one whose heartbeat is fresh,
    or that a Celery worker runs (no heartbeat: the broker redelivers), stays running."""
    from datetime import timedelta

    from sqlalchemy import update

    from mammocad.store.repository import database_now, requeue_orphans, start_job

    upgrade(empty_database)
    engine = make_engine(empty_database)
    factory = session_factory(engine)
    try:
        ids = [add_study(factory, uid) for uid in ("1.2.1", "1.2.2", "1.2.3")]
        with transaction(factory) as session:
            assert claim_next_job(session, worker="gone-host:1:0") is not None
            assert claim_next_job(session, worker="live-host:1:0") is not None
            assert start_job(session, ids[2], worker="celery@gpu") is not None
        with transaction(factory) as session:
            hour_ago = database_now(session) - timedelta(hours=1)
            session.execute(update(Job).where(Job.id == ids[0]).values(heartbeat_at=hour_ago))
        with transaction(factory) as session:
            cutoff = database_now(session) - timedelta(minutes=2)
            requeued = requeue_orphans(
                session, is_orphan=lambda worker: False, max_attempts=3, stale_before=cutoff
            )
            assert requeued == 1
        with factory() as session:
            jobs = [session.get(Job, job_id) for job_id in ids]
            assert [job.status for job in jobs if job] == ["queued", "running", "running"]
            assert jobs[0] is not None and jobs[0].worker is None
    finally:
        engine.dispose()


def test_processes_loading_a_new_bundle_together_register_it_once(empty_database: str) -> None:
    """``serve`` and ``dicom-node`` started together (or two Celery gpu workers taking their
    first studies at once) each register the bundle they load: both found no row, both
    inserted it, and the second failed on the unique sha256 (the process did not start; on a
    worker, its study failed)."""
    import threading
    import time

    from mammocad.store.repository import register_model

    upgrade(empty_database)
    engine = make_engine(empty_database)
    factory = session_factory(engine)
    manifest = {"name": "tiny", "version": "1", "sha256": "ab" * 32}
    outcome: dict[str, object] = {}

    def other_process() -> None:
        try:
            with transaction(factory) as session:
                outcome["id"] = register_model(session, manifest).id
        except Exception as error:
            outcome["error"] = error

    first = factory()
    try:
        with first.begin():
            first_id = register_model(first, manifest).id  # inserted, not committed yet
            thread = threading.Thread(target=other_process)
            thread.start()
            time.sleep(0.5)  # the other one looked for the row and is inserting it
        thread.join(30)
        assert not thread.is_alive(), "the other process hung on the row being inserted"
    finally:
        first.close()
        engine.dispose()
    assert "error" not in outcome, outcome
    assert outcome["id"] == first_id


def test_an_instance_over_2_gib_is_recorded(empty_database: str) -> None:
    """``MAMMOCAD_MAX_FILE_BYTES`` has no ceiling, and a tomosynthesis object or a long
    multi-frame file passes 2 GiB: PostgreSQL's 32-bit ``integer`` refused its size, and the
    upload answered 500 after its files were placed."""
    upgrade(empty_database)
    engine = make_engine(empty_database)
    size = 3 * 2**30
    try:
        with transaction(session_factory(engine)) as session:
            add_study_files(
                session,
                header=StudyHeader(study_instance_uid="1.2.3"),
                folder="studies/1.2.3",
                files=[StoredFile(sop_instance_uid="1.2.3.4", file_name="a.dcm", size_bytes=size)],
            )
        with session_factory(engine)() as session:
            assert session.scalar(select(Image.size_bytes)) == size
    finally:
        engine.dispose()
