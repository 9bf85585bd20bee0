"""Copies of a known instance, or several copies in one upload: a larger copy is not taken on
trust. A file made larger by damage (pixel data two rows longer than the header's matrix: the
reader rejects it ``decode_failed``) must not overwrite a good stored image, nor be kept over
the good copy sent with it; a good copy does replace a stored file the reader rejects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from sqlalchemy import select

from mammocad.commands.analyze import safe_name
from mammocad.io import read_dicom
from mammocad.jobs.stages import INPUT_FOLDER, study_folder
from mammocad.store.models import AuditEntry
from mammocad.store.session import database_url, make_engine, session_factory

from .conftest import Api, dicoms


def damaged_copy(source: Path, target: Path) -> Path:
    """``source`` with two rows of bytes appended to its (decompressed) pixel data: larger
    than ``source``, same SOP Instance UID, rejected ``decode_failed`` by the reader."""
    ds = pydicom.dcmread(source)
    uid = ds.SOPInstanceUID
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(generate_instance_uid=False)  # the same instance, not a new one
    ds.PixelData = ds.PixelData + bytes(2 * ds.Columns * ds.BitsAllocated // 8)
    ds.save_as(target)
    assert target.stat().st_size > source.stat().st_size
    assert pydicom.dcmread(target, stop_before_pixels=True).SOPInstanceUID == uid
    image = read_dicom(target)
    assert image.rejection_code == "decode_failed"
    assert "the header does not describe the pixel data" in (image.rejection_text or "")
    return target


def stored_file(api: Api, source: Path) -> Path:
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    folder = api.settings.data_dir / study_folder(ds.StudyInstanceUID) / INPUT_FOLDER
    return folder / f"{safe_name(ds.SOPInstanceUID)}.dcm"


def audit_details(api: Api, uid: str) -> list[str]:
    url = database_url(data_dir=api.settings.data_dir, override=api.settings.database_url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.study_instance_uid == uid)
                .order_by(AuditEntry.id)
            )
            return [row.detail or "" for row in rows]
    finally:
        engine.dispose()


def test_a_larger_damaged_copy_does_not_replace_a_good_stored_one(
    start_api: Callable[..., Api], second_study: Path, tmp_path: Path
) -> None:
    files = dicoms(second_study)
    api = start_api()
    first = api.upload(files)
    assert first.status_code == 202, first.text
    done = api.wait(first.json()["location"])
    assert done["status"] == "done", done
    stored = stored_file(api, files[0])
    assert stored.read_bytes() == files[0].read_bytes()

    damaged = damaged_copy(files[0], tmp_path / files[0].name)
    again = api.upload([damaged, *files[1:]])
    # nothing new: no job queued, the study's latest job answered, the good file kept
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["job_id"] == first.json()["job_id"]
    assert body["new_instances"] == 0 and body["known_instances"] == 4
    assert stored.read_bytes() == files[0].read_bytes()
    detail = audit_details(api, body["study_instance_uid"])[-1]
    assert detail.startswith("0 new, 0 replacing")
    assert detail.endswith("copies not stored: 1 of another size than a stored copy that reads")


def test_of_copies_in_one_upload_the_one_that_reads_is_kept(
    idle_api: Api, phantom_study: Path, second_study: Path, tmp_path: Path
) -> None:
    api = idle_api
    # the damaged copy sent first and larger, the good one with it: the good one is stored
    files = dicoms(phantom_study)
    damaged = damaged_copy(files[0], tmp_path / "damaged.dcm")
    sent = api.upload([damaged, *files])
    assert sent.status_code == 202, sent.text
    assert sent.json()["new_instances"] == 4 and sent.json()["known_instances"] == 1
    assert stored_file(api, files[0]).read_bytes() == files[0].read_bytes()
    detail = audit_details(api, sent.json()["study_instance_uid"])[-1]
    assert detail.endswith("copies not stored: 1 rejected when read (decode_failed)")

    # a study stored with the damaged copy alone (sent before this rule): the good copy,
    # smaller, sent again replaces it
    others = dicoms(second_study)
    bad = damaged_copy(others[0], tmp_path / "bad.dcm")
    assert api.upload([bad, *others[1:]]).json()["new_instances"] == 4
    assert stored_file(api, others[0]).read_bytes() == bad.read_bytes()
    repaired = api.upload([others[0]])
    assert repaired.status_code == 202, repaired.text
    assert repaired.json()["new_instances"] == 1
    assert stored_file(api, others[0]).read_bytes() == others[0].read_bytes()
    # the good copy sent once more changes nothing (no read: same size as the stored one)
    same = api.upload([others[0]])
    assert same.json()["new_instances"] == 0 and same.json()["known_instances"] == 1
