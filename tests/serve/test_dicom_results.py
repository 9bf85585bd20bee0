"""The service's DICOM results: ``GET /api/v1/studies/{uid}/dicom`` (a zip of the SR, SCs and
GSPS the report stage wrote) and their push to a DICOMweb server (STOW-RS, PS3.18 §10.5): a
real HTTP receiver on 127.0.0.1 that parses the multipart/related body with the standard
library, and receivers that fail, which must cost neither the result nor the job."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient

from mammocad.pipeline import Pipeline
from mammocad.report.dicomweb_push import DicomwebDestination, push_instances
from mammocad.serve import Settings, create_app
from mammocad.store.session import database_url

from .conftest import Api, make_key, settings_for
from .test_serve_process import free_port

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
PROCESSING_FAILURE = 0x0110  # FailureReason, PS3.18 Table I.2-1 / PS3.7 Annex C


def dicoms(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


class StowReceiver:
    """A STOW-RS server on a free port of 127.0.0.1: answers ``status`` (200, or an error
    such as 503); ``refuse_first`` puts the first object in FailedSOPSequence (202)."""

    def __init__(self, *, status: int = 200, refuse_first: bool = False) -> None:
        self.status = status
        self.refuse_first = refuse_first
        self.requests: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def datasets(self) -> list[pydicom.Dataset]:
        return [
            pydicom.dcmread(io.BytesIO(part))
            for request in self.requests
            for part in request["parts"]
        ]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self._body()
                content_type = self.headers["Content-Type"]
                message = BytesParser(policy=policy.HTTP).parsebytes(
                    f"Content-Type: {content_type}\r\n\r\n".encode() + body
                )
                parts = [part.get_payload(decode=True) for part in message.iter_parts()]
                receiver.requests.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "content_type": content_type,
                        "parts": parts,
                    }
                )
                if receiver.status != 200:
                    self._answer(receiver.status, b"the archive is down for maintenance")
                    return
                answer = receiver.answer([pydicom.dcmread(io.BytesIO(p)) for p in parts])
                self._answer(202 if "00081198" in answer else 200, json.dumps(answer).encode())

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers["Content-Length"]))
                body = bytearray()  # dicomweb-client streams bodies over 1 MB in chunks
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return bytes(body)

            def _answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                kind = "application/dicom+json" if status in (200, 202) else "text/plain"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def answer(self, datasets: list[pydicom.Dataset]) -> dict[str, Any]:
        """The Store Instances Response Module (PS3.18 §10.5.3) as DICOM JSON."""

        def item(ds: pydicom.Dataset, **extra: Any) -> dict[str, Any]:
            return {
                "00081150": {"vr": "UI", "Value": [str(ds.SOPClassUID)]},
                "00081155": {"vr": "UI", "Value": [str(ds.SOPInstanceUID)]},
                **extra,
            }

        refused = datasets[:1] if self.refuse_first else []
        stored = datasets[len(refused) :]
        answer: dict[str, Any] = {
            "00081199": {"vr": "SQ", "Value": [item(ds) for ds in stored]},
        }
        if refused:
            reason = {"00081197": {"vr": "US", "Value": [PROCESSING_FAILURE]}}
            answer["00081198"] = {"vr": "SQ", "Value": [item(ds, **reason) for ds in refused]}
        return answer


@pytest.fixture
def receiver() -> Iterator[Callable[..., StowReceiver]]:
    started: list[StowReceiver] = []

    def start(**options: Any) -> StowReceiver:
        server = StowReceiver(**options)
        server.thread.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.shutdown()
        server.server.server_close()


def analysed(api: Api, study: Path) -> tuple[str, dict[str, Any]]:
    """Upload ``study`` and wait for its job: (StudyInstanceUID, the done job)."""
    uploaded = api.upload(dicoms(study))
    assert uploaded.status_code == 202, uploaded.text
    job = api.wait(uploaded.json()["location"])
    assert job["status"] == "done", job
    return uploaded.json()["study_instance_uid"], job


def zip_members(api: Api, uid: str) -> dict[str, pydicom.Dataset]:
    response = api.client.get(f"/api/v1/studies/{uid}/dicom", headers=api.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {
            name: pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()
        }


def processed_images(job: dict[str, Any]) -> int:
    return sum(image["status"] == "processed" for image in job["result"]["images"])


def test_dicom_zip_holds_the_sr_and_one_sc_per_image(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    api = start_api()
    uid, job = analysed(api, phantom_study)
    members = zip_members(api, uid)
    assert members["sr.dcm"].SOPClassUID == COMPREHENSIVE_SR
    scs = [ds for name, ds in members.items() if name.startswith("sc/")]
    gsps = [ds for name, ds in members.items() if name.startswith("gsps/")]
    assert len(scs) == processed_images(job) == 4
    assert {ds.SOPClassUID for ds in scs} == {SECONDARY_CAPTURE}
    assert len(gsps) == 4 and {ds.SOPClassUID for ds in gsps} == {GSPS}
    assert set(members) == {"sr.dcm"} | {f"sc/{ds.SOPInstanceUID}.dcm" for ds in scs} | {
        f"gsps/{ds.SOPInstanceUID}.dcm" for ds in gsps
    }
    assert {ds.StudyInstanceUID for ds in members.values()} == {uid}
    assert job["error"] is None and "push" not in job["stage_timings_ms"]
    unauthenticated = api.client.get(f"/api/v1/studies/{uid}/dicom")
    assert unauthenticated.status_code == 401


def test_dicom_zip_with_the_mammography_cad_sr(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    api = start_api(sr_template="mammography-cad")
    uid, job = analysed(api, phantom_study)
    members = zip_members(api, uid)
    assert members["sr.dcm"].SOPClassUID == MAMMOGRAPHY_CAD_SR
    assert sum(name.startswith("sc/") for name in members) == processed_images(job)
    assert {ds.StudyInstanceUID for ds in members.values()} == {uid}


def test_dicom_zip_is_404_for_an_unknown_study_or_without_dicom_outputs(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    api = start_api(dicom_outputs=False)
    unknown = api.client.get("/api/v1/studies/1.2.3.4/dicom", headers=api.auth)
    assert unknown.status_code == 404 and "no study 1.2.3.4" in unknown.json()["detail"]
    uid, _ = analysed(api, phantom_study)
    missing = api.client.get(f"/api/v1/studies/{uid}/dicom", headers=api.auth)
    assert missing.status_code == 404
    assert "MAMMOCAD_DICOM_OUTPUTS=true" in missing.json()["detail"]


def test_results_are_pushed_to_a_stow_rs_server(
    start_api: Callable[..., Api],
    receiver: Callable[..., StowReceiver],
    phantom_study: Path,
) -> None:
    pacs = receiver()
    api = start_api(dicomweb_push_url=pacs.url, dicomweb_push_token="pacs-token")
    uid, job = analysed(api, phantom_study)
    assert job["error"] is None and "push" in job["stage_timings_ms"]
    (request,) = pacs.requests
    assert request["path"] == "/dicom-web/studies"
    assert request["authorization"] == "Bearer pacs-token"
    assert request["content_type"].startswith("multipart/related")
    pushed = {ds.SOPInstanceUID: ds for ds in pacs.datasets}
    kept = zip_members(api, uid)
    assert set(pushed) == {ds.SOPInstanceUID for ds in kept.values()}
    assert sorted(ds.SOPClassUID for ds in pushed.values()) == sorted(
        [COMPREHENSIVE_SR] + [SECONDARY_CAPTURE] * 4 + [GSPS] * 4
    )
    assert {ds.StudyInstanceUID for ds in pushed.values()} == {uid}


def test_a_failed_push_keeps_the_result_and_shows_on_the_job(
    start_api: Callable[..., Api],
    receiver: Callable[..., StowReceiver],
    phantom_study: Path,
) -> None:
    pacs = receiver(status=503)
    api = start_api(dicomweb_push_url=pacs.url)
    uid, job = analysed(api, phantom_study)
    assert job["result"]["study_instance_uid"] == uid
    assert job["error"].startswith("results saved; STOW-RS push to ")
    assert "503 Service Unavailable" in job["error"] and "upload the study again" in job["error"]
    assert len(pacs.requests) == 3  # the first try and two retries
    assert zip_members(api, uid)["sr.dcm"].SOPClassUID == COMPREHENSIVE_SR
    study = api.client.get(f"/api/v1/studies/{uid}", headers=api.auth).json()
    assert study["status"] == "done" and study["job"]["error"] == job["error"]

    pacs.status = 200  # the archive is back: uploading again analyses and pushes again
    again = api.upload(dicoms(phantom_study))
    assert again.status_code == 202, again.text
    retried = api.wait(again.json()["location"])
    assert retried["status"] == "done" and retried["error"] is None
    assert len(pacs.requests) == 4 and len(pacs.requests[-1]["parts"]) == 9


def test_push_reports_objects_the_server_refused(
    receiver: Callable[..., StowReceiver], phantom_study: Path
) -> None:
    pacs = receiver(refuse_first=True)
    paths = dicoms(phantom_study)
    report = push_instances(paths, destination=DicomwebDestination(url=pacs.url + "/"))
    first = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SOPInstanceUID)
    assert not report.ok and report.objects == 4 and len(report.sent) == 3
    assert report.failures == [f"{first} refused (FailureReason 0x0110)"]
    assert "3 of 4 sent" in report.summary()


def test_push_to_a_closed_port_is_a_failure_not_an_exception(phantom_study: Path) -> None:
    destination = DicomwebDestination(url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2)
    report = push_instances(dicoms(phantom_study)[:1], destination=destination)
    assert report.sent == [] and len(report.failures) == 1
    assert "ConnectionError" in report.failures[0]
    with pytest.raises(ValueError, match="http:// or https://"):
        DicomwebDestination(url="pacs:8042/dicom-web")


def test_celery_stage_worker_uses_the_dicom_and_push_settings(
    tmp_path: Path,
    pipeline: Pipeline,
    receiver: Callable[..., StowReceiver],
    phantom_study: Path,
) -> None:
    """The worker's report task writes the SR of its ``sr_template`` and pushes (no broker:
    the stages run in order here, as the Celery chain would)."""
    pytest.importorskip("celery")
    from mammocad.jobs.distributed import StageWorker

    pacs = receiver()
    settings = settings_for(
        tmp_path / "data", sr_template="mammography-cad", dicomweb_push_url=pacs.url
    )
    key = make_key(settings)
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        api = Api(client=client, settings=settings, key=key)
        body = api.upload(dicoms(phantom_study)).json()
        worker = StageWorker(
            database_url=database_url(data_dir=settings.data_dir),
            data_dir=settings.data_dir,
            load_pipeline=lambda: pipeline,
            time_limit_s=3600,
            dicom=settings.dicom_outputs,
            sr_template=settings.sr_template,
            push=settings.push_destination(),
        )
        for stage in ("decode", "analyze", "report"):
            worker.run(stage, body["job_id"])
        job = api.wait(body["location"], timeout_s=1)
        assert job["status"] == "done" and job["error"] is None
        assert {"report", "push"} <= set(job["stage_timings_ms"])
        members = zip_members(api, body["study_instance_uid"])
    assert members["sr.dcm"].SOPClassUID == MAMMOGRAPHY_CAD_SR
    assert {ds.SOPInstanceUID for ds in pacs.datasets} == {
        ds.SOPInstanceUID for ds in members.values()
    }


def test_push_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).push_destination() is None  # type: ignore[call-arg]
    monkeypatch.setenv("MAMMOCAD_DICOMWEB_PUSH_URL", "http://pacs:8042/dicom-web")
    monkeypatch.setenv("MAMMOCAD_DICOMWEB_PUSH_TOKEN", "s3cret")
    monkeypatch.setenv("MAMMOCAD_DICOMWEB_PUSH_TIMEOUT_S", "5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.push_destination() == DicomwebDestination(
        url="http://pacs:8042/dicom-web", token="s3cret", timeout_s=5.0
    )
    assert "s3cret" not in repr(settings)
