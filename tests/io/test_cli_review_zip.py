"""Zip archives that are damaged member by member, or name members with ``./`` or ``../``:
every member is reported (read or rejected with a sentence), none is lost, nothing raises."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom.uid import generate_uid

from mammocad.errors import RejectionCode
from mammocad.io import load_studies

if TYPE_CHECKING:
    from conftest import DicomFactory


def _two_members(mg: DicomFactory, compression: int = zipfile.ZIP_STORED) -> bytes:
    """``a.dcm`` and ``b.dcm``, two images of one study, as zip bytes."""
    study = generate_uid()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, side in (("a.dcm", "L"), ("b.dcm", "R")):
            ds = mg.mg_dataset(mg.phantom(seed=ord(side)), StudyInstanceUID=study)
            ds.ImageLaterality = side
            archive.writestr(name, mg.to_bytes(ds))
    return buffer.getvalue()


def _first_member_damaged(data: bytes) -> bytes:
    """Overwrite bytes inside the first member's data (the central directory stays intact)."""
    damaged = bytearray(data)
    damaged[2000:2400] = bytes(range(256)) + bytes(144)
    return bytes(damaged)


def _first_member_flagged(data: bytes, *, encrypted: bool = False, method: int = 0) -> bytes:
    """Mark the first member encrypted, or give it an unsupported compression method."""
    marked = bytearray(data)
    central = marked.find(b"PK\x01\x02")
    if encrypted:
        marked[6] |= 1  # general purpose bit 0, local header and central directory
        marked[central + 8] |= 1
    if method:
        marked[8:10] = struct.pack("<H", method)
        marked[central + 10 : central + 12] = struct.pack("<H", method)
    return bytes(marked)


@pytest.mark.parametrize(
    ("case", "compression"),
    [
        ("bad_crc", zipfile.ZIP_STORED),
        ("corrupt_deflate", zipfile.ZIP_DEFLATED),
        ("encrypted", zipfile.ZIP_STORED),
        ("unsupported_method", zipfile.ZIP_STORED),
    ],
)
def test_a_damaged_member_is_rejected_and_the_others_are_read(
    tmp_path: Path, mg: DicomFactory, case: str, compression: int
) -> None:
    data = _two_members(mg, compression)
    if case in ("bad_crc", "corrupt_deflate"):
        data = _first_member_damaged(data)
    else:
        data = _first_member_flagged(
            data, encrypted=case == "encrypted", method=97 if case == "unsupported_method" else 0
        )
    archive = tmp_path / "exam.zip"
    archive.write_bytes(data)

    result = load_studies(archive)  # must not raise

    by_source = {image.source: image for image in result.images()}
    assert set(by_source) == {f"{archive}!a.dcm", f"{archive}!b.dcm"}
    damaged = by_source[f"{archive}!a.dcm"]
    assert damaged.rejection_code is RejectionCode.UNREADABLE
    assert "zip" in str(damaged.rejection_text)
    assert "again" in str(damaged.rejection_text)  # says what to do
    assert by_source[f"{archive}!b.dcm"].is_processed


def test_members_named_with_dot_segments_are_read(tmp_path: Path, mg: DicomFactory) -> None:
    """Some archivers store ``./study/a.dcm``: a ``.`` segment is no hidden file."""
    archive = tmp_path / "exam.zip"
    names = ["./study/a.dcm", "study/./b.dcm", "../c.dcm", "study/.hidden.dcm"]
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in names:
            zipped.writestr(name, mg.to_bytes(mg.mg_dataset(mg.phantom())))

    result = load_studies(archive)

    sources = {image.source for image in result.images()}
    assert sources == {f"{archive}!{name}" for name in names[:3]}  # the hidden one is skipped
    assert all(image.is_processed for image in result.images())
