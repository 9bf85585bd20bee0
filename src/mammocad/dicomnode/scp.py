"""The node's acceptor side: Verification (C-ECHO) and Storage (C-STORE) SCP with pynetdicom.

* Association acceptance (PS3.8 Section 9.3.3–9.3.4, Table 9-21): a calling AE title not on
  the allow-list is rejected with A-ASSOCIATE-RJ result "rejected-permanent", source "DICOM UL
  service-user (ACSE related)", reason 3 "calling-AE-title-not-recognized"; a called AE title
  other than the node's with reason 7 "called-AE-title-not-recognized".
* C-ECHO (PS3.7 Section 9.1.5, PS3.4 Annex A): always Success.
* C-STORE (PS3.7 Section 9.1.1, PS3.4 Annex B): the data set is written exactly as it came
  over the wire (file meta + encoded bytes, no decode/re-encode), then Success is returned.
  pynetdicom writes it to a temporary file as its fragments arrive
  (``_config.STORE_RECV_CHUNKED_DATASET``, see :func:`receive_data_sets_to_disk`); only the
  header is read (not the pixel data), and the file is hard-linked (or copied) into the spool,
  so that an instance of 1 GB (tomosynthesis) is never held in memory.
  Statuses on failure follow PS3.4 Table B.2-1: 0xA700 out of resources (the spool could not be
  written), 0xA900 data set does not match SOP class (no Study/SOP Instance UID), 0xC210 cannot
  understand (the data set does not decode).
* Every association is logged when its connection closes: calling AE, address, instances
  stored / refused, and how it ended (released, aborted, rejected).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from mammocad.dicomnode.collector import StudyCollector
from mammocad.dicomnode.settings import NodeSettings
from mammocad.io.tags import text_value
from mammocad.report.dicom.sr import MANUFACTURER

logger = logging.getLogger(__name__)

OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC210
#: all the node reads of a received data set (never its pixel data)
_HEADER_TAGS = ["StudyInstanceUID", "SOPInstanceUID", "Manufacturer"]


def receive_data_sets_to_disk() -> None:
    """Have pynetdicom write every received C-STORE data set to a temporary file as it
    arrives, instead of collecting it in memory (``STORE_RECV_CHUNKED_DATASET``).

    In memory a received instance cost about three times its size (pynetdicom's receive
    buffer, the decoded data set, the encoded copy written to the spool): a few associations
    sending tomosynthesis objects of 0.5–1 GB at once could exhaust the node's memory. On disk
    it costs a few PDUs. The file (``event.dataset_path``) holds the 128-byte preamble, "DICM",
    the File Meta Information pynetdicom builds from the request (the same bytes as
    ``event.encoded_dataset(include_meta=True)``) and the data set as received; it is made with
    ``tempfile.NamedTemporaryFile(delete=False)`` in ``tempfile.gettempdir()`` (``TMPDIR``) and
    unlinked by pynetdicom once the ``EVT_C_STORE`` handler has returned.

    The setting is a module-level switch of pynetdicom, so it holds for every SCP in the
    process: their ``event.dataset`` reads the file (unchanged for them), but
    ``event.encoded_dataset()`` then returns the file meta without the data set. No other
    SCP runs in the node's process (``mammocad dicom-node``); an embedding application that
    runs one must use ``event.dataset`` or ``event.dataset_path``. It is set when an SCP
    starts and never reset: other nodes in the same process (tests) may still be receiving.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True


def _read_header(received: Path | bytes) -> Dataset:
    """The few elements the node needs, read up to the pixel data at most."""
    source = received if isinstance(received, Path) else BytesIO(received)
    return dcmread(source, stop_before_pixels=True, specific_tags=_HEADER_TAGS)


def _discard_unhandled_data_sets(event: evt.Event) -> None:
    """Remove the temporary files of C-STORE data sets that no handler will see now that the
    connection has closed: pynetdicom only deletes the files it handed to the ``EVT_C_STORE``
    handler, and a 1 GB left-over per broken transfer would fill the disk. They are the data
    set still arriving (the association was aborted or dropped mid-transfer) and those
    received in full but queued behind the request being handled (pynetdicom serves none
    after an A-ABORT, PS3.8 Section 7.3, or a peer's A-RELEASE). A request is taken off
    pynetdicom's queue either here or by its association thread, never both. Reads
    pynetdicom's DIMSE state (private; tolerated when absent)."""
    dimse = getattr(event.assoc, "dimse", None)
    files = [getattr(getattr(dimse, "message", None), "_data_set_file", None)]
    requests = getattr(dimse, "msg_queue", None)
    while requests is not None:
        try:
            _, request = requests.get_nowait()
        except queue.Empty:
            break
        files.append(getattr(request, "_dataset_file", None))
    for unhandled in files:
        if unhandled is None:
            continue
        with contextlib.suppress(OSError):
            unhandled.close()
            Path(unhandled.name).unlink()
            logger.info("removed the data set of an interrupted C-STORE: %s", unhandled.name)


