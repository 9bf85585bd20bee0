"""Receiving an upload: limits, one zip or DICOM files, header scan, grouping by study.

Nothing here decodes pixels: the header pass says which study and instance each file is, so
the request answers at once and the job does the heavy reading. Files that are not DICOM
are listed as ``ignored`` with the reason; an upload with no DICOM file at all is refused.
"""

from __future__ import annotations

import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mammocad.commands.analyze import safe_name
from mammocad.errors import MammocadError
from mammocad.io.dicom import read_header
from mammocad.io.naming import patient_key
from mammocad.io.sources import HEAD_SIZE, FileKind, sniff
from mammocad.serve.schemas import UID_PATTERN
from mammocad.store.repository import StudyHeader

CHUNK = 1024 * 1024
_UID = re.compile(UID_PATTERN)  # the API's (schemas.Uid): a UID the service can keep and address


class UploadError(MammocadError):
    """The upload is refused as a whole: ``status_code`` 400, 413 (or 503 when the job queue
    is unreachable), ``code`` machine-readable."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


#: entries a container may list (a zip's directory, a STOW-RS body's parts), per file an
#: upload may hold: folders, and other studies' instances in one STOW-RS request, count too,
#: but each entry costs memory before any can be checked (CWE-770; a 23 MB zip of 500 000
#: empty entries took 190 MB to open)
ENTRIES_PER_FILE = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    max_files: int
    max_file_bytes: int
    max_upload_bytes: int

    @property
    def max_entries(self) -> int:
        return ENTRIES_PER_FILE * self.max_files


@dataclass(frozen=True, slots=True, kw_only=True)
class Incoming:
    """One part of the multipart body: the client's file name and an open stream."""

    name: str
    stream: IO[bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    name: str  # as the client named it (zip: ``archive.zip!member``)
    path: Path  # staged copy
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScannedFile:
    received: Received
    header: StudyHeader
    sop_instance_uid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    name: str
    reason: str


def _too_many(count: int, limits: UploadLimits) -> UploadError:
    return UploadError(
        413,
        "too_many_files",
        f"{count} files in one upload; the limit is {limits.max_files} "
        "(MAMMOCAD_MAX_FILES): upload the study in parts or one study at a time",
    )


def _too_large(name: str, limits: UploadLimits) -> UploadError:
    return UploadError(
        413,
        "file_too_large",
        f"{name} is larger than {limits.max_file_bytes} bytes (MAMMOCAD_MAX_FILE_BYTES)",
    )


def _copy_limited(source: IO[bytes], target: Path, *, name: str, limits: UploadLimits) -> int:
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limits.max_file_bytes:
                raise _too_large(name, limits)
            out.write(chunk)
    return size


_END_OF_DIRECTORY = b"PK\x05\x06"  # APPNOTE.TXT 4.3.16; the entry count is at offset 10


def _declared_entries(path: Path) -> int | None:
    """The total number of entries the end of central directory record of ``path`` declares
    (65535 for a ZIP64 archive's placeholder), ``None`` when no record is found."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - (22 + 0xFFFF)))  # the record, after a comment of <= 64 KiB
        tail = handle.read()
    at = tail.rfind(_END_OF_DIRECTORY)
    if at < 0 or len(tail) < at + 12:
        return None
    return int(struct.unpack_from("<H", tail, at + 10)[0])


def _expand_zip(archive: Received, staging: Path, limits: UploadLimits) -> list[Received]:
    """The members of ``archive``; limits are checked on the bytes actually inflated, so a
    zip bomb stops at the limit whatever its directory claims. zipfile builds an object per
    directory entry before any can be counted: the count the end record declares comes first."""
    declared = _declared_entries(archive.path)
    if declared is not None and declared > limits.max_entries:
        raise _too_many(declared, limits)
    try:
        with zipfile.ZipFile(archive.path) as handle:
            members = [info for info in handle.infolist() if not info.is_dir()]
            if len(members) > limits.max_files:
                raise _too_many(len(members), limits)
            received, total = [], 0
            for index, info in enumerate(members):
                name = f"{archive.name}!{info.filename}"
                target = staging / f"z{index:05d}"  # our names: no path traversal possible
                with handle.open(info) as stream:
                    size = _copy_limited(stream, target, name=name, limits=limits)
                total += size
                if total > limits.max_upload_bytes:
                    raise UploadError(
                        413,
                        "upload_too_large",
                        f"the zip inflates to more than {limits.max_upload_bytes} bytes "
                        "(MAMMOCAD_MAX_UPLOAD_BYTES): upload the study in parts",
                    )
                received.append(Received(name=name, path=target, size=size))
    except RuntimeError as error:  # zipfile's answer to an encrypted member
        raise UploadError(
            400,
            "bad_zip",
            f"{archive.name} is password-protected ({error}): zip the files without a password",
        ) from error
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        zlib.error,  # a member's compressed data is corrupt
    ) as error:
        raise UploadError(
            400, "bad_zip", f"{archive.name} is not a readable zip archive ({error})"
        ) from error
    archive.path.unlink(missing_ok=True)
    return received


def _is_zip(path: Path) -> bool:
    with path.open("rb") as handle:
        return sniff(handle.read(HEAD_SIZE)) is FileKind.ZIP


def receive(incoming: Sequence[Incoming], staging: Path, limits: UploadLimits) -> list[Received]:
    """Copy the parts into ``staging`` (one zip is expanded), enforcing ``limits``.

    Raises:
        UploadError: no files, too many, too large, a zip among other files or a bad zip.
    """
    if not incoming:
        raise UploadError(400, "no_files", "send the study as multipart field 'files'")
    if len(incoming) > limits.max_files:
        raise _too_many(len(incoming), limits)
    staging.mkdir(parents=True, exist_ok=True)
    received = []
    for index, part in enumerate(incoming):
        target = staging / f"f{index:05d}"
        size = _copy_limited(part.stream, target, name=part.name, limits=limits)
        received.append(Received(name=part.name or f"file {index + 1}", path=target, size=size))
    zips = [item for item in received if _is_zip(item.path)]
    if zips and len(received) > 1:
        raise UploadError(
            400,
            "zip_with_files",
            "send either DICOM files or one zip archive per upload, not a zip among files",
        )
    if zips:
        return _expand_zip(zips[0], staging, limits)
    return received


def _text(value: object) -> str | None:
    # NUL is no character of a DICOM text value, and PostgreSQL text cannot hold it
    text = str(value).replace("\x00", "").strip() if value is not None else ""
    return text or None


def valid_uid(uid: str) -> bool:
    """Whether the service can store and address ``uid`` (all dots would name no folder)."""
    return _UID.fullmatch(uid) is not None and uid.strip(".") != ""


def scan_header(item: Received) -> ScannedFile | Ignored:
    """Identifiers of one staged file, or why it cannot be taken."""
    with item.path.open("rb") as handle:
        kind = sniff(handle.read(HEAD_SIZE))
    if kind not in (FileKind.DICOM, FileKind.DICOM_RAW):
        return Ignored(name=item.name, reason="not a DICOM file (PS3.10)")
    try:
        with item.path.open("rb") as handle:
            ds = read_header(handle, force=kind is FileKind.DICOM_RAW)
        study_uid, sop_uid = _text(ds.get("StudyInstanceUID")), _text(ds.get("SOPInstanceUID"))
        # pydicom converts values when first read: an element of unknown VR raises here
        values = {
            keyword: _text(ds.get(keyword))
            for keyword in ("PatientID", "AccessionNumber", "StudyDate", "StudyTime")
        }
    except Exception as error:  # pydicom raises many types on broken headers
        return Ignored(name=item.name, reason=f"unreadable DICOM header ({error})")
    if not study_uid or not sop_uid:
        return Ignored(
            name=item.name,
            reason="no StudyInstanceUID or SOPInstanceUID: re-export it from the PACS",
        )
    for tag, uid in (("StudyInstanceUID", study_uid), ("SOPInstanceUID", sop_uid)):
        if not valid_uid(uid):
            return Ignored(
                name=item.name,
                reason=f"{tag} {uid[:80]!r} is not a UID the service can keep (at most 64 "
                "characters of letters, digits, '.', '_' or '-'; DICOM UIDs are digits and "
                "dots): re-export it from the PACS",
            )
    header = StudyHeader(
        study_instance_uid=study_uid,
        patient_id=values["PatientID"],
        accession_number=values["AccessionNumber"],
        study_date=values["StudyDate"],
        study_time=values["StudyTime"],
    )
    return ScannedFile(received=item, header=header, sop_instance_uid=sop_uid)


def scan(received: Sequence[Received]) -> tuple[list[ScannedFile], list[Ignored]]:
    """The DICOM files of one study and the files ignored.

    Raises:
        UploadError: no DICOM file at all, or files of several studies.
    """
    scanned: list[ScannedFile] = []
    ignored: list[Ignored] = []
    for item in received:
        outcome = scan_header(item)
        if isinstance(outcome, ScannedFile):
            scanned.append(outcome)
        else:
            ignored.append(outcome)
    if not scanned:
        reasons = "; ".join(f"{entry.name}: {entry.reason}" for entry in ignored[:5])
        raise UploadError(
            400, "not_dicom", f"no DICOM image in the upload ({reasons}); send DICOM files"
        )
    uids = sorted({item.header.study_instance_uid for item in scanned})
    if len(uids) > 1:
        raise UploadError(
            400,
            "several_studies",
            f"the upload holds {len(uids)} studies ({', '.join(uids[:3])}…): upload one "
            "study per request" + _one_patient_hint(scanned),
        )
    return scanned, ignored


def _one_patient_hint(scanned: Sequence[ScannedFile]) -> str:
    """Where every file is of one patient (CBIS-DDSM stores each view as a study of its
    own), the way to read them as one examination. The service keeps the studies as the
    archive has them: its results and DICOM outputs go back into those studies."""
    patients = {patient_key(item.header.patient_id) for item in scanned}
    if len(patients) != 1 or None in patients:
        return ""
    return (
        f"; all are of patient {patients.pop()}: if they are the views of one examination "
        "stored as studies of their own, `mammocad analyze --group-by patient` reads them as "
        "one study"
    )


def stored_name(sop_instance_uid: str) -> str:
    """The name an instance's file is stored under in a study's input folder."""
    return f"{safe_name(sop_instance_uid)}.dcm"


def place(files: Sequence[ScannedFile], folder: Path) -> list[tuple[ScannedFile, str]]:
    """Move ``files`` into ``folder`` as ``<SOPInstanceUID>.dcm``; returns (file, name).

    A file already moved there (an earlier try whose transaction failed: the intake records
    it again) is taken as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    placed = []
    for item in files:
        name = stored_name(item.sop_instance_uid)
        if item.received.path.exists() or not (folder / name).is_file():
            shutil.move(item.received.path, folder / name)
        placed.append((item, name))
    return placed
