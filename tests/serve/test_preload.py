"""``serve --preload``: local studies are queued at start-up through the upload intake."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from mammocad.pipeline import Pipeline
from mammocad.serve import create_app
from mammocad.serve.preload import group_by_study

from .conftest import make_key, settings_for


def _worklist(client: TestClient, key: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/studies", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _wait_done(client: TestClient, key: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 90
    while True:
        items = _worklist(client, key)
        if len(items) == count and all(i["status"] in ("done", "failed") for i in items):
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.2)


def test_grouping_skips_files_that_are_not_dicom(
    phantom_study: Path, second_study: Path, tmp_path: Path
) -> None:
    stray = tmp_path / "notes.txt"
    stray.write_text("not a mammogram")
    groups = group_by_study([phantom_study, second_study, stray, tmp_path / "missing"])
    assert len(groups) == 2
    assert sorted(len(files) for files in groups.values()) == [4, 4]
    assert all(f.suffix != ".json" for files in groups.values() for f in files)


def test_preloaded_studies_are_analysed_once_across_restarts(
    phantom_study: Path, second_study: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    app = create_app(settings, pipeline=pipeline, preload=[phantom_study, second_study])
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        items = _wait_done(client, key, 2)
        first_jobs = {client.get(i["url"], headers=auth).json()["job"]["id"] for i in items}
    assert {i["status"] for i in items} == {"done"}
    # the same preload again: both studies are known, nothing new is stored or queued
    app = create_app(settings, pipeline=pipeline, preload=[phantom_study, second_study])
    with TestClient(app) as client:
        again = _worklist(client, key)
        jobs = {client.get(i["url"], headers=auth).json()["job"]["id"] for i in again}
    assert len(again) == 2
    assert jobs == first_jobs  # no new job was queued for a known study
    assert {i["study_instance_uid"] for i in again} == {i["study_instance_uid"] for i in items}


def test_headers_are_read_without_a_private_payload(tmp_path: Path) -> None:
    # Hologic exports carry proprietary projection objects whose payload (tens to hundreds
    # of MB) sits in a private element: grouping a folder and scanning an upload read the
    # identifiers only, and must not load it
    import tracemalloc

    from pydicom import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from mammocad.serve.uploads import Received, ScannedFile, scan_header

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.Modality = generate_uid(), "MG"
    ds.add_new(0x7E010010, "LO", "HOLOGIC, Inc.")
    ds.add_new(0x7E011010, "OB", bytes(8 * 2**20))
    path = tmp_path / "propproj.dcm"
    ds.save_as(path, enforce_file_format=True)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        groups = group_by_study([tmp_path])
        scanned = scan_header(Received(name=path.name, path=path, size=size))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert groups == {ds.StudyInstanceUID: [path]}
    assert isinstance(scanned, ScannedFile) and scanned.sop_instance_uid == ds.SOPInstanceUID
    assert peak < size / 4, f"peak {peak / 1e6:.1f} MB reading a {size / 1e6:.1f} MB file"