@dataclass(slots=True)
class _AssociationLog:
    calling_aet: str = "?"
    address: str = "?"
    stored: int = 0
    refused: int = 0
    ignored: int = 0
    outcome: str = "connection closed"
    studies: set[str] = field(default_factory=set)
    closed: bool = False  # the connection closed before the association's end was known


class StorageSCP:
    """A pynetdicom AE serving C-ECHO and C-STORE; received instances go to ``collector``."""

    def __init__(self, *, settings: NodeSettings, collector: StudyCollector) -> None:
        self.settings = settings
        self.collector = collector
        self._associations: dict[int, _AssociationLog] = {}
        self._lock = threading.Lock()
        self._server: ThreadedAssociationServer | None = None
        self.ae = self._build_ae()

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        timeout = self.settings.network_timeout_s
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        # every storage SOP class in every transfer syntax pydicom knows: the node stores the
        # bytes as received, decoding (if possible) is the analysis' concern, per image
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        if self.settings.allowed_calling_aets:
            ae.require_calling_aet = sorted(self.settings.allowed_calling_aets)
        return ae

    @property
    def port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("the SCP is not running")
        return int(self._server.server_address[1])

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the SCP is already running")
        receive_data_sets_to_disk()
        self._check_temporary_folder()
        handlers: list[evt.EventHandlerType] = [
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_PDU_RECV, self._on_pdu),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_CONN_CLOSE, self._on_close),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_outcome("rejected")),
            (evt.EVT_RELEASED, self._on_outcome("released")),
            (evt.EVT_ABORTED, self._on_outcome("aborted")),
        ]
        address = (self.settings.bind_address, self.settings.port)
        self._server = self.ae.start_server(address, block=False, evt_handlers=handlers)

    def _check_temporary_folder(self) -> None:
        """Received data sets are hard-linked from the temporary folder into the spool; on
        another file system they are copied (read and written once more), and in a tmpfs they
        take memory while they arrive. Say so once, with the remedy."""
        temporary, spool = Path(tempfile.gettempdir()), self.collector.spool_dir
        try:
            same = temporary.stat().st_dev == spool.stat().st_dev
        except OSError:
            return
        if not same:
            logger.info(
                "received instances arrive in %s, on another file system than the spool %s: "
                "each is copied into the spool (a tmpfs also holds it in memory while it "
                "arrives); set TMPDIR to a folder on the spool's file system to have them moved",
                temporary, spool,
            )  # fmt: skip

    def stop(self) -> None:
        """Stop listening, then abort associations still open (A-ABORT, PS3.8 Section 7.3):
        an instance not acknowledged yet is sent again by its sender, and one already
        written stays in the spool."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        for assoc in self.ae.active_associations:
            assoc.abort()

    # -- association log ---------------------------------------------------------------------

    def _log(self, event: evt.Event) -> _AssociationLog:
        with self._lock:
            return self._associations.setdefault(id(event.assoc), _AssociationLog())

    def _on_open(self, event: evt.Event) -> None:
        log = self._log(event)
        # pynetdicom passes the peer's (host, port) as the event's ``address`` keyword
        host, port = getattr(event, "address", ("?", "?"))
        log.address = f"{host}:{port}"
        logger.debug("connection from %s", log.address)

    def _on_accepted(self, event: evt.Event) -> None:
        log = self._log(event)
        log.calling_aet = event.assoc.requestor.ae_title
        log.outcome = "accepted"
        logger.info("association accepted: %s from %s", log.calling_aet, log.address)

    def _on_outcome(self, outcome: str) -> Callable[[evt.Event], None]:
        def record(event: evt.Event) -> None:
            log = self._log(event)
            log.calling_aet = event.assoc.requestor.ae_title or log.calling_aet
            with self._lock:
                log.outcome = outcome
                closed = log.closed
            if outcome == "rejected":
                self._log_rejection(event, log)
            elif closed:  # the connection went first (pynetdicom's order on a peer's A-ABORT)
                self._finish(event)

        return record

    def _log_rejection(self, event: evt.Event, log: _AssociationLog) -> None:
        request = event.assoc.requestor.primitive
        called = request.called_ae_title if request is not None else "?"
        allowed = ", ".join(sorted(self.settings.allowed_calling_aets)) or "any"
        logger.warning(
            "association rejected (A-ASSOCIATE-RJ, PS3.8 Table 9-21): calling AE %r from %s "
            "called %r; this node is %r and accepts calling AEs: %s",
            log.calling_aet, log.address, called, self.settings.ae_title, allowed,
        )  # fmt: skip

    def _on_pdu(self, event: evt.Event) -> None:
        """A PDU carrying C-STORE data: the association is still delivering (see the
        collector). That is a P-DATA-TF with a data set fragment, message control header bit 0
        clear (PS3.8 Section 9.3.5.1, Annex E.2): the node accepts Verification and Storage
        only, and of their requests only C-STORE has a data set (a C-ECHO-RQ has none, PS3.7
        Section 9.3.5; its Command Data Set Type is 0101H, Annex E.1). A sender that keeps its
        association alive with C-ECHOs then does not hold its last study open."""
        pdu = event.pdu
        if isinstance(pdu, P_DATA_TF) and any(
            item.presentation_data_value and not item.presentation_data_value[0] & 0x01
            for item in pdu.presentation_data_value_items
        ):
            self.collector.receiving(id(event.assoc))

    def _on_close(self, event: evt.Event) -> None:
        self.collector.sender_gone(id(event.assoc))
        _discard_unhandled_data_sets(event)
        log = self._log(event)
        with self._lock:
            # accepted but neither released nor aborted yet: on a peer's A-ABORT pynetdicom
            # closes the connection before the association thread reports the abort
            log.closed = log.outcome == "accepted"
        if not log.closed:
            self._finish(event)

    def _finish(self, event: evt.Event) -> None:
        """Log the association's line, once, and forget it."""
        with self._lock:
            log = self._associations.pop(id(event.assoc), None)
        if log is None or log.outcome == "rejected":
            return
        logger.info(
            "association %s from %s %s: %d instances stored, %d refused, %d own results "
            "ignored, %d studies",
            log.calling_aet, log.address, log.outcome, log.stored, log.refused, log.ignored,
            len(log.studies),
        )  # fmt: skip

    # -- DIMSE services ----------------------------------------------------------------------

    def _on_echo(self, event: evt.Event) -> int:
        logger.info("C-ECHO from %s", event.assoc.requestor.ae_title)
        return 0x0000

    def _on_store(self, event: evt.Event) -> int:
        """The C-STORE status; the association log counts what was kept, refused or skipped."""
        log = self._log(event)
        # the file pynetdicom wrote (receive_data_sets_to_disk), deleted after we return; None
        # when the switch was turned off in this process: the data set is then in memory
        path: Path | None = event.dataset_path
        received = path if path is not None else event.encoded_dataset(include_meta=True)
        try:
            ds = _read_header(received)
            study_uid = text_value(ds, "StudyInstanceUID") or ""
            sop_uid = text_value(ds, "SOPInstanceUID") or ""
            # our own results (docs/dicom-outputs.md): a PACS that forwards whole studies
            # would otherwise send them back to us and start a loop
            own = str(ds.get("Manufacturer", "")) == MANUFACTURER
        except Exception as error:  # the bytes do not decode as a data set
            logger.warning("C-STORE from %s refused, cannot decode: %s", log.calling_aet, error)
            log.refused += 1
            return CANNOT_UNDERSTAND
        if not study_uid or not sop_uid:  # Type 1 (PS3.3 C.7.2.1, C.12.1): empty is missing
            missing = [name for name, uid in (("Study", study_uid), ("SOP", sop_uid)) if not uid]
            logger.warning(
                "C-STORE from %s refused (0xA900): no %s Instance UID in the data set; the "
                "sender must fix or re-export it", log.calling_aet, " or ".join(missing),
            )  # fmt: skip
            log.refused += 1
            return DOES_NOT_MATCH_SOP_CLASS
        if own:  # acknowledged (the sender did nothing wrong) but not analysed again
            log.ignored += 1
            return 0x0000
        try:
            self.collector.store(
                study_instance_uid=study_uid, sop_instance_uid=sop_uid,
                data=received, calling_aet=log.calling_aet, sender=id(event.assoc),
            )  # fmt: skip
        except OSError:
            logger.exception("instance %s of study %s could not be spooled", sop_uid, study_uid)
            log.refused += 1
            return OUT_OF_RESOURCES
        log.stored += 1
        log.studies.add(study_uid)
        return 0x0000
