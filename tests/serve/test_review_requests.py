"""Review: odd requests on the JSON routes — feedback values JSON allows but no column or
image holds, NUL characters in paths, deleting a study while an earlier job still runs —
answer 4xx with a sentence, never a 500; the viewer's display picture is audited."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mammocad.store.models import AuditEntry, Feedback, Finding, Job, Result, Study
from mammocad.store.session import database_url, make_engine, session_factory, transaction

from .conftest import Api, dicoms

COLUMNS, ROWS = 300, 400


def with_database(api: Api) -> tuple[Engine, sessionmaker[Session]]:
    url = database_url(data_dir=api.settings.data_dir, override=api.settings.database_url)
    engine = make_engine(url)
    return engine, session_factory(engine)


@pytest.fixture
def done_study(idle_api: Api, phantom_study: Path) -> str:
    """A study with a result of one finding ``f1`` on an image of COLUMNS x ROWS."""
    uid = idle_api.upload(dicoms(phantom_study)).json()["study_instance_uid"]
    engine, sessions = with_database(idle_api)
    with transaction(sessions) as session:
        study = session.scalar(select(Study))
        assert study is not None
        sop = study.images[0].sop_instance_uid
        image = {"sop_instance_uid": sop, "columns": COLUMNS, "rows": ROWS, "findings": []}
        study.result = Result(document={"images": [image]})
        study.findings.append(
            Finding(
                finding_id="f1",
                sop_instance_uid=sop,
                label="mass",
                score=0.5,
                malignancy_probability=0.5,
                box=[1, 2, 3, 4],
            )
        )
        study.state = "done"
        study.jobs[0].status = "done"
    engine.dispose()
    return uid


def feedback_count(api: Api) -> int:
    engine, sessions = with_database(api)
    with sessions() as session:
        count = len(list(session.scalars(select(Feedback))))
    engine.dispose()
    return count


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"reader_id": "r", "findings": [{"finding_id": "f1", "agree": false, '
         b'"corrected_box": [0, 0, 1e309, 1e309]}]}', "finite"),
        (b'{"reader_id": "r", "findings": [{"finding_id": "f1", "agree": false, '
         b'"corrected_box": [NaN, 0, 1, 1]}]}', "finite"),
        (b'{"reader_id": "r", "findings": [{"finding_id": "f1", "agree": false, '
         b'"corrected_box": [-100, -100, -1, -1]}]}', "greater than or equal to 0"),
        (b'{"reader_id": "r", "findings": [{"finding_id": "f1", "agree": false, '
         b'"corrected_box": [10, 10, 301, 50]}]}', "beyond its image"),
        (b'{"reader_id": "r\\u0000", "study": {"agree": true}}', "NUL"),
        (b'{"reader_id": "r", "study": {"agree": true, "comment": "a\\u0000b"}}', "NUL"),
    ],
)  # fmt: skip
def test_feedback_values_no_column_or_image_holds_are_422(
    idle_api: Api, done_study: str, body: bytes, says: str
) -> None:
    answer = idle_api.client.post(
        f"/api/v1/studies/{done_study}/feedback",
        content=body,
        headers={**idle_api.auth, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert says in answer.text
    assert feedback_count(idle_api) == 0
    box = [1.0, 2.0, float(COLUMNS), float(ROWS)]  # the whole image is a box
    fine = idle_api.client.post(
        f"/api/v1/studies/{done_study}/feedback",
        json={"reader_id": "r", "findings": [{"finding_id": "f1", "agree": False,
                                              "corrected_box": box}]},
        headers=idle_api.auth,
    )  # fmt: skip
    assert fine.status_code == 201, fine.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/%00",
        "/api/v1/jobs/" + "a" * 200,
        "/ui/pictures/%00/1.2/display.png",
        "/ui/pictures/1.2/%00/display.png",
    ],
)
def test_nul_or_overlong_ids_in_paths_are_4xx(idle_api: Api, path: str) -> None:
    answer = idle_api.client.get(path, headers=idle_api.auth)
    assert 400 <= answer.status_code < 500, answer.text


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_study_cannot_be_deleted_while_an_earlier_job_runs(
    idle_api: Api, phantom_study: Path, tmp_path: Path
) -> None:
    files = dicoms(phantom_study)
    first = idle_api.upload(files).json()
    engine, sessions = with_database(idle_api)
    with transaction(sessions) as session:
        job = session.get(Job, first["job_id"])
        assert job is not None
        job.status, job.study.state = "running", "processing"  # a worker has it
    # more images while it runs: a second job is queued, the study reads 'queued'
    extra = pydicom.dcmread(files[0])
    extra.SOPInstanceUID = "1.2.3.4.5.6.7"
    extra.save_as(tmp_path / "extra.dcm")
    queued = idle_api.upload([tmp_path / "extra.dcm"])
    assert queued.status_code == 202 and queued.json()["job_id"] != first["job_id"]
    uid = first["study_instance_uid"]
    refused = idle_api.client.delete(f"/api/v1/studies/{uid}", headers=idle_api.auth)
    assert refused.status_code == 409, refused.text
    assert "being analysed" in refused.json()["detail"]
    assert idle_api.client.get(f"/api/v1/studies/{uid}", headers=idle_api.auth).status_code == 200
    engine.dispose()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_display_picture_read_is_audited(idle_api: Api, phantom_study: Path) -> None:
    first = dicoms(phantom_study)[0]
    uid = idle_api.upload([first]).json()["study_instance_uid"]
    sop = pydicom.dcmread(first).SOPInstanceUID
    picture = idle_api.client.get(f"/ui/pictures/{uid}/{sop}/display.png", headers=idle_api.auth)
    assert picture.status_code == 200
    engine, sessions = with_database(idle_api)
    with sessions() as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "read")))
    engine.dispose()
    assert [(e.actor, e.study_instance_uid) for e in entries] == [("tests", uid)]
    assert entries[0].detail is not None and sop in entries[0].detail
