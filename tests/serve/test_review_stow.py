"""STOW-RS review findings: per-instance failures (PS3.18 §10.5.3) must name only the
instances that failed."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from .conftest import Api
from .test_stow import FAILED, FAILURE_REASON, REFERENCED, SOP_INSTANCE, dicoms, stow, uids, values


def _oversized_copy(path: Path, size: int) -> bytes:
    """Another instance of the same study, made larger than ``size`` bytes (a tomosynthesis
    object next to the 2D views, say)."""
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ImageComments = "x" * 64  # LT: padding that keeps the data set valid
    ds.add_new(0x00091010, "OB", b"\x00" * (size + 2))  # a private blob over the limit
    ds.add_new(0x00090010, "LO", "REVIEW")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_one_instance_over_the_file_limit_fails_alone(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    """One instance over MAMMOCAD_MAX_FILE_BYTES is refused with 0xA700; the other instances
    of its study are stored (202), not all refused with it (409)."""
    files = dicoms(phantom_study)
    limit = max(path.stat().st_size for path in files) + 1024
    api = start_api(max_file_bytes=limit)
    big = _oversized_copy(files[0], limit)
    response = stow(api, [*(path.read_bytes() for path in files), big])
    assert response.status_code == 202, response.text
    body = response.json()
    (failed,) = values(body, FAILED)
    assert values(failed, FAILURE_REASON) == [0xA700]
    assert values(failed, SOP_INSTANCE) == [str(pydicom.dcmread(io.BytesIO(big)).SOPInstanceUID)]
    stored = {values(item, SOP_INSTANCE)[0] for item in values(body, REFERENCED)}
    assert stored == {uids(path)[2] for path in files}
    study = api.client.get(f"/api/v1/studies/{uids(files[0])[0]}", headers=api.auth).json()
    assert len(study["images"]) == 4


def test_own_results_sent_back_are_acknowledged_not_taken_in(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    """A PACS that forwards whole studies by STOW-RS (Orthanc's OnStableStudy) sends our own
    SR and Secondary Captures back once they are pushed to it. They are acknowledged, as the
    DICOM node acknowledges them over C-STORE, but not taken in: taken in, they were new
    instances of the study, queued a new analysis (our overlays read as images) whose results
    the PACS forwarded again: a routing loop."""
    api = start_api()
    files = dicoms(phantom_study)
    study_uid = uids(files[0])[0]
    assert stow(api, [path.read_bytes() for path in files]).status_code == 200
    study = api.wait(f"/api/v1/studies/{study_uid}")
    assert study["status"] == "done", study
    job_id = study["job"]["id"]
    ours = sorted((api.settings.data_dir / "studies" / study_uid / "dicom").rglob("*.dcm"))
    assert len(ours) >= 2  # the SR and the Secondary Captures
    response = stow(api, [path.read_bytes() for path in ours])
    assert response.status_code == 200, response.text
    acknowledged = {values(item, SOP_INSTANCE)[0] for item in values(response.json(), REFERENCED)}
    assert acknowledged == {uids(path)[2] for path in ours}
    after = api.client.get(f"/api/v1/studies/{study_uid}", headers=api.auth).json()
    assert len(after["images"]) == 4, [image.get("sop_instance_uid") for image in after["images"]]
    assert after["job"]["id"] == job_id and after["status"] == "done", after
