"""Per-study spool folders on disk, closed after an idle timeout.

C-STORE has no "study complete" message (PS3.4 Annex B stores one instance per request, and an
association may carry part of a study or several studies), so a study is taken as complete when
no new instance of it has arrived for ``idle_timeout_s``. Layout of the spool::

    SPOOL/incoming/<StudyInstanceUID>/<SOPInstanceUID>.dcm   instances as received, still open
    SPOOL/closed/<StudyInstanceUID>-<time>/instances/           closed: moved here in one rename
    SPOOL/closed/<StudyInstanceUID>-<time>/results/             written by the study handler
    SPOOL/failed/<StudyInstanceUID>-<time>/reason.txt         kept when a study failed
    SPOOL/done/<StudyInstanceUID>-<time>/                     kept only with ``keep_studies``

An instance of a study that arrives after the study was closed opens a new incoming folder, so
a closed batch never changes under the handler. The folders survive a restart: open studies are
picked up again by :meth:`StudyCollector.recover` and closed after a fresh timeout.

A study is also kept open while an association ("sender") whose latest instance was of it is
still receiving C-STORE data: a large instance (a tomosynthesis object of 0.5–1 GB takes
several seconds) then does not split its study into two batches. The idle clock of such a study
runs from the later of its last stored instance and its senders' last data.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

_UID = re.compile(r"^[0-9.]{1,64}$")
_PART = ".part"  # a file being written; never seen by the handler


def _place(source: Path, target: Path) -> None:
    """``source`` (a received file that its owner deletes afterwards) at ``target``: a hard
    link where possible, so that a large instance is neither read nor copied; otherwise (another
    file system, or none with hard links) a copy, streamed by the kernel. The file gets the
    permissions a new file in ``target``'s folder gets (the folder's, less execute)."""
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
        return
    target.chmod(target.parent.stat().st_mode & 0o666)  # mkstemp made it 0600


def uid_name(uid: str) -> str:
    """A file name for a UID: the UID itself (PS3.5 9.1: digits and dots, at most 64
    characters), else a hash, so that a malformed UID cannot reach outside the spool."""
    if _UID.fullmatch(uid) and uid.strip("."):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedStudy:
    """A study whose instances will not change any more: hand ``instances_dir`` to a handler."""

    study_instance_uid: str
    folder: Path
    instances: int
    calling_aets: frozenset[str]

    @property
    def instances_dir(self) -> Path:
        return self.folder / "instances"

    @property
    def results_dir(self) -> Path:
        return self.folder / "results"


@dataclass(slots=True)
class _OpenStudy:
    uid: str
    folder: Path
    last_seen: float
    instances: int = 0
    writing: int = 0  # files being written now: the study is not closed under them
    calling_aets: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Sender:
    """An open association: when it last received data, and the open study (a key of
    ``StudyCollector._open``) of its latest instance."""

    last_data: float
    study: str | None = None


class StudyCollector:
    """Writes received instances into per-study folders and closes idle studies.

    Thread-safe: :meth:`store` is called from the SCP's association threads, a watcher thread
    closes studies and calls ``on_closed`` (outside the lock) for each.
    """

    def __init__(
        self,
        *,
        spool_dir: Path,
        idle_timeout_s: float,
        on_closed: Callable[[ClosedStudy], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool_dir = spool_dir
        self.idle_timeout_s = idle_timeout_s
        self._on_closed = on_closed
        self._clock = clock
        self._open: dict[str, _OpenStudy] = {}
        self._senders: dict[Hashable, _Sender] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        for name in ("incoming", "closed", "failed", "done"):
            (spool_dir / name).mkdir(parents=True, exist_ok=True)

    # -- receiving ---------------------------------------------------------------------------

    def store(
        self,
        *,
        study_instance_uid: str,
        sop_instance_uid: str,
        data: bytes | Path,
        calling_aet: str,
        sender: Hashable | None = None,
    ) -> Path:
        """Put one received instance into its study's open folder, unchanged. ``data``: a
        complete DICOM file (preamble and file meta included), as bytes or as a file that is
        hard-linked into the spool (copied when that is not possible: another file system).
        ``sender``: the association it came by (see :meth:`receiving`)."""
        key = uid_name(study_instance_uid)
        with self._lock:
            study = self._open.get(key)
            if study is None:
                folder = self.spool_dir / "incoming" / key
                # before the study is registered: a spool that cannot be written now must not
                # leave an open study without a folder, refusing its instances ever after
                folder.mkdir(parents=True, exist_ok=True)
                study = self._open[key] = _OpenStudy(study_instance_uid, folder, self._clock())
                self._wake.set()
            study.writing += 1
        path = study.folder / f"{uid_name(sop_instance_uid)}.dcm"
        partial = path.with_name(f"{path.name}.{threading.get_ident()}{_PART}")
        written = False
        try:
            if isinstance(data, Path):
                _place(data, partial)
            else:
                partial.write_bytes(data)
            partial.replace(path)  # atomic: a re-sent instance replaces the earlier copy
            written = True
        except OSError:
            with contextlib.suppress(OSError):  # a full disk gets no fuller from failed writes
                partial.unlink(missing_ok=True)
            raise
        finally:
            with self._lock:
                study.writing -= 1
                study.last_seen = self._clock()
                if written:
                    study.instances += 1
                    study.calling_aets.add(calling_aet)
                    if sender is not None and sender in self._senders:
                        # one C-STORE at a time: data that follows belongs to this study's
                        # next instance or a later study's, never to a study it left
                        self._senders[sender].study = key
        return path

    def receiving(self, sender: Hashable) -> None:
        """C-STORE data arrived on ``sender`` (an association, any hashable token; called for
        every PDU with a data set fragment, not for a C-ECHO): the open study of its latest
        instance is not closed while it goes on."""
        now = self._clock()
        with self._lock:
            known = self._senders.get(sender)
            if known is None:
                self._senders[sender] = _Sender(now)
            else:
                known.last_data = now

    def sender_gone(self, sender: Hashable) -> None:
        """``sender``'s connection closed: its study's idle clock runs from its last data."""
        with self._lock:
            gone = self._senders.pop(sender, None)
            study = self._open.get(gone.study) if gone and gone.study else None
            if gone is not None and study is not None:
                study.last_seen = max(study.last_seen, gone.last_data)

    def _last_activity(self, key: str, study: _OpenStudy) -> float:
        """The later of the study's last stored instance and its open senders' last data."""
        times = [s.last_data for s in self._senders.values() if s.study == key]
        return max([study.last_seen, *times])

    def open_studies(self) -> dict[str, int]:
        """StudyInstanceUID → instances received so far, for each study not closed yet."""
        with self._lock:
            return {study.uid: study.instances for study in self._open.values()}

    # -- closing -----------------------------------------------------------------------------

    def close_idle(self, *, force: bool = False) -> list[ClosedStudy]:
        """Close every study idle for ``idle_timeout_s`` (``force``: every study not being
        written to) and return them; ``on_closed`` is not called here."""
        now, closed = self._clock(), []
        with self._lock:
            for key, study in list(self._open.items()):
                idle = now - self._last_activity(key, study) >= self.idle_timeout_s
                if study.writing == 0 and (force or idle):
                    del self._open[key]
                    for sender in self._senders.values():
                        if sender.study == key:  # a later instance opens a new batch
                            sender.study = None
                    if study.instances == 0:  # every write failed (disk full): nothing to analyse
                        logger.warning(
                            "study %s closed with no instance stored (every write failed and "
                            "was answered 0xA700): nothing to analyse; check free space and "
                            "permissions of %s, then have the study sent again",
                            study.uid, self.spool_dir,
                        )  # fmt: skip
                        shutil.rmtree(study.folder, ignore_errors=True)
                        continue
                    try:
                        closed.append(self._close(study))
                    except OSError as error:
                        if not study.folder.is_dir():  # removed by hand: nothing to close
                            logger.warning("study %s could not be closed (%s)", study.uid, error)
                            continue
                        # disk trouble (full, read-only): the study stays open and is tried
                        # again after another idle timeout, not left in incoming/ until the
                        # node restarts (a new instance of it would have reopened it anyway)
                        logger.warning(
                            "study %s could not be closed (%s): trying again in %.1f s",
                            study.uid, error, self.idle_timeout_s,
                        )  # fmt: skip
                        study.last_seen = now
                        self._open[key] = study
        return closed

    def _close(self, study: _OpenStudy) -> ClosedStudy:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = self.spool_dir / "closed" / f"{study.folder.name}-{stamp}"
        folder.mkdir(parents=True)
        try:
            study.folder.rename(folder / "instances")  # one rename: the handler sees all or nothing
        except OSError:
            with contextlib.suppress(OSError):
                folder.rmdir()  # empty: left, it would be handed on as a study of no instance
            raise
        return ClosedStudy(
            study_instance_uid=study.uid,
            folder=folder,
            instances=sum(1 for _ in (folder / "instances").glob("*.dcm")),
            calling_aets=frozenset(study.calling_aets),
        )

    def _next_wait(self) -> float | None:
        with self._lock:
            if not self._open:
                return None
            oldest = min(self._last_activity(key, study) for key, study in self._open.items())
        return max(0.05, oldest + self.idle_timeout_s - self._clock())

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                closed = self.close_idle()
            except Exception:  # never let the watcher die: studies would stop closing
                logger.exception("closing idle studies failed")
                closed = []
            for study in closed:
                self._deliver(study)
            self._wake.clear()
            # a study added meanwhile sets _wake; deadlines only move later otherwise
            self._wake.wait(self._next_wait())

    def _deliver(self, study: ClosedStudy) -> None:
        logger.info(
            "study %s closed after %.1f s idle: %d instances from %s",
            study.study_instance_uid, self.idle_timeout_s, study.instances,
            ", ".join(sorted(study.calling_aets)) or "an earlier run",
        )  # fmt: skip
        try:
            self._on_closed(study)
        except Exception:  # the watcher must survive whatever the consumer does
            logger.exception("closed study %s could not be handed on", study.study_instance_uid)

    # -- lifecycle ---------------------------------------------------------------------------

    def recover(self) -> list[ClosedStudy]:
        """Pick up what an earlier run left: open folders get a fresh idle timeout; closed
        ones (interrupted while being handled) are returned to be handled again."""
        with self._lock:
            for folder in sorted((self.spool_dir / "incoming").iterdir()):
                for partial in folder.glob(f"*{_PART}"):
                    partial.unlink()
                count = sum(1 for _ in folder.glob("*.dcm"))
                # the folder name is the UID unless it had to be hashed (then the hash stands in)
                self._open[folder.name] = _OpenStudy(
                    folder.name, folder, self._clock(), instances=count
                )
        pending = []
        for folder in sorted((self.spool_dir / "closed").iterdir()):
            if not (folder / "instances").is_dir():
                # made by a close that stopped before its rename (the node was killed): its
                # instances are still in incoming/, reopened above. rmdir removes it only when
                # empty; one that is not is handed on as before (and filed away under failed/)
                with contextlib.suppress(OSError):
                    folder.rmdir()
                if not folder.exists():
                    continue
            shutil.rmtree(folder / "results", ignore_errors=True)
            uid = folder.name.rsplit("-", 1)[0]
            count = sum(1 for _ in (folder / "instances").glob("*.dcm"))
            pending.append(
                ClosedStudy(
                    study_instance_uid=uid, folder=folder, instances=count, calling_aets=frozenset()
                )
            )
        return pending

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the collector is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._watch, name="study-collector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop closing studies; open folders stay on disk for :meth:`recover`."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
