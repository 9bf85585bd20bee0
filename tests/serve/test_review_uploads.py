"""Review: uploads the service must refuse or repair with a sentence, never a 500 — broken or
encrypted zips, header values the database cannot hold, UIDs the API cannot address — and a
study whose stored files vanished is repaired by uploading it again, as its job says."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pydicom
import pytest

from mammocad.jobs.inprocess import InProcessWorkers

from .conftest import Api, dicoms


def edited(source: Path, target: Path, **values: object) -> Path:
    ds = pydicom.dcmread(source)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(target)
    return target


def zipped(path: Path, compression: int = zipfile.ZIP_STORED) -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr(path.name, path.read_bytes())
    return bytearray(buffer.getvalue())


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_an_encrypted_zip_is_400(idle_api: Api, phantom_study: Path) -> None:
    data = zipped(dicoms(phantom_study)[0])
    data[6] |= 1  # general purpose flag bit 0: encrypted (local header and central directory)
    data[data.find(b"PK\x01\x02") + 8] |= 1
    files = [("files", ("study.zip", bytes(data)))]
    refused = idle_api.client.post("/api/v1/studies", files=files, headers=idle_api.auth)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "bad_zip" and "password" in refused.json()["detail"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_zip_with_corrupt_compressed_data_is_400(idle_api: Api, phantom_study: Path) -> None:
    data = zipped(dicoms(phantom_study)[0], zipfile.ZIP_DEFLATED)
    for index in range(60, 200):  # inside the member's deflate stream
        data[index] ^= 0x5A
    files = [("files", ("study.zip", bytes(data)))]
    refused = idle_api.client.post("/api/v1/studies", files=files, headers=idle_api.auth)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "bad_zip" and "study.zip" in refused.json()["detail"]
    assert not any((idle_api.settings.data_dir / "uploads").iterdir())


@pytest.mark.parametrize("uid", ["1." + "2" * 70, "1.2/3.4", "..."])
def test_a_study_uid_the_api_cannot_address_is_refused(
    idle_api: Api, phantom_study: Path, tmp_path: Path, uid: str
) -> None:
    bad = edited(dicoms(phantom_study)[0], tmp_path / "bad.dcm", StudyInstanceUID=uid)
    refused = idle_api.upload([bad])
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["code"] == "not_dicom" and "StudyInstanceUID" in body["detail"]
    assert "is not a UID the service can keep" in body["detail"]
    listed = idle_api.client.get("/api/v1/studies", headers=idle_api.auth).json()
    assert listed["total"] == 0


def test_an_instance_with_a_too_long_sop_uid_is_ignored(
    idle_api: Api, phantom_study: Path, tmp_path: Path
) -> None:
    files = dicoms(phantom_study)
    bad = edited(files[0], tmp_path / "long.dcm", SOPInstanceUID="1." + "3" * 70)
    accepted = idle_api.upload([*files, bad])
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["new_instances"] == len(files)
    assert [entry["name"] for entry in body["ignored"]] == ["long.dcm"]
    assert "SOPInstanceUID" in body["ignored"][0]["reason"]


def test_header_values_longer_than_their_vr_do_not_refuse_the_study(
    idle_api: Api, phantom_study: Path, tmp_path: Path
) -> None:
    first = edited(
        dicoms(phantom_study)[0],
        tmp_path / "odd.dcm",
        PatientID="P" * 80,
        StudyDate="2023-01-015",
        AccessionNumber="A1\x00B2",
    )
    accepted = idle_api.upload([first])
    assert accepted.status_code == 202, accepted.text
    uid = accepted.json()["study_instance_uid"]
    study = idle_api.client.get(f"/api/v1/studies/{uid}", headers=idle_api.auth).json()
    assert study["patient_id"] is None and study["study_date"] is None
    assert study["accession_number"] == "A1B2"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_study_whose_files_vanished_is_repaired_by_uploading_it_again(
    idle_api: Api, phantom_study: Path
) -> None:
    files = dicoms(phantom_study)
    first = idle_api.upload(files).json()
    inputs = idle_api.settings.data_dir / "studies" / first["study_instance_uid"] / "input"
    shutil.rmtree(inputs)
    workers = idle_api.client.app.state.mammocad.workers  # type: ignore[attr-defined]
    assert isinstance(workers, InProcessWorkers)
    assert workers.run_once()
    failed = idle_api.client.get(first["location"], headers=idle_api.auth).json()
    assert failed["status"] == "failed" and "upload the study again" in failed["error"]
    # the worklist row says why, as the job does (it said only "failed")
    (row,) = idle_api.client.get("/api/v1/studies", headers=idle_api.auth).json()["items"]
    assert row["status"] == "failed" and row["error"] == failed["error"]

    again = idle_api.upload(files)
    assert again.status_code == 202, again.text
    assert again.json()["new_instances"] == len(files)
    assert len(list(inputs.glob("*.dcm"))) == len(files)
    assert workers.run_once()
    done = idle_api.client.get(again.json()["location"], headers=idle_api.auth).json()
    assert done["status"] == "done", done
    (row,) = idle_api.client.get("/api/v1/studies", headers=idle_api.auth).json()["items"]
    assert row["error"] is None


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_new_images_of_a_study_still_queued_are_202(idle_api: Api, phantom_study: Path) -> None:
    """200 means "nothing new" (docs/api.md): images added to a study whose job has not
    started yet are taken by that job, and the answer is 202 with it, not 200."""
    files = dicoms(phantom_study)
    first = idle_api.upload(files[:3])
    assert first.status_code == 202, first.text
    more = idle_api.upload(files[3:])
    assert more.status_code == 202, more.text
    body = more.json()
    assert body["job_id"] == first.json()["job_id"] and body["status"] == "queued"
    assert body["new_instances"] == 1
    again = idle_api.upload(files)  # now nothing new
    assert again.status_code == 200 and again.json()["new_instances"] == 0
