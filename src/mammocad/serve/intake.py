"""An accepted upload becomes stored files, a study row and (when something is new) a job.

Files land in ``<data-dir>/studies/<StudyInstanceUID>/input/<SOPInstanceUID>.dcm``; an
instance the study already has is not stored again, so uploading the same study twice adds
nothing and queues nothing. The exception is a stored file the reader rejects for a fault of
the file (:data:`~mammocad.io.assemble.FILE_FAULTS`: cut short by a transfer broken off,
damaged): a copy of another size that reads without such a fault replaces it, and the study is
analysed again. A larger copy alone is not trusted: garbage appended, or a header naming
another matrix, makes a file both larger and damaged, and a good stored image must not be
lost to it. Any copy of an instance whose stored file is gone (its job failed saying to upload
the study again) replaces it too. Of several copies of one instance in an upload the largest
that reads without such a fault is kept, else the largest, as assembly reads them.

Files are read (decoded) only in those rare cases: one instance sent twice, or a copy whose
size differs from the stored one's; then before the lock and the transaction are taken. The
usual upload (new instances, or the same files again) reads none.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mammocad.errors import MammocadError
from mammocad.io.assemble import FILE_FAULTS
from mammocad.io.dicom import read_dicom
from mammocad.jobs.queue import JobQueue
from mammocad.jobs.stages import INPUT_FOLDER, study_folder
from mammocad.serve.schemas import IgnoredFile, UploadAccepted
from mammocad.serve.state import AppState
from mammocad.serve.uploads import (
    Ignored,
    Incoming,
    ScannedFile,
    UploadError,
    UploadLimits,
    place,
    receive,
    scan,
    stored_name,
)
from mammocad.serve.views import job_url
from mammocad.store.keys import audit
from mammocad.store.models import Job, JobStatus
from mammocad.store.repository import (
    StoredFile,
    add_study_files,
    enqueue_job,
    get_job,
    get_study,
    latest_job,
    mark_failed,
)
from mammocad.store.session import transaction

logger = logging.getLogger(__name__)

STAGING_FOLDER = "uploads"
#: a staging folder nothing has written to for this long is a dead intake's (see
#: :func:`clear_stale_staging`)
STALE_STAGING_S = 24 * 3600.0
_STAGING_NAME = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: the only names staging folders get
# one upload at a time places files and rows: two uploads of the same new study must not
# both create it (across processes the unique StudyInstanceUID stops the second)
_placing = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    body: UploadAccepted
    queued: bool  # a new job was queued rather than the latest one returned (to submit)


def limits_of(state: AppState) -> UploadLimits:
    settings = state.settings
    return UploadLimits(
        max_files=settings.max_files,
        max_file_bytes=settings.max_file_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )


def _needs_job(job: Job | None, new: int) -> bool:
    if job is None or job.status == JobStatus.FAILED.value:
        return True  # a failed analysis is retried by uploading again
    if job.status == JobStatus.DONE.value and job.error:
        return True  # so is a done one whose results could not be pushed (PushStage)
    return new > 0 and job.status != JobStatus.QUEUED.value  # a queued job reads them anyway


def _copies(scanned: Sequence[ScannedFile]) -> dict[str, list[ScannedFile]]:
    """The copies of each SOP Instance UID, larger first (a copy cut short is smaller), in the
    order sent among equal sizes."""
    copies: dict[str, list[ScannedFile]] = {}
    for item in scanned:
        copies.setdefault(item.sop_instance_uid, []).append(item)
    return {uid: sorted(group, key=lambda f: -f.received.size) for uid, group in copies.items()}


@dataclass(slots=True)
class _Reads:
    """What the reader said of the files one intake had to read, each read once: the code of
    its rejection for a fault of the file (``FILE_FAULTS``, as assembly judges a copy), or
    ``None``. A staged copy is this intake's own and never changes; a stored file is known by
    its inode, size and time too (another intake may have replaced it since)."""

    copies: dict[Path, str | None] = field(default_factory=dict)
    stored: dict[tuple[Path, int, int, int], str | None] = field(default_factory=dict)

    def copy_fault(self, item: ScannedFile) -> str | None:
        path = item.received.path
        if path not in self.copies:
            self.copies[path] = _fault(path)
        return self.copies[path]

    def stored_fault(self, path: Path) -> str | None:
        try:
            info = path.stat()
        except OSError:
            return _fault(path)  # gone meanwhile: the reader says so (unreadable)
        key = (path, info.st_ino, info.st_size, info.st_mtime_ns)
        if key not in self.stored:
            self.stored[key] = _fault(path)
        return self.stored[key]


def _fault(path: Path) -> str | None:
    code = read_dicom(path).rejection_code  # decodes: the job's reader, the job's verdict
    return code.value if code is not None and code in FILE_FAULTS else None


def _choose(
    copies: Sequence[ScannedFile], stored: tuple[Path, int] | None, reads: _Reads
) -> ScannedFile | None:
    """The copy of one instance to place, of its ``copies`` (larger first), or ``None`` to
    keep the stored one. ``stored``: the stored file and its size, ``None`` when there is none
    (a new instance, or its file is gone).

    A stored file is replaced only when it is rejected for a fault of its file and a copy of
    another size is not (a copy of the same size is taken for the same file: the usual
    re-upload reads nothing). Where there is no stored file, the largest copy that is not
    rejected so, else the largest; one copy alone is placed unread."""
    if stored is None:
        if len(copies) == 1:
            return copies[0]
        return next((c for c in copies if reads.copy_fault(c) is None), copies[0])
    path, size = stored
    other = [c for c in copies if c.received.size != size]
    if not other or reads.stored_fault(path) is None:
        return None
    return next((c for c in other if reads.copy_fault(c) is None), None)


def _chosen(
    copies: Mapping[str, Sequence[ScannedFile]],
    stored: Mapping[str, tuple[Path, int]],
    reads: _Reads,
) -> dict[str, ScannedFile]:
    chosen = {}
    for uid, group in copies.items():
        item = _choose(group, stored.get(uid), reads)
        if item is not None:
            chosen[uid] = item
    return chosen


def _on_disk(inputs: Path, uids: Sequence[str]) -> dict[str, tuple[Path, int]]:
    """The files under ``inputs`` named for ``uids`` (as :func:`place` names them), and their
    sizes: the stored copies as far as the disk tells, before the database is asked."""
    found = {}
    for uid in uids:
        path = inputs / stored_name(uid)
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found[uid] = (path, info.st_size)
    return found


def accept(state: AppState, incoming: Sequence[Incoming], *, actor: str) -> Intake:
    """Store the upload and queue its analysis.

    Raises:
        UploadError: the upload is refused (limits, not DICOM, several studies).
    """
    staging = state.settings.data_dir / STAGING_FOLDER / uuid.uuid4().hex
    try:
        scanned, ignored = scan(receive(incoming, staging, limits_of(state)))
        return store_scanned(
            state.settings.data_dir, state.sessions, state.workers,
            scanned=scanned, ignored=ignored, actor=actor,
        )  # fmt: skip
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def clear_stale_staging(data_dir: Path, *, max_age_s: float = STALE_STAGING_S) -> tuple[int, int]:
    """Remove the staging folders under ``data_dir/uploads/`` that nothing has written to for
    ``max_age_s``: those of uploads (and DICOM node intakes) whose process died mid-way, before
    the ``finally`` that removes them. Called at start-up by ``mammocad serve`` and the node.

    Returns the folders removed and their bytes; never raises: a folder that cannot be removed
    is logged and left. Only ``uploads/<32 hex digits>/`` folders are looked at: stored study
    files are never there (intake moves them out), and a hard link the node staged is only one
    name of a spool file, which keeps its own.

    Why an age, not "every folder" or a process id: the server's workers, the DICOM node and
    another server may share one data dir at once (docker compose runs them on one volume), and
    a start must never remove the folder of an intake another live process is writing. A
    process id says nothing across containers (each has its own PID namespace) or machines
    (a shared data dir); an age does, on any of them. A live intake writes its folder within
    seconds to minutes (one request, one study); the last write is the newest modification time
    of the folder itself (a file created, linked or moved out) and of its files (bytes written):
    a hard link the node makes keeps its spool file's old time, but creating it touches the
    folder. 24 hours untouched is a dead intake, whatever clock skew between machines.
    """
    root = data_dir / STAGING_FOLDER
    try:
        with os.scandir(root) as listing:
            names = sorted(entry.name for entry in listing)
    except FileNotFoundError:
        return 0, 0
    except OSError as error:
        logger.warning("staging folder %s could not be read (%s): nothing cleared", root, error)
        return 0, 0
    now, removed, freed = time.time(), 0, 0
    for name in names:
        folder = root / name
        if not _STAGING_NAME.fullmatch(name):
            continue  # not a folder intake made: left alone
        try:
            if not stat.S_ISDIR(folder.lstat().st_mode):
                continue  # a link or a file: not a folder intake made either
            last_write, size = _last_write(folder)
        except OSError:  # gone meanwhile (another process's start-up cleared it)
            continue
        if now - last_write < max_age_s:
            continue  # possibly a live intake, of this process or another
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():  # a permission or disk error; what another start removed is gone
            logger.warning(
                "stale staging folder %s could not be removed: remove it by hand", folder
            )
            continue
        removed, freed = removed + 1, freed + size
    if removed:
        logger.info(
            "removed %d stale staging folder(s) (%d bytes) under %s: uploads whose process "
            "stopped mid-way at least %.0f h ago", removed, freed, root, max_age_s / 3600,
        )  # fmt: skip
    return removed, freed


def _last_write(folder: Path) -> tuple[float, int]:
    """The newest modification time in ``folder`` (itself included) and its files' bytes.

    Raises:
        OSError: ``folder`` is gone or unreadable.
    """
    newest, size = folder.lstat().st_mtime, 0
    for parent, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            try:
                info = (Path(parent) / name).lstat()
            except FileNotFoundError:  # moved out meanwhile: the folder's own time says so
                continue
            newest = max(newest, info.st_mtime)
            if stat.S_ISREG(info.st_mode):
                size += info.st_size
    return newest, size


def store_scanned(
    data_dir: Path,
    sessions: sessionmaker[Session],
    workers: JobQueue | None,
    *,
    scanned: Sequence[ScannedFile],
    ignored: Sequence[Ignored] = (),
    actor: str,
) -> Intake:
    """Move the already scanned files of one study (:func:`~mammocad.serve.uploads.scan`)
    into its folder, record them, queue a job when one is needed and hand it to ``workers``.

    The core of every intake (upload, DICOMweb, ``--preload``, the DICOM node's queued
    handler); ``scanned`` files are moved, so they must be staged copies under ``data_dir``.

    Raises:
        UploadError: 503 when ``workers`` cannot take the job (the job is marked failed).
    """
    reads = _Reads()  # kept across attempts: a copy placed by the first is not read again
    for attempt in (1, 2):
        try:
            body, queued = _record(data_dir, sessions, scanned, ignored, reads, actor=actor)
            break
        except IntegrityError:
            # another process (the DICOM node, a second server) created the same new study
            # between our read and our commit; read it again, now as an existing study
            if attempt == 2:
                raise
            logger.info(
                "study %s was created by another process meanwhile: recording the upload again",
                scanned[0].header.study_instance_uid,
            )
    if queued and workers is not None:
        _submit(sessions, workers, body.job_id)
    return Intake(body=body, queued=queued)


def _record(
    data_dir: Path,
    sessions: sessionmaker[Session],
    scanned: Sequence[ScannedFile],
    ignored: Sequence[Ignored],
    reads: _Reads,
    *,
    actor: str,
) -> tuple[UploadAccepted, bool]:
    """Place the files and record them (one transaction); the answer and whether a new job
    was queued.

    Raises:
        IntegrityError: another process created the study meanwhile (its files are placed:
            :func:`~mammocad.serve.uploads.place` takes already placed files as they are).
    """
    header = scanned[0].header
    folder = study_folder(header.study_instance_uid)
    inputs = data_dir / folder / INPUT_FOLDER
    copies = _copies(scanned)
    # the files to read, read now, outside the lock and the transaction: the choice made
    # inside finds them read unless another intake changed the study meanwhile
    _chosen(copies, _on_disk(inputs, list(copies)), reads)
    with _placing, transaction(sessions) as session:
        existing = get_study(session, header.study_instance_uid)
        known = {i.sop_instance_uid: i for i in existing.images} if existing else {}
        stored = {
            uid: (inputs / known[uid].file_name, known[uid].size_bytes)
            for uid in copies
            if uid in known and (inputs / known[uid].file_name).is_file()
        }
        chosen = _chosen(copies, stored, reads)
        # copies of another size than a stored file that reads: not read, not stored (asked
        # before placing: the stored file's verdict is known, for the file still there)
        beside = sum(
            1
            for uid, group in copies.items()
            if uid in stored and uid not in chosen
            for f in group
            if f.received.size != stored[uid][1] and reads.stored_fault(stored[uid][0]) is None
        )
        fresh = [f for uid, f in chosen.items() if uid not in known]
        # a stored copy rejected for a fault of its file, or gone (its job failed "upload the
        # study again"): the copy chosen now replaces it
        whole = [f for uid, f in chosen.items() if uid in known]
        stored_files = [
            StoredFile(
                sop_instance_uid=f.sop_instance_uid, file_name=name, size_bytes=f.received.size
            )
            for f, name in place(fresh, inputs)
        ]
        place(whole, inputs)  # under the stored copy's name: the damaged copy is overwritten
        for f in whole:
            known[f.sop_instance_uid].size_bytes = f.received.size
        study = add_study_files(session, header=header, folder=folder, files=stored_files)
        changed = len(fresh) + len(whole)
        job = latest_job(study)
        queued = _needs_job(job, changed)
        if queued or job is None:
            job = enqueue_job(session, study)
        placed = {id(f) for f in chosen.values()}
        refused = [
            (f, code)
            for f in scanned
            if id(f) not in placed and (code := reads.copies.get(f.received.path)) is not None
        ]
        audit(
            session,
            actor=actor,
            action="create" if existing is None else "upload",
            study_instance_uid=study.study_instance_uid,
            detail=(
                f"{len(fresh)} new, {len(whole)} replacing damaged or missing stored copies, "
                f"{len(known)} known, {len(ignored)} ignored files"
                + _not_stored(beside, [code for _, code in refused])
            ),
        )
        body = UploadAccepted(
            job_id=job.id,
            study_instance_uid=study.study_instance_uid,
            status=job.status,
            location=job_url(job.id),
            new_instances=changed,
            # copies not stored (the same file again, one of another size while the stored
            # file reads, one rejected when read) are of instances the study has, or copies
            # of one this upload adds
            known_instances=len(scanned) - changed,
            ignored=[IgnoredFile(name=i.name, reason=i.reason) for i in ignored],
        )
    if beside:
        logger.info(
            "%d copies of another size than their stored copy were not stored: the stored "
            "copies read", beside,
        )  # fmt: skip
    for f, code in refused:
        logger.warning(
            "%s (SOPInstanceUID %s) is not stored: it is rejected when read (%s) and another "
            "copy is kept", f.received.name, f.sop_instance_uid, code,
        )  # fmt: skip
    return body, queued


def _not_stored(beside: int, codes: Sequence[str]) -> str:
    """The audit's words on the copies not stored for what reading said, else nothing."""
    parts = [f"{beside} of another size than a stored copy that reads"] if beside else []
    if codes:
        parts.append(f"{len(codes)} rejected when read ({', '.join(sorted(set(codes)))})")
    return f"; copies not stored: {', '.join(parts)}" if parts else ""


def _submit(sessions: sessionmaker[Session], workers: JobQueue, job_id: str) -> None:
    try:
        workers.submit(job_id)
    except MammocadError as error:  # the broker is away: the job cannot run
        with transaction(sessions) as session:
            job = get_job(session, job_id)
            if job is not None:
                mark_failed(session, job, error=str(error))  # uploading again retries
        raise UploadError(503, "queue_unavailable", str(error)) from error
