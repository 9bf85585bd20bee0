"""Refusals: missing, wrong and revoked keys; bad uploads; health without a key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from mammocad.store.keys import revoke_api_key
from mammocad.store.session import database_url, make_engine, session_factory, transaction

from .conftest import Api

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def dicoms(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def test_health_needs_no_key(start_api: Callable[..., Api]) -> None:
    client = start_api().client
    assert client.get("/health/live").json() == {"status": "ok", "checks": {}}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "model": "ok", "workers": "ok"}
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/studies"),
        ("GET", "/api/v1/studies/1.2.3"),
        ("DELETE", "/api/v1/studies/1.2.3"),
        ("GET", "/api/v1/jobs/abc"),
        ("GET", "/api/v1/models"),
        ("POST", "/api/v1/studies/1.2.3/feedback"),
        ("GET", "/api/v1/studies/1.2.3/images/1.2.4/overlay.png"),
    ],
)
def test_missing_or_wrong_key_is_401(start_api: Callable[..., Api], method: str, path: str) -> None:
    client = start_api().client
    missing = client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "mammocad apikey create" in missing.json()["detail"]
    wrong = client.request(method, path, headers={"Authorization": "Bearer mcad_not-a-key"})
    assert wrong.status_code == 401 and "invalid API key" in wrong.json()["detail"]
    basic = client.request(method, path, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401


def test_upload_without_key_is_401(start_api: Callable[..., Api], phantom_study: Path) -> None:
    api = start_api()
    files = [("files", (p.name, p.read_bytes())) for p in dicoms(phantom_study)]
    assert api.client.post("/api/v1/studies", files=files).status_code == 401
    assert not (api.settings.data_dir / "studies").exists()


def test_revoked_key_is_403(start_api: Callable[..., Api]) -> None:
    api = start_api()
    assert api.client.get("/api/v1/studies", headers=api.auth).status_code == 200
    url = database_url(data_dir=api.settings.data_dir, override=api.settings.database_url)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        assert revoke_api_key(session, name="tests")
    engine.dispose()
    refused = api.client.get("/api/v1/studies", headers=api.auth)
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"]


def test_keys_off_in_development(start_api: Callable[..., Api]) -> None:
    api = start_api(require_api_key=False, environment="development")
    assert api.client.get("/api/v1/studies").status_code == 200


def test_not_dicom_is_400(start_api: Callable[..., Api]) -> None:
    api = start_api()
    rng = np.random.default_rng(0)
    files = [
        ("files", ("notes.txt", b"hello, not an image")),
        ("files", ("noise.dcm", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())),
    ]
    refused = api.client.post("/api/v1/studies", files=files, headers=api.auth)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "not_dicom" and "notes.txt" in body["detail"]
    assert api.client.get("/api/v1/studies", headers=api.auth).json()["total"] == 0
    assert not any((api.settings.data_dir / "uploads").iterdir())  # staging cleaned


def test_bad_zip_and_zip_among_files_are_400(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    api = start_api()
    broken = [("files", ("study.zip", b"PK\x03\x04" + b"\0" * 200))]
    refused = api.client.post("/api/v1/studies", files=broken, headers=api.auth)
    assert refused.status_code == 400 and refused.json()["code"] == "bad_zip"
    first = dicoms(phantom_study)[0]
    mixed = [*broken, ("files", (first.name, first.read_bytes()))]
    refused = api.client.post("/api/v1/studies", files=mixed, headers=api.auth)
    assert refused.status_code == 400 and refused.json()["code"] == "zip_with_files"


def test_several_studies_in_one_upload_is_400(
    start_api: Callable[..., Api], phantom_study: Path, second_study: Path
) -> None:
    api = start_api()
    refused = api.upload([dicoms(phantom_study)[0], dicoms(second_study)[0]])
    assert refused.status_code == 400 and refused.json()["code"] == "several_studies"
    assert "--group-by patient" not in refused.json()["detail"]  # two women


def test_views_stored_as_studies_of_one_patient_get_the_cli_hint(
    start_api: Callable[..., Api], phantom_study: Path, second_study: Path, tmp_path: Path
) -> None:
    # as CBIS-DDSM: one view per study, side and view written into the Patient ID
    files = []
    for source, name in ((phantom_study, "LEFT_CC"), (second_study, "LEFT_MLO")):
        ds = pydicom.dcmread(dicoms(source)[0])
        ds.PatientID = f"Mass-Test_P_00173_{name}"
        ds.save_as(tmp_path / f"{name}.dcm")
        files.append(tmp_path / f"{name}.dcm")
    refused = start_api().upload(files)
    assert refused.status_code == 400 and refused.json()["code"] == "several_studies"
    message = refused.json()["detail"]
    assert "all are of patient P_00173" in message and "--group-by patient" in message


def test_limits_are_413(start_api: Callable[..., Api], phantom_study: Path) -> None:
    files = dicoms(phantom_study)
    size = files[0].stat().st_size
    api = start_api(max_file_bytes=size - 1, max_files=3, max_upload_bytes=10 * size)
    too_many = api.upload(files)
    assert too_many.status_code == 413 and too_many.json()["code"] == "too_many_files"
    too_large = api.upload(files[:1])
    assert too_large.status_code == 413 and too_large.json()["code"] == "file_too_large"
    assert api.client.get("/api/v1/studies", headers=api.auth).json()["total"] == 0


def test_request_over_the_body_limit_is_413(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    files = dicoms(phantom_study)
    api = start_api(max_upload_bytes=files[0].stat().st_size // 2)
    refused = api.upload(files[:1])
    assert refused.status_code == 413 and refused.json()["code"] == "upload_too_large"

    def chunks() -> object:  # no Content-Length: counted while it streams
        yield b"--x\r\nContent-Disposition: form-data; name=files; filename=a.dcm\r\n\r\n"
        yield files[0].read_bytes()
        yield b"\r\n--x--\r\n"

    streamed = api.client.post(
        "/api/v1/studies",
        content=chunks(),  # type: ignore[arg-type]
        headers={**api.auth, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert streamed.status_code == 413 and streamed.json()["code"] == "upload_too_large"


def test_feedback_on_unknown_study_404_and_empty_feedback_422(
    start_api: Callable[..., Api],
) -> None:
    api = start_api()
    feedback = {"reader_id": "r1", "study": {"agree": True}}
    missing = api.client.post("/api/v1/studies/1.2.3/feedback", json=feedback, headers=api.auth)
    assert missing.status_code == 404
    empty = api.client.post(
        "/api/v1/studies/1.2.3/feedback", json={"reader_id": "r1"}, headers=api.auth
    )
    assert empty.status_code == 422
