"""Start-up clears the staging folders of uploads whose process died mid-way (crash, kill):
only those nothing has written to for a day, since the API's workers, the DICOM node and
another server may share the data dir and be writing theirs now; stored studies stay as
they are."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mammocad.pipeline import Pipeline
from mammocad.serve import create_app
from mammocad.serve.intake import STAGING_FOLDER

from .conftest import Api, dicoms, make_key, settings_for

DAY = 24 * 3600.0


def aged(path: Path, seconds: float) -> Path:
    """``path`` and everything under it last written ``seconds`` ago (the folder last: setting
    a file's time does not touch its folder's)."""
    when = time.time() - seconds
    for item in [*sorted(path.rglob("*"), reverse=True), path] if path.is_dir() else [path]:
        os.utime(item, (when, when))
    return path


def staging(data_dir: Path, name: str | None = None) -> Path:
    folder = data_dir / STAGING_FOLDER / (name or uuid.uuid4().hex)
    folder.mkdir(parents=True)
    return folder


def crashed_upload(data_dir: Path, study: Path) -> Path:
    """What ``accept`` leaves when its process dies while receiving: copies of the parts and
    the last one cut short."""
    folder = staging(data_dir)
    files = dicoms(study)
    for index, path in enumerate(files[:-1]):
        shutil.copyfile(path, folder / f"f{index:05d}")
    (folder / f"f{len(files) - 1:05d}").write_bytes(files[-1].read_bytes()[:5000])
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def start(settings: Any, pipeline: Pipeline, key: str) -> tuple[TestClient, Api]:
    client = TestClient(create_app(settings, pipeline=pipeline, start_workers=False))
    client.__enter__()
    return client, Api(client=client, settings=settings, key=key)


def test_start_removes_stale_staging_only(
    tmp_path: Path,
    pipeline: Pipeline,
    database: str | None,
    phantom_study: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crashed upload's folder untouched for two days goes; one written now (another
    process's upload in flight), the DICOM node's staging of old spool files linked in just
    now, a folder intake did not make and every stored study file stay."""
    settings = settings_for(tmp_path / "data", database)
    key = make_key(settings)
    client, api = start(settings, pipeline, key)
    try:
        uploaded = api.upload(dicoms(phantom_study))
        assert uploaded.status_code == 202, uploaded.text
    finally:
        client.__exit__(None, None, None)
    data = settings.data_dir
    studies = aged(data / "studies", 3 * DAY)  # old stored files: an age rule must spare them
    stored = digests(studies)
    assert len([name for name in stored if name.endswith(".dcm")]) == 4

    stale = aged(crashed_upload(data, phantom_study), 2 * DAY)
    stale_bytes = folder_bytes(stale)
    in_flight = crashed_upload(data, phantom_study)  # being received now by another process
    spool = tmp_path / "spool"
    spool.mkdir()
    old_instance = spool / "instance.dcm"
    shutil.copyfile(dicoms(phantom_study)[0], old_instance)
    aged(old_instance, 3 * DAY)
    node_staging = staging(data)
    os.link(old_instance, node_staging / "n00000")  # its time is the spool file's: 3 days
    foreign = aged(staging(data, "kept-by-hand"), 2 * DAY)
    (foreign / "note.txt").write_text("not intake's")
    aged(foreign, 2 * DAY)

    with caplog.at_level(logging.INFO, logger="mammocad.serve.intake"):
        client, api = start(settings, pipeline, key)
    try:
        assert not stale.exists()
        assert sorted(p.name for p in in_flight.iterdir()) == sorted(f"f{i:05d}" for i in range(4))
        assert (node_staging / "n00000").is_file()
        assert old_instance.read_bytes() == dicoms(phantom_study)[0].read_bytes()
        assert (foreign / "note.txt").is_file()
        assert digests(studies) == stored
        listed = api.client.get("/api/v1/studies", headers=api.auth).json()
        assert listed["total"] == 1
        lines = [r.getMessage() for r in caplog.records if "stale staging" in r.getMessage()]
        assert len(lines) == 1, lines
        assert f"removed 1 stale staging folder(s) ({stale_bytes} bytes)" in lines[0]
        # the service takes uploads as before (its own staging folder cleared after)
        again = api.upload(dicoms(phantom_study))
        assert again.status_code == 200, again.text
        assert sorted(p.name for p in (data / STAGING_FOLDER).iterdir()) == sorted(
            [in_flight.name, node_staging.name, foreign.name]
        )
    finally:
        client.__exit__(None, None, None)


def test_stale_staging_that_cannot_be_removed_is_logged_and_start_goes_on(
    tmp_path: Path,
    pipeline: Pipeline,
    phantom_study: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(tmp_path / "data")
    key = make_key(settings)
    stale = aged(crashed_upload(settings.data_dir, phantom_study), 2 * DAY)
    real_rmtree = shutil.rmtree

    def refused(path: Any, *args: Any, **kwargs: Any) -> None:
        # as a permission or disk error leaves it (the tests run as root: chmod would not)
        if Path(path) != stale:
            real_rmtree(path, *args, **kwargs)
        elif not kwargs.get("ignore_errors"):
            raise PermissionError(13, "Permission denied", str(stale / "f00000"))

    monkeypatch.setattr(shutil, "rmtree", refused)
    with caplog.at_level(logging.INFO, logger="mammocad.serve.intake"):
        client, api = start(settings, pipeline, key)
    try:
        assert api.client.get("/health/live").status_code == 200
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            f"stale staging folder {stale} could not be removed: remove it by hand"
        ]
        assert not any("removed" in r.getMessage() for r in caplog.records if r not in warnings)
        assert stale.is_dir()
    finally:
        client.__exit__(None, None, None)
