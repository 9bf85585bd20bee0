"""DICOMweb STOW-RS (PS3.18 §10.5): ``POST /dicomweb/studies[/{study}]`` stores instances.

The body is ``multipart/related; type="application/dicom"; boundary=...``, one DICOM
instance (PS3.10) per part. It is spooled to a temporary file as it arrives, split into parts
by a small streaming splitter (no part is held in memory whole beyond :data:`SPOOL_BYTES`),
and the instances are grouped by StudyInstanceUID: each study goes through
:func:`mammocad.serve.intake.accept` like an upload, which stores it and queues its analysis.

The answer (PS3.18 §10.5.3) is an ``application/dicom+json`` data set: 200 when every instance
was stored, 202 when some failed, 409 when none was stored; ReferencedSOPSequence lists the
stored instances and FailedSOPSequence the others with a FailureReason. 400 is a body that is
not a readable multipart/related message, 415 a body of another media type.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import JSONResponse
from pydicom.dataset import Dataset
from starlette.concurrency import run_in_threadpool

from mammocad.io.dicom import read_header
from mammocad.io.sources import HEAD_SIZE, FileKind, sniff
from mammocad.report.dicom.sr import MANUFACTURER
from mammocad.serve.auth import Authenticated
from mammocad.serve.intake import accept, limits_of
from mammocad.serve.schemas import ErrorBody, Uid
from mammocad.serve.state import AppState, app_state
from mammocad.serve.uploads import ENTRIES_PER_FILE, Incoming, UploadError
from mammocad.serve.views import study_url

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

DICOM_JSON = "application/dicom+json"
SPOOL_BYTES = 1024 * 1024  # a part (and the body) stays in memory up to this size
READ_BYTES = 256 * 1024
MAX_HEADER_BYTES = 16 * 1024  # the headers of one part

# Failure reasons (PS3.4 Annex GG / PS3.18 §10.5.3)
CANNOT_UNDERSTAND = 0xC000  # not DICOM, unreadable header, no UIDs, not application/dicom
OUT_OF_RESOURCES = 0xA700  # over the upload limits
PROCESSING_FAILURE = 0x0110  # the study could not be stored or queued
# the instance belongs to another study than the one in the URL (as dcm4chee-arc answers)
DIFFERENT_STUDY = 0xC409

SEND = (
    'send the instances as multipart/related; type="application/dicom"; boundary=<boundary>, '
    "one DICOM file (PS3.10) per part"
)

STOW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {DICOM_JSON: {}}, "description": "All instances stored"},
    202: {"content": {DICOM_JSON: {}}, "description": "Some stored, some failed"},
    400: {"model": ErrorBody, "description": "Not a readable multipart/related body"},
    409: {"content": {DICOM_JSON: {}}, "description": "No instance stored"},
    413: {"model": ErrorBody, "description": "The request body is too large"},
    415: {"model": ErrorBody, "description": "Not multipart/related of application/dicom"},
}


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


@dataclass(slots=True, kw_only=True)
class Part:
    """One part of the body: its headers and its content (spooled)."""

    headers: Message
    content: IO[bytes]
    size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Instance:
    """A part that reads as a DICOM instance."""

    index: int
    part: Part
    study_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    own: bool = False  # one of our own results: acknowledged, not taken in


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    sop_class_uid: str
    sop_instance_uid: str
    reason: int
    why: str


@dataclass(slots=True)
class Outcome:
    stored: list[Instance] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # closed by the caller


def split_multipart(
    source: IO[bytes], boundary: str, *, max_parts: int | None = None
) -> list[Part]:
    """The parts of the multipart body in ``source`` (RFC 2046 §5.1.1), read in chunks.

    Raises:
        MultipartError: no opening or closing delimiter, or headers too long.
        UploadError: 413 for more than ``max_parts`` parts (each costs memory and a header
            parse: a body of empty parts must stop at the limit, not at the end).
    """
    # a CRLF before the body makes the first delimiter look like every other one
    delimiter = b"\r\n--" + boundary.encode("ascii")
    keep = len(delimiter) + 2
    buffer = b"\r\n"
    parts: list[Part] = []
    state = "preamble"
    current: Part | None = None
    at_end = False

    def more() -> bool:
        nonlocal buffer, at_end
        if at_end:
            return False
        chunk = source.read(READ_BYTES)
        if not chunk:
            at_end = True
            return False
        buffer += chunk
        return True

    while True:
        if state in ("preamble", "body"):
            found = buffer.find(delimiter)
            if found < 0:
                if state == "body" and current is not None and len(buffer) > keep:
                    current.content.write(buffer[:-keep])
                    current.size += len(buffer) - keep
                    buffer = buffer[-keep:]
                elif state == "preamble" and len(buffer) > keep:
                    buffer = buffer[-keep:]
                if not more():
                    raise MultipartError(
                        f"no delimiter --{boundary} found"
                        if state == "preamble"
                        else f"the body ends inside a part: no closing --{boundary}--"
                    )
                continue
            if state == "body" and current is not None:
                current.content.write(buffer[:found])
                current.size += found
                current.content.seek(0)
                parts.append(current)
                current = None
            buffer = buffer[found + len(delimiter) :]
            state = "delimiter"
        elif state == "delimiter":
            line_end = buffer.find(b"\r\n")
            if buffer.startswith(b"--"):
                return parts  # the close delimiter: the epilogue is ignored
            if line_end < 0:
                if len(buffer) > MAX_HEADER_BYTES or not more():
                    raise MultipartError(f"a delimiter --{boundary} is not followed by CRLF")
                continue
            if buffer[:line_end].strip(b" \t"):
                raise MultipartError(f"text after a delimiter --{boundary} on its line")
            buffer = buffer[line_end + 2 :]
            state = "headers"
        else:  # headers
            if buffer.startswith(b"\r\n"):
                header_end, skip = 0, 2
            else:
                header_end, skip = buffer.find(b"\r\n\r\n"), 4
            if header_end < 0:
                if len(buffer) > MAX_HEADER_BYTES or not more():
                    raise MultipartError("the headers of a part do not end (no empty line)")
                continue
            if max_parts is not None and len(parts) >= max_parts:
                raise UploadError(
                    413,
                    "too_many_files",
                    f"more than {max_parts} parts in one request ({ENTRIES_PER_FILE} × "
                    "MAMMOCAD_MAX_FILES): send the instances in several requests",
                )
            headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
                buffer[:header_end]
            )
            current = Part(headers=headers, content=_spool())
            buffer = buffer[header_end + skip :]
            state = "body"


def _content_type(header: str) -> Message:
    message = Message()
    message["Content-Type"] = header
    return message


MAX_BOUNDARY = 200


def _boundary(header: str | None) -> str:
    """The boundary of a STOW-RS body's Content-Type.

    Raises:
        UploadError: 415 for another media type, 400 for a missing or bad boundary.
    """
    if not header:
        raise UploadError(415, "unsupported_media_type", f"no Content-Type: {SEND}")
    content_type = _content_type(header)
    kind = content_type.get_content_type()
    part_type = content_type.get_param("type")
    part_type = part_type.strip().lower() if isinstance(part_type, str) else None
    if kind != "multipart/related" or part_type not in (None, "application/dicom"):
        shown = f"{kind}" + (f' of "{part_type}"' if part_type else "")
        raise UploadError(415, "unsupported_media_type", f"{shown} is not supported: {SEND}")
    boundary = content_type.get_param("boundary")
    # RFC 2046 §5.1.1 allows at most 70 characters, but Orthanc's DICOMweb plugin (1.7) sends
    # 73 (a UUID twice): accept longer ones, up to a bound that keeps the search cheap
    if (
        not isinstance(boundary, str)
        or not 1 <= len(boundary) <= MAX_BOUNDARY
        or not boundary.isascii()
    ):
        raise UploadError(400, "bad_multipart", f"no valid boundary parameter: {SEND}")
    return boundary


def _text(value: object) -> str:
    return str(value).strip() if value is not None else ""


def read_instance(index: int, part: Part) -> Instance | Failure:
    """The identifiers of one part, or why it cannot be stored."""
    declared = part.headers.get_content_type() if part.headers.get("Content-Type") else None
    if declared not in (None, "application/dicom"):
        return Failure(
            sop_class_uid="",
            sop_instance_uid="",
            reason=CANNOT_UNDERSTAND,
            why=f"part {index + 1} is {declared}, not application/dicom",
        )
    kind = sniff(part.content.read(HEAD_SIZE))
    part.content.seek(0)
    if kind not in (FileKind.DICOM, FileKind.DICOM_RAW):
        return Failure(
            sop_class_uid="",
            sop_instance_uid="",
            reason=CANNOT_UNDERSTAND,
            why=f"part {index + 1} is not a DICOM file (PS3.10)",
        )
    try:
        ds = read_header(cast(BinaryIO, part.content), force=kind is FileKind.DICOM_RAW)
        study_uid, sop_class = _text(ds.get("StudyInstanceUID")), _text(ds.get("SOPClassUID"))
        sop_uid = _text(ds.get("SOPInstanceUID"))
        # our own results (docs/dicom-outputs.md), sent back by a PACS that forwards studies
        own = _text(ds.get("Manufacturer")) == MANUFACTURER
    except Exception as error:  # pydicom raises many types on broken headers
        return Failure(
            sop_class_uid="",
            sop_instance_uid="",
            reason=CANNOT_UNDERSTAND,
            why=f"part {index + 1}: unreadable DICOM header ({error})",
        )
    finally:
        part.content.seek(0)
    if not study_uid or not sop_uid:
        return Failure(
            sop_class_uid=sop_class,
            sop_instance_uid=sop_uid,
            reason=CANNOT_UNDERSTAND,
            why=f"part {index + 1} has no StudyInstanceUID or SOPInstanceUID",
        )
    return Instance(
        index=index,
        part=part,
        study_uid=study_uid,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        own=own,
    )


def _failed(instances: Sequence[Instance], reason: int, why: str) -> list[Failure]:
    return [
        Failure(
            sop_class_uid=i.sop_class_uid,
            sop_instance_uid=i.sop_instance_uid,
            reason=reason,
            why=why,
        )
        for i in instances
    ]


def _by_study(instances: Sequence[Instance]) -> Iterator[tuple[str, list[Instance]]]:
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        groups.setdefault(instance.study_uid, []).append(instance)
    yield from groups.items()


def store(state: AppState, parts: Sequence[Part], *, target: str | None, actor: str) -> Outcome:
    """Store ``parts`` study by study (one :func:`accept` each); ``target`` is the study of
    the URL, whose instances alone are taken."""
    outcome = Outcome()
    instances: list[Instance] = []
    for index, part in enumerate(parts):
        read = read_instance(index, part)
        if isinstance(read, Failure):
            outcome.failed.append(read)
        elif target is not None and read.study_uid != target:
            outcome.failed.extend(
                _failed([read], DIFFERENT_STUDY, f"of study {read.study_uid}, not {target}")
            )
        elif read.own:
            # acknowledged (the sender did nothing wrong) but not taken in: as new instances
            # they would queue another analysis, whose results the PACS forwards again (a loop)
            logger.info("STOW-RS: own result %s acknowledged, not stored", read.sop_instance_uid)
            outcome.stored.append(read)
        else:
            instances.append(read)
    max_file_bytes = limits_of(state).max_file_bytes
    for study_uid, whole in _by_study(instances):
        # an instance over the file limit fails alone (PS3.18 §10.5.3 is per instance): the
        # intake would refuse the whole study for it, 2D views along with a large tomosynthesis
        # object
        group = [i for i in whole if i.part.size <= max_file_bytes]
        if too_large := [i for i in whole if i.part.size > max_file_bytes]:
            why = f"larger than {max_file_bytes} bytes (MAMMOCAD_MAX_FILE_BYTES)"
            outcome.failed.extend(_failed(too_large, OUT_OF_RESOURCES, why))
        if not group:
            continue
        incoming = [Incoming(name=f"part {i.index + 1}", stream=i.part.content) for i in group]
        try:
            intake = accept(state, incoming, actor=actor)
        except UploadError as error:
            reason = OUT_OF_RESOURCES if error.status_code == 413 else PROCESSING_FAILURE
            if error.code == "not_dicom":
                reason = CANNOT_UNDERSTAND
            logger.info("STOW-RS: study %s refused: %s", study_uid, error.message)
            outcome.failed.extend(_failed(group, reason, error.message))
            continue
        ignored = {entry.name for entry in intake.body.ignored}
        for instance in group:
            if f"part {instance.index + 1}" in ignored:
                outcome.failed.extend(_failed([instance], CANNOT_UNDERSTAND, "ignored"))
            else:
                outcome.stored.append(instance)
        outcome.studies.append(study_uid)
    for failure in outcome.failed:
        logger.info("STOW-RS: instance %r failed: %s", failure.sop_instance_uid, failure.why)
    return outcome


def response_dataset(outcome: Outcome, base_url: str) -> Dataset:
    """The Store Instances Response Module (PS3.18 Table 10.5.3-2) of ``outcome``."""
    ds = Dataset()
    if len(outcome.studies) == 1:  # the study (our REST view of it: no WADO-RS here)
        ds.RetrieveURL = base_url + study_url(outcome.studies[0])
    if outcome.failed:
        failed = []
        for failure in outcome.failed:
            item = Dataset()
            item.ReferencedSOPClassUID = failure.sop_class_uid
            item.ReferencedSOPInstanceUID = failure.sop_instance_uid
            item.FailureReason = failure.reason
            failed.append(item)
        ds.FailedSOPSequence = failed
    referenced = []
    for instance in outcome.stored:
        item = Dataset()
        item.ReferencedSOPClassUID = instance.sop_class_uid
        item.ReferencedSOPInstanceUID = instance.sop_instance_uid
        referenced.append(item)
    if referenced:
        ds.ReferencedSOPSequence = referenced
    return ds


def _status(outcome: Outcome) -> int:
    if not outcome.failed:
        return status.HTTP_200_OK
    return status.HTTP_202_ACCEPTED if outcome.stored else status.HTTP_409_CONFLICT


def _close(parts: Sequence[Part]) -> None:
    for part in parts:
        part.content.close()


async def _stow(request: Request, actor: str, target: str | None) -> JSONResponse:
    boundary = _boundary(request.headers.get("content-type"))
    with _spool() as body:
        async for chunk in request.stream():
            body.write(chunk)
        body.seek(0)
        try:
            max_parts = limits_of(app_state(request)).max_entries  # a folder of studies fits
            parts = await run_in_threadpool(split_multipart, body, boundary, max_parts=max_parts)
        except MultipartError as error:
            raise UploadError(400, "bad_multipart", f"{error}: {SEND}") from error
    try:
        if not parts:
            raise UploadError(400, "no_instances", f"the body holds no part: {SEND}")
        state = app_state(request)
        outcome = await run_in_threadpool(store, state, parts, target=target, actor=actor)
    finally:
        _close(parts)
    base_url = str(request.base_url).rstrip("/")
    return JSONResponse(
        response_dataset(outcome, base_url).to_json_dict(),
        status_code=_status(outcome),
        media_type=DICOM_JSON,
    )


DESCRIPTION = (
    'Body: `multipart/related; type="application/dicom"; boundary=...`, one DICOM instance '
    "per part. Instances are grouped by study; each study is stored and its analysis queued "
    "as with `POST /api/v1/studies` (follow it with `GET /api/v1/studies/{uid}`). Answers an "
    "`application/dicom+json` Store Instances Response: 200 all stored, 202 some failed "
    "(FailedSOPSequence), 409 none stored."
)


@router.post(
    "/studies",
    responses=STOW_RESPONSES,
    summary="STOW-RS: store DICOM instances (any studies) and queue their analysis",
    description=DESCRIPTION,
)
async def stow_studies(request: Request, principal: Authenticated) -> JSONResponse:
    return await _stow(request, principal.name, None)


@router.post(
    "/studies/{study_uid}",
    responses=STOW_RESPONSES,
    summary="STOW-RS: store DICOM instances of one study and queue its analysis",
    description=DESCRIPTION + " Instances of another study fail (FailureReason 0xC409).",
)
async def stow_study(
    request: Request,
    principal: Authenticated,
    study_uid: Annotated[Uid, Path(description="StudyInstanceUID")],
) -> JSONResponse:
    return await _stow(request, principal.name, study_uid)
