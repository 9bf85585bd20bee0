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
