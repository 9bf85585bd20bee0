"""Review (security and patient data): no API key in the server's access log, a STOW-RS
body of many tiny parts stops at the file limit, the worklist's patient IDs are an audited
read, a header the upload cannot read is ignored with a reason (never a 500), and a served
result names no path on the server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from mammocad.store.models import AuditEntry
from mammocad.store.session import database_url, make_engine, session_factory

from .conftest import Api, dicoms
from .test_stow import stow

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


class Kept(logging.Handler):
    """The formatted lines logged to the logger it is added to."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def access_log_line(path: str) -> str:
    """The line uvicorn's access log writes for a GET of ``path`` answered 404 (the call its
    HTTP protocols make once the response starts), through the filters the app installed."""
    access = logging.getLogger("uvicorn.access")
    kept = Kept()
    access.addHandler(kept)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:50000", "GET", path, "1.1", 404)
    finally:
        access.removeHandler(kept)
        access.setLevel(level)
    (line,) = kept.lines
    return line


def test_the_key_of_a_picture_url_is_not_written_to_the_access_log(
    start_api: Callable[..., Api],
) -> None:
    """OWASP ASVS 4.0 V7.1.1: no credential in logs. uvicorn logs each request's path with
    its query, and ``?key=`` is how an ``<img>`` sends the key."""
    api = start_api()
    line = access_log_line(f"/api/v1/studies/1.2.3/images/1.2.4/overlay.png?key={api.key}&x=1")
    assert api.key not in line
    assert "overlay.png?key=***&x=1" in line


def test_a_stow_body_of_many_empty_parts_is_refused_at_the_file_limit(
    start_api: Callable[..., Api],
) -> None:
    """CWE-770: each part costs a header parse and memory (about 1 kB per 10 bytes of
    body), so the number of parts is bounded as an upload's files are."""
    api = start_api(max_files=4)
    refused = stow(api, [b""] * 1000)
    assert refused.status_code == 413, refused.text[:300]
    assert refused.json()["code"] == "too_many_files"
    assert "more than 64 parts" in refused.json()["detail"]


def test_a_stow_of_several_studies_each_within_the_file_limit_is_taken(
    start_api: Callable[..., Api], phantom_study: Path, second_study: Path
) -> None:
    # a folder sent at once (dcm4che stowrs): more instances than MAMMOCAD_MAX_FILES in all,
    # each study within it; the part bound must not refuse it (it did at MAMMOCAD_MAX_FILES)
    files = dicoms(phantom_study) + dicoms(second_study)
    api = start_api(max_files=len(dicoms(phantom_study)))
    stored = stow(api, [path.read_bytes() for path in files])
    assert stored.status_code == 200, stored.text


def test_listing_the_worklist_is_an_audited_read(idle_api: Api, phantom_study: Path) -> None:
    """The worklist shows each study's PatientID and AccessionNumber: the audit log says who
    listed which studies (HIPAA 45 CFR 164.312(b), audit controls)."""
    uid = idle_api.upload(dicoms(phantom_study)).json()["study_instance_uid"]
    listed = idle_api.client.get("/api/v1/studies", headers=idle_api.auth)
    assert listed.json()["items"][0]["patient_id"]
    # the web UI refreshes the worklist every 5 s: the same page again is no new read
    idle_api.client.get("/api/v1/studies", headers=idle_api.auth)
    url = database_url(data_dir=idle_api.settings.data_dir, override=idle_api.settings.database_url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "list")))
    finally:
        engine.dispose()
    assert [entry.actor for entry in entries] == ["tests"]
    assert entries[0].detail is not None and uid in entries[0].detail


def test_a_header_element_of_unknown_vr_is_ignored_not_a_500(
    idle_api: Api, phantom_study: Path, tmp_path: Path
) -> None:
    """pydicom converts PatientID when it is first read, after the header parse: an unknown
    VR there raised out of the upload as a 500."""
    first = dicoms(phantom_study)[0]
    data = first.read_bytes()
    patient_id = b"\x10\x00\x20\x00LO"  # (0010,0020) in explicit VR little endian
    assert data.count(patient_id) == 1
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(data.replace(patient_id, b"\x10\x00\x20\x00OO"))
    refused = idle_api.upload([broken])
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "not_dicom"
    assert "unreadable DICOM header" in refused.json()["detail"]


def test_a_served_result_names_no_path_on_the_server(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    """CWE-497: each image's ``source`` was the stored file's absolute path (the data dir's
    layout); clients get the file's name."""
    api = start_api()
    uploaded = api.upload(dicoms(phantom_study)).json()
    job = api.wait(uploaded["location"])
    assert job["status"] == "done", job["error"]
    study = api.client.get(f"/api/v1/studies/{uploaded['study_instance_uid']}", headers=api.auth)
    data_dir = str(api.settings.data_dir.resolve())
    for result in (job["result"], study.json()["result"]):
        assert data_dir not in str(result)
        assert {image["source"] for image in result["images"]} == {
            f"{image['sop_instance_uid']}.dcm" for image in result["images"]
        }


def test_a_zip_declaring_a_huge_directory_is_refused_before_it_is_read(
    start_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CWE-770: zipfile builds an object per directory entry before any can be counted (a
    23 MB zip of 500 000 empty entries took 190 MB): the count the end record declares is
    checked first."""
    import io
    import zipfile

    import mammocad.serve.uploads as uploads

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(100):  # over 16 x 4, the bound for max_files=4
            archive.writestr(f"e{index}", b"")
    api = start_api(max_files=4)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the zip's directory was read")

    monkeypatch.setattr(uploads.zipfile, "ZipFile", never)
    files = [("files", ("many.zip", buffer.getvalue()))]
    refused = api.client.post("/api/v1/studies", files=files, headers=api.auth)
    assert refused.status_code == 413, refused.text[:300]
    assert refused.json()["code"] == "too_many_files"
