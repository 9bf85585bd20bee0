"""DICOMweb STOW-RS (``POST /dicomweb/studies``): store a phantom study, partial failures,
authentication, media type and the study in the URL."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from typer.testing import CliRunner

from mammocad.cli import app as cli
from mammocad.serve.routes_dicomweb import MultipartError, split_multipart

from .conftest import Api
from .test_serve_process import free_port

RETRIEVE_URL = "00081190"
FAILED = "00081198"
REFERENCED = "00081199"
SOP_CLASS = "00081150"
SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"
DICOM_JSON = "application/dicom+json"


def dicoms(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def multipart(parts: Sequence[bytes], *, boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/related body of ``parts`` (application/dicom) and its Content-Type."""
    boundary = boundary or f"stow-{uuid.uuid4().hex}"
    body = bytearray(b"preamble, ignored\r\n")
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        body += part + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(api: Api, parts: Sequence[bytes], path: str = "/dicomweb/studies") -> Any:
    body, content_type = multipart(parts)
    headers = {**api.auth, "Content-Type": content_type, "Accept": DICOM_JSON}
    return api.client.post(path, content=body, headers=headers)


def uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def values(item: dict[str, Any], tag: str) -> list[Any]:
    found: list[Any] = item.get(tag, {}).get("Value", [])
    return found


def test_store_phantom_study(start_api: Callable[..., Api], phantom_study: Path) -> None:
    api = start_api()
    files = dicoms(phantom_study)
    assert len(files) == 4
    response = stow(api, [path.read_bytes() for path in files])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(DICOM_JSON)
    body = response.json()
    study_uid = uids(files[0])[0]
    referenced = values(body, REFERENCED)
    assert len(referenced) == 4 and FAILED not in body
    expected = {uids(path)[1:] for path in files}
    got = {(values(i, SOP_CLASS)[0], values(i, SOP_INSTANCE)[0]) for i in referenced}
    assert got == expected
    assert values(body, RETRIEVE_URL) == [f"http://testserver/api/v1/studies/{study_uid}"]

    study = api.wait(f"/api/v1/studies/{study_uid}")
    assert study["status"] == "done", study
    assert len(study["images"]) == 4

    again = stow(api, [files[0].read_bytes()], path=f"/dicomweb/studies/{study_uid}")
    assert again.status_code == 200, again.text  # known already: stored, nothing new
    assert len(values(again.json(), REFERENCED)) == 1


