"""The DICOM node: SCP → spool → (idle timeout) → study handler → C-STORE to the destination.

Threads: pynetdicom's server and association threads receive; the collector's watcher closes
idle studies; one worker takes closed studies from a queue, one at a time, runs the handler and
sends the results. Nothing a study does stops the node: every failure is logged with its
reason and the study's folder is kept under ``SPOOL/failed/`` with a ``reason.txt``.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pydicom.uid import UID

from mammocad.dicomnode.collector import ClosedStudy, StudyCollector
from mammocad.dicomnode.forward import ForwardReport, send_files
from mammocad.dicomnode.handler import StudyHandler, StudyHandlingError
from mammocad.dicomnode.scp import StorageSCP
from mammocad.dicomnode.settings import Destination, NodeSettings

logger = logging.getLogger(__name__)

#: ``send(paths, destination=..., calling_ae_title=..., timeout_s=...)``; tests may replace it
Sender = Callable[..., ForwardReport]


@dataclass(slots=True, kw_only=True)
class StudyOutcome:
    """What became of one closed study; ``error`` is ``None`` when all went well."""

    study_instance_uid: str
    folder: Path | None  # where its files are now (None: removed after success)
    outputs: list[Path] = field(default_factory=list)  # names only once the folder is removed
    forward: ForwardReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class DicomNode:
    """Start with :meth:`start` (or ``with DicomNode(...) as node``), stop with :meth:`stop`."""

    def __init__(
        self,
        *,
        settings: NodeSettings,
        handler: StudyHandler,
        on_done: Callable[[StudyOutcome], None] | None = None,
        sender: Sender = send_files,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self._on_done = on_done
        self._send = sender
        self._queue: queue.Queue[ClosedStudy | None] = queue.Queue()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self.collector = StudyCollector(
            spool_dir=settings.spool_dir,
            idle_timeout_s=settings.idle_timeout_s,
            on_closed=self._queue.put,
        )
        self.scp = StorageSCP(settings=settings, collector=self.collector)

    @property
    def port(self) -> int:
        return self.scp.port

    def start(self) -> None:
        self._stopping.clear()
        for study in self.collector.recover():
            logger.info("study %s from an earlier run queued again", study.study_instance_uid)
            self._queue.put(study)
        self._worker = threading.Thread(target=self._work, name="study-worker", daemon=True)
        self._worker.start()
        self.collector.start()
        self.scp.start()
        where = self.settings.destination or "nowhere (results stay in the spool)"
        logger.info(
            "DICOM node %s listening on port %d; results go to %s; studies close after %.1f s idle",
            self.settings.ae_title, self.port, where, self.settings.idle_timeout_s,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop receiving, let the study being analysed finish; open and queued studies stay
        in the spool and are taken up again by the next :meth:`start`."""
        self.scp.stop()
        self.collector.stop()
        self._stopping.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        logger.info("DICOM node %s stopped", self.settings.ae_title)

    def __enter__(self) -> DicomNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            study = self._queue.get()
            if study is None or self._stopping.is_set():
                return
            outcome = self.process(study)
            if self._on_done is not None:
                try:
                    self._on_done(outcome)
                except Exception:
                    logger.exception("on_done callback failed")

    def process(self, study: ClosedStudy) -> StudyOutcome:
        """Analyse one closed study, send its results, file its folder away; never raises."""
        uid = study.study_instance_uid
        outcome = StudyOutcome(study_instance_uid=uid, folder=study.folder)
        try:
            outcome.outputs = list(self.handler(study.instances_dir, out_dir=study.results_dir))
            destination = self.settings.destination
            if destination is not None and outcome.outputs:
                outcome.forward = self._forward(outcome.outputs, destination)
                if outcome.forward.failures:
                    outcome.error = f"sending failed: {outcome.forward.summary()}"
        except StudyHandlingError as error:  # expected: the message says it all
            outcome.error = str(error)
        except Exception as error:  # a failing study is logged and kept; the node goes on
            logger.exception("study %s failed", uid)
            outcome.error = f"{type(error).__name__}: {error}"
        outcome.folder = self._file_away(study, outcome)
        if outcome.error is None:
            logger.info(
                "study %s done: %d result objects%s", uid, len(outcome.outputs),
                f", {outcome.forward.summary()}" if outcome.forward else " kept in the spool",
            )  # fmt: skip
        else:
            logger.error("study %s failed: %s (kept in %s)", uid, outcome.error, outcome.folder)
        return outcome

    def _forward(self, outputs: Sequence[Path], destination: Destination) -> ForwardReport:
        report = self._send(
            outputs,
            destination=destination,
            calling_ae_title=self.settings.ae_title,
            timeout_s=self.settings.network_timeout_s,
        )
        for sent in report.objects:
            syntax = UID(sent.transfer_syntax).name if sent.transfer_syntax else "-"
            if sent.converted_from:
                syntax += f" (re-encoded from {UID(sent.converted_from).name})"
            logger.info(
                "C-STORE %s → %s: %s in %s", sent.path.name, destination,
                f"0x{sent.status:04X}" if sent.status is not None else sent.error, syntax,
            )  # fmt: skip
        return report

    def _file_away(self, study: ClosedStudy, outcome: StudyOutcome) -> Path | None:
        """Success: remove (or move to ``done/``); failure: move to ``failed/`` with the reason.
        Only a study with no results to send anywhere (no destination) keeps its results."""
        keep = self.settings.keep_studies or self.settings.destination is None
        try:
            if outcome.ok and not keep:
                shutil.rmtree(study.folder)
                return None
            target = self.settings.spool_dir / ("done" if outcome.ok else "failed")
            moved = Path(shutil.move(study.folder, target / study.folder.name))
            if not outcome.ok:
                (moved / "reason.txt").write_text(f"{outcome.error}\n", encoding="utf-8")
            return moved
        except OSError:
            logger.exception("spool folder %s could not be filed away", study.folder)
            return study.folder
