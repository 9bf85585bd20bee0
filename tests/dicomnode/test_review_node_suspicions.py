"""Review suspicions about the SCP, checked over real associations on loopback: a C-ECHO
keep-alive must not hold a study open, and a C-STORE data set received in full but never
handed to the handler (the peer aborted) must not leave its temporary file behind."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

if TYPE_CHECKING:
    from conftest import CopyHandler, RunningNode

NodeFactory = Callable[..., "RunningNode"]

LOOPBACK = "127.0.0.1"


def storage_association(port: int, datasets: Sequence[Dataset]) -> Association:
    """An association from MODALITY offering the data sets' contexts and Verification."""
    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    ae.add_requested_context(Verification)
    assoc = ae.associate(LOOPBACK, port, ae_title="MAMMOCAD")
    assert assoc.is_established
    return assoc


def test_echo_keep_alive_does_not_hold_the_study_open(
    node_factory: NodeFactory, copy_handler: CopyHandler, phantom: list[Path]
) -> None:
    """A sender that keeps its association open after the study and sends a C-ECHO every
    tenth of the idle timeout: the study is closed and analysed while the association lives
    (before, every PDU counted as data still arriving for the study, and it stayed open)."""
    idle = 1.0
    node = node_factory(handler=copy_handler, idle_timeout_s=idle)
    views = [dcmread(path) for path in phantom]
    assoc = storage_association(node.port, views)
    try:
        assert [int(assoc.send_c_store(ds).Status) for ds in views] == [0] * 4
        deadline = time.monotonic() + 10 * idle
        while node.outcomes.empty() and time.monotonic() < deadline:
            assert int(assoc.send_c_echo().Status) == 0
            time.sleep(idle / 10)
        assert assoc.is_established  # the keep-alive association is still open
        closed_while_open = not node.outcomes.empty()
    finally:
        assoc.release()
    assert closed_while_open, "the study was not closed while the association sent C-ECHOs"
    assert node.next_outcome(timeout=5).ok
    assert copy_handler.calls == [sorted(f"{ds.SOPInstanceUID}.dcm" for ds in views)]


def send_without_waiting(assoc: Association, ds: Dataset, message_id: int) -> None:
    """Send a C-STORE request (PS3.7 9.1.1) and do not wait for its response."""
    request = C_STORE()
    request.MessageID = message_id
    request.AffectedSOPClassUID = ds.SOPClassUID
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 0x0002  # low
    syntax = ds.file_meta.TransferSyntaxUID
    context = next(
        cx
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == ds.SOPClassUID and cx.transfer_syntax[0] == syntax
    )
    encoded = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian)
    assert encoded is not None and context.context_id is not None
    request.DataSet = BytesIO(encoded)
    assoc.dimse.send_msg(request, context.context_id)


def test_an_aborted_association_leaves_no_temporary_file_of_a_complete_data_set(
    node_factory: NodeFactory,
    copy_handler: CopyHandler,
    phantom: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The peer sends two C-STOREs without waiting and aborts while the node is still
    handling the first: the second data set arrived in full (its temporary file is complete)
    but is never handed to the handler. Its temporary file must go with the connection."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    collector = node.node.collector
    handling, gone, waited = threading.Event(), threading.Event(), []
    store, sender_gone = collector.store, collector.sender_gone

    def slow_store(**kwargs: object) -> Path:  # the first instance is handled until the abort
        handling.set()
        waited.append(gone.wait(10))
        return store(**kwargs)  # type: ignore[arg-type]

    def on_gone(sender: Hashable) -> None:
        sender_gone(sender)
        gone.set()

    monkeypatch.setattr(collector, "store", slow_store)
    monkeypatch.setattr(collector, "sender_gone", on_gone)
    first, second = (dcmread(path) for path in phantom[:2])
    assoc = storage_association(node.port, [first, second])
    send_without_waiting(assoc, first, 1)
    assert handling.wait(10)
    send_without_waiting(assoc, second, 2)
    assoc.abort()
    deadline = time.monotonic() + 10
    while node.node.scp._associations and time.monotonic() < deadline:
        time.sleep(0.05)  # until the node has logged the association's end
    assert waited == [True]  # the first was being handled when the connection closed
    assert node.node.scp._associations == {}
    assert sorted(path.name for path in temporary.iterdir()) == []