def test_boundary_longer_than_rfc_2046_allows(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    """Orthanc's DICOMweb plugin sends a 73-character boundary (a UUID twice); RFC 2046 says
    at most 70, but refusing it would lock out a common PACS."""
    api = start_api()
    name = str(uuid.uuid4())
    body, content_type = multipart(
        [dicoms(phantom_study)[0].read_bytes()], boundary=f"{name}-{name}"
    )
    headers = {**api.auth, "Content-Type": content_type, "Accept": DICOM_JSON}
    response = api.client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert len(values(response.json(), REFERENCED)) == 1


def test_part_not_dicom_fails_alone(start_api: Callable[..., Api], phantom_study: Path) -> None:
    api = start_api()
    files = dicoms(phantom_study)
    response = stow(api, [files[0].read_bytes(), b"not a DICOM file", files[1].read_bytes()])
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(values(body, REFERENCED)) == 2
    (failed,) = values(body, FAILED)
    assert values(failed, FAILURE_REASON) == [0xC000]
    study_uid = uids(files[0])[0]
    study = api.client.get(f"/api/v1/studies/{study_uid}", headers=api.auth).json()
    assert len(study["images"]) == 2

    nothing = stow(api, [b"not DICOM either", b"\x00" * 300])
    assert nothing.status_code == 409, nothing.text
    assert len(values(nothing.json(), FAILED)) == 2 and REFERENCED not in nothing.json()


def test_instance_of_another_study_fails(
    start_api: Callable[..., Api], phantom_study: Path, second_study: Path
) -> None:
    api = start_api()
    mine, other = dicoms(phantom_study), dicoms(second_study)
    study_uid = uids(mine[0])[0]
    response = stow(
        api,
        [mine[0].read_bytes(), other[0].read_bytes()],
        path=f"/dicomweb/studies/{study_uid}",
    )
    assert response.status_code == 202, response.text
    body = response.json()
    (failed,) = values(body, FAILED)
    assert values(failed, SOP_INSTANCE) == [uids(other[0])[2]]
    assert values(failed, FAILURE_REASON) == [0xC409]
    (stored,) = values(body, REFERENCED)
    assert values(stored, SOP_INSTANCE) == [uids(mine[0])[2]]
    other_uid = uids(other[0])[0]
    missing = api.client.get(f"/api/v1/studies/{other_uid}", headers=api.auth)
    assert missing.status_code == 404

    only_other = stow(api, [other[1].read_bytes()], path=f"/dicomweb/studies/{study_uid}")
    assert only_other.status_code == 409, only_other.text


def test_two_studies_in_one_request(
    start_api: Callable[..., Api], phantom_study: Path, second_study: Path
) -> None:
    api = start_api()
    mine, other = dicoms(phantom_study), dicoms(second_study)
    response = stow(api, [mine[0].read_bytes(), other[0].read_bytes()])
    assert response.status_code == 200, response.text
    assert len(values(response.json(), REFERENCED)) == 2
    assert RETRIEVE_URL not in response.json()  # one RetrieveURL per study: none for two
    for path in (mine[0], other[0]):
        found = api.client.get(f"/api/v1/studies/{uids(path)[0]}", headers=api.auth)
        assert found.status_code == 200


def test_needs_a_key(start_api: Callable[..., Api], phantom_study: Path) -> None:
    api = start_api()
    body, content_type = multipart([dicoms(phantom_study)[0].read_bytes()])
    response = api.client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "multipart/form-data; boundary=x",
        'multipart/related; type="application/dicom+json"; boundary=x',
        None,
    ],
)
def test_wrong_media_type(
    start_api: Callable[..., Api], phantom_study: Path, content_type: str | None
) -> None:
    api = start_api()
    headers = dict(api.auth)
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = dicoms(phantom_study)[0].read_bytes()
    response = api.client.post("/dicomweb/studies", content=data, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"
    assert 'type="application/dicom"' in response.json()["detail"]


def test_malformed_body(start_api: Callable[..., Api]) -> None:
    api = start_api()
    headers = {**api.auth, "Content-Type": 'multipart/related; type="application/dicom"'}
    no_boundary = api.client.post("/dicomweb/studies", content=b"x", headers=headers)
    assert no_boundary.status_code == 400, no_boundary.text
    headers["Content-Type"] += "; boundary=abc"
    unterminated = api.client.post(
        "/dicomweb/studies", content=b"--abc\r\n\r\nDICM", headers=headers
    )
    assert unterminated.status_code == 400 and unterminated.json()["code"] == "bad_multipart"
    empty = api.client.post("/dicomweb/studies", content=b"--abc--\r\n", headers=headers)
    assert empty.status_code == 400 and empty.json()["code"] == "no_instances"


def test_body_over_the_limit(start_api: Callable[..., Api], phantom_study: Path) -> None:
    api = start_api(max_upload_bytes=50_000)
    parts = [path.read_bytes() for path in dicoms(phantom_study)]
    body, content_type = multipart(parts)
    assert len(body) > 50_000
    headers = {**api.auth, "Content-Type": content_type}
    response = api.client.post("/dicomweb/studies", content=body, headers=headers)
    assert response.status_code == 413 and response.json()["code"] == "upload_too_large"
    chunked = api.client.post("/dicomweb/studies", content=iter([body]), headers=headers)
    assert chunked.status_code == 413, chunked.text


@pytest.mark.parametrize("read_bytes", [1, 7, 4096])
def test_splitter_keeps_binary_content(read_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import mammocad.serve.routes_dicomweb as dicomweb

    monkeypatch.setattr(dicomweb, "READ_BYTES", read_bytes)
    payloads = [b"", b"\r\n--boun\r\n", b"a\r\n-bound\r\n--bo" * 50, bytes(range(256)) * 3]
    body, _ = multipart(payloads, boundary="bound")
    parts = split_multipart(io.BytesIO(body), "bound")
    assert [part.content.read() for part in parts] == payloads
    with pytest.raises(MultipartError):
        split_multipart(io.BytesIO(body[:-12]), "bound")


@pytest.mark.slow
def test_dicomweb_client_against_uvicorn(
    tmp_path: Path, tiny_bundle: Path, phantom_study: Path
) -> None:
    """``dicomweb_client.DICOMwebClient.store_instances`` against ``mammocad serve``."""
    dicomweb_client = pytest.importorskip("dicomweb_client")
    data = tmp_path / "data"
    created = CliRunner().invoke(cli, ["apikey", "create", "--name", "p", "--data-dir", str(data)])
    key = created.output.strip().splitlines()[-1]
    port = free_port()
    command = [
        sys.executable, "-m", "mammocad.cli", "serve", "--port", str(port),
        "--data-dir", str(data), "--model", str(tiny_bundle),
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "MAMMOCAD_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "the server stopped"
            assert time.monotonic() < deadline, "the server did not become ready in 90 s"
            time.sleep(0.5)
        client = dicomweb_client.DICOMwebClient(f"{base}/dicomweb", headers=headers)
        datasets = [pydicom.dcmread(path) for path in dicoms(phantom_study)]
        answer = client.store_instances(datasets)
        assert len(answer.ReferencedSOPSequence) == 4
        assert "FailedSOPSequence" not in answer
        study_uid = str(datasets[0].StudyInstanceUID)
        for _ in range(240):
            study = httpx.get(f"{base}/api/v1/studies/{study_uid}", headers=headers, timeout=10)
            assert study.status_code == 200, study.text
            if study.json()["status"] in ("done", "failed"):
                break
            time.sleep(0.5)
        assert study.json()["status"] == "done", study.text
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
