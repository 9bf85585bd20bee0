"""The API end to end on SQLite and on PostgreSQL: upload a phantom study, poll the job,
read and validate the result, fetch pictures, give feedback, list, re-upload, delete."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from mammocad.report.schema import validation_errors
from mammocad.store.models import AuditEntry, Feedback
from mammocad.store.session import database_url, make_engine, session_factory

from .conftest import Api

PNG = b"\x89PNG\r\n\x1a\n"


def dicoms(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def audit_actions(api: Api, uid: str) -> list[str]:
    url = database_url(data_dir=api.settings.data_dir, override=api.settings.database_url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.study_instance_uid == uid)
                .order_by(AuditEntry.id)
            )
            return [row.action for row in rows]
    finally:
        engine.dispose()


def feedback_rows(api: Api) -> list[Feedback]:
    url = database_url(data_dir=api.settings.data_dir, override=api.settings.database_url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(Feedback).order_by(Feedback.id)))
    finally:
        engine.dispose()


def test_study_lifecycle(start_api: Callable[..., Api], phantom_study: Path) -> None:
    api = start_api()
    client = api.client

    uploaded = api.upload(dicoms(phantom_study))
    assert uploaded.status_code == 202, uploaded.text
    body = uploaded.json()
    assert body["new_instances"] == 4 and body["known_instances"] == 0
    assert uploaded.headers["Location"] == body["location"] == f"/api/v1/jobs/{body['job_id']}"
    uid = body["study_instance_uid"]

    job = api.wait(body["location"])
    assert job["status"] == "done", job
    assert {"decode", "analyze", "report", "total"} <= set(job["stage_timings_ms"])
    result = job["result"]
    assert validation_errors(result) == []
    assert result["study_instance_uid"] == uid and result["status"] == "complete"

    study = client.get(f"/api/v1/studies/{uid}", headers=api.auth).json()
    assert study["status"] == "done" and study["result"] == result
    assert study["job"]["id"] == body["job_id"]
    assert len(study["images"]) == 4
    image = study["images"][0]
    assert image["status"] == "processed" and image["laterality"] in ("L", "R")

    overlay = client.get(image["overlay_url"], headers=api.auth)
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
    assert overlay.content.startswith(PNG)
    by_query = client.get(image["input_url"], params={"key": api.key})
    assert by_query.status_code == 200 and by_query.content.startswith(PNG)
    assert client.get(image["overlay_url"]).status_code == 401
    assert client.get(image["overlay_url"], params={"key": "mcad_wrong"}).status_code == 401

    findings = [f for entry in result["images"] for f in entry["findings"]]
    verdicts = [
        {"finding_id": f["id"], "agree": False, "corrected_label": "calcification"}
        for f in findings[:2]
    ]
    if findings:
        verdicts[0]["corrected_box"] = [1.0, 2.0, 30.0, 40.0]
    feedback = client.post(
        f"/api/v1/studies/{uid}/feedback",
        headers=api.auth,
        json={
            "reader_id": "dr-who",
            "study": {"agree": True, "corrected_label": "benign"},
            "findings": verdicts,
        },
    )
    assert feedback.status_code == 201, feedback.text
    assert feedback.json()["recorded"] == 1 + len(verdicts)
    stored = feedback_rows(api)
    first = stored[0]
    assert (first.finding_id, first.agree, first.reader_id) == (None, True, "dr-who")
    assert stored[0].corrected_label == "benign" and stored[0].api_key_name == "tests"
    if findings:
        assert stored[1].corrected_box == [1.0, 2.0, 30.0, 40.0]
    unknown = client.post(
        f"/api/v1/studies/{uid}/feedback",
        headers=api.auth,
        json={"reader_id": "dr-who", "findings": [{"finding_id": "nope", "agree": True}]},
    )
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]

    worklist = client.get("/api/v1/studies", headers=api.auth).json()
    assert worklist["total"] == 1
    row = worklist["items"][0]
    assert row["study_instance_uid"] == uid and row["status"] == "done"
    assert row["malignancy_probability"] == result["malignancy_probability"]
    assert row["suspicion"] == result["suspicion"] and row["patient_id"]

    again = api.upload(dicoms(phantom_study))
    assert again.status_code == 200, again.text
    assert again.json()["job_id"] == body["job_id"] and again.json()["known_instances"] == 4
    worklist = client.get("/api/v1/studies", headers=api.auth).json()
    assert worklist["total"] == 1 and worklist["items"][0]["image_count"] == 4

    models = client.get("/api/v1/models", headers=api.auth).json()
    assert models["loaded"]["sha256"] == result["model"]["sha256"]

    folder = api.settings.data_dir / "studies" / uid
    assert (folder / "input").is_dir() and (folder / "result.json").is_file()
    deleted = client.delete(f"/api/v1/studies/{uid}", headers=api.auth)
    assert deleted.status_code == 204
    assert client.get(f"/api/v1/studies/{uid}", headers=api.auth).status_code == 404
    assert client.get(body["location"], headers=api.auth).status_code == 404
    assert client.delete(f"/api/v1/studies/{uid}", headers=api.auth).status_code == 404
    assert not folder.exists()
    assert client.get("/api/v1/studies", headers=api.auth).json()["total"] == 0
    actions = audit_actions(api, uid)
    assert actions[0] == "create" and "read" in actions and "feedback" in actions
    assert actions[-1] == "delete"


def test_zip_upload_and_a_broken_image(
    start_api: Callable[..., Api], second_study: Path, tmp_path: Path
) -> None:
    """One zip; one of its images has its pixel data cut short: the study goes on and the
    result reports that image as rejected; the whole file uploaded later replaces it."""
    files = dicoms(second_study)
    broken = tmp_path / files[0].name
    broken.write_bytes(files[0].read_bytes()[:-5000])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        for path in [broken, *files[1:]]:
            handle.write(path, f"study/{path.name}")
        handle.writestr("README.txt", "not a DICOM file")
    api = start_api()
    uploaded = api.client.post(
        "/api/v1/studies",
        files=[("files", ("study.zip", archive.getvalue(), "application/zip"))],
        headers=api.auth,
    )
    assert uploaded.status_code == 202, uploaded.text
    body = uploaded.json()
    assert body["new_instances"] == 4
    assert [entry["name"] for entry in body["ignored"]] == ["study.zip!README.txt"]

    job = api.wait(body["location"])
    assert job["status"] == "done", job
    result = job["result"]
    assert validation_errors(result) == []
    statuses = sorted(image["status"] for image in result["images"])
    assert statuses == ["processed", "processed", "processed", "rejected"]
    assert result["status"] == "partial"
    study = api.client.get(f"/api/v1/studies/{body['study_instance_uid']}", headers=api.auth)
    rejected = [i for i in study.json()["images"] if i["status"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["overlay_url"] is None
    assert rejected[0]["rejection_code"] == "truncated_pixel_data"

    # the whole file sent again replaces the stored copy that was cut short
    resent = api.upload([files[0]])
    assert resent.status_code == 202, resent.text
    assert resent.json()["new_instances"] == 1 and resent.json()["job_id"] != body["job_id"]
    again = api.wait(resent.json()["location"])
    assert again["status"] == "done", again
    assert {image["status"] for image in again["result"]["images"]} == {"processed"}
    assert again["result"]["status"] == "complete"
    # and the cut copy sent once more changes nothing: the stored file is the larger
    cut = api.upload([broken])
    assert cut.status_code == 200 and cut.json()["job_id"] == resent.json()["job_id"]
