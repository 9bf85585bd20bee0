"""The node end to end on loopback: receive → idle timeout → handler → C-STORE to destination.

Most tests use a fast stand-in handler; the last runs the real analysis (tiny untrained bundle)
and checks the SR and Secondary Captures that reach the destination.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComprehensiveSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)

from mammocad.dicomnode import (
    Destination,
    DicomNode,
    NodeSettings,
    PipelineStudyHandler,
    SendSyntax,
    StudyHandlingError,
)
from mammocad.pipeline import Pipeline

if TYPE_CHECKING:
    from conftest import CopyHandler, Peer, RunningNode
    from conftest import Destination as Recorder

NodeFactory = Callable[..., "RunningNode"]
DestinationFactory = Callable[..., "Recorder"]


def results_to(recorder: Recorder, *syntaxes: SendSyntax) -> Destination:
    return Destination.parse(recorder.address, transfer_syntaxes=syntaxes or (SendSyntax.explicit,))


def test_study_is_closed_after_idle_timeout_and_results_sent(
    node_factory: NodeFactory,
    destination_factory: DestinationFactory,
    copy_handler: CopyHandler,
    peer: Peer,
    phantom: list[Path],
) -> None:
    recorder = destination_factory(syntaxes=[ExplicitVRLittleEndian])
    node = node_factory(
        handler=copy_handler, idle_timeout_s=2.0, destination=results_to(recorder, *SendSyntax)
    )
    assert peer.c_store(node.port, phantom[:2]) == [0, 0]
    time.sleep(0.5)  # a second association within the timeout joins the same study
    before_last = time.monotonic()
    assert peer.c_store(node.port, phantom[2:]) == [0, 0]
    outcome = node.next_outcome()
    assert time.monotonic() - before_last >= 2.0  # not closed before the timeout
    assert outcome.ok, outcome.error
    assert outcome.study_instance_uid == dcmread(phantom[0]).StudyInstanceUID
    assert copy_handler.calls == [sorted(f"{dcmread(p).SOPInstanceUID}.dcm" for p in phantom)]
    assert outcome.forward is not None and len(outcome.forward.objects) == 4
    assert {item.transfer_syntax for item in recorder.received} == {ExplicitVRLittleEndian}
    assert len(recorder.received) == 4
    assert outcome.folder is None  # sent: the spool folder is gone
    assert not list((node.node.settings.spool_dir / "closed").iterdir())


def test_failing_study_is_kept_with_its_reason_and_the_node_goes_on(
    node_factory: NodeFactory, peer: Peer, phantom: list[Path], tmp_path: Path
) -> None:
    calls: list[Path] = []

    def handler(instances_dir: Path, *, out_dir: Path) -> list[Path]:
        calls.append(instances_dir)
        if len(calls) == 1:
            raise StudyHandlingError("no DICOM output: no image of the study could be processed")
        return []

    node = node_factory(handler=handler, idle_timeout_s=0.3)
    assert peer.c_store(node.port, phantom[:1]) == [0]
    failed = node.next_outcome()
    assert not failed.ok and "no image of the study" in str(failed.error)
    assert failed.folder is not None and failed.folder.parent.name == "failed"
    assert "no image of the study" in (failed.folder / "reason.txt").read_text()
    assert len(list((failed.folder / "instances").iterdir())) == 1  # kept for a re-run
    assert peer.c_store(node.port, phantom[1:2]) == [0]
    assert node.next_outcome().ok


def test_unreachable_destination_fails_the_study_not_the_node(
    node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer, phantom: list[Path]
) -> None:
    nowhere = Destination(ae_title="GONE", host="127.0.0.1", port=1)
    node = node_factory(handler=copy_handler, idle_timeout_s=0.3, destination=nowhere)
    assert peer.c_store(node.port, phantom[:1]) == [0]
    outcome = node.next_outcome()
    assert outcome.error is not None and "sending failed: 0/1 sent to GONE" in outcome.error
    assert outcome.folder is not None and (outcome.folder / "results").is_dir()
    assert peer.associate(node.port, calling="STILL_UP").is_released


def test_open_study_survives_a_restart(
    copy_handler: CopyHandler, peer: Peer, phantom: list[Path], tmp_path: Path
) -> None:
    settings = NodeSettings(
        port=0, bind_address="127.0.0.1", spool_dir=tmp_path / "spool", idle_timeout_s=60.0
    )
    with DicomNode(settings=settings, handler=copy_handler) as first:
        assert peer.c_store(first.port, phantom) == [0] * 4
    assert copy_handler.calls == []
    done: list[object] = []
    quick = NodeSettings(
        port=0, bind_address="127.0.0.1", spool_dir=tmp_path / "spool", idle_timeout_s=0.2
    )
    with DicomNode(settings=quick, handler=copy_handler, on_done=done.append):
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(copy_handler.calls) == 1 and len(copy_handler.calls[0]) == 4


def evidence(sr: Dataset) -> set[str]:
    return {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }


def test_real_analysis_results_arrive_in_the_accepted_syntax(
    node_factory: NodeFactory,
    destination_factory: DestinationFactory,
    tiny_bundle: Path,
    peer: Peer,
    phantom: list[Path],
    broken_phantom: list[Dataset],
) -> None:
    """A broken instance among four: three images analysed, SR + three SCs sent back in the
    only syntax the destination accepts (Explicit VR LE) although Implicit is offered first."""
    recorder = destination_factory(
        syntaxes=[ExplicitVRLittleEndian],
        sop_classes=[ComprehensiveSRStorage, SecondaryCaptureImageStorage],
    )
    handler = PipelineStudyHandler(pipeline=Pipeline.from_bundle(tiny_bundle))
    destination = results_to(recorder, SendSyntax.implicit, SendSyntax.explicit)
    node = node_factory(handler=handler, idle_timeout_s=0.5, destination=destination)
    broken = broken_phantom[0]
    assert peer.c_store(node.port, [broken, *phantom[1:]]) == [0] * 4
    outcome = node.next_outcome(timeout=240)
    assert outcome.ok, outcome.error

    assert {item.transfer_syntax for item in recorder.received} == {ExplicitVRLittleEndian}
    assert ImplicitVRLittleEndian not in {i.transfer_syntax for i in recorder.received}
    by_class: dict[str, list[Dataset]] = {}
    for item in recorder.received:
        by_class.setdefault(item.dataset.SOPClassUID, []).append(item.dataset)
    (sr,) = by_class[ComprehensiveSRStorage]
    scs = by_class[SecondaryCaptureImageStorage]
    processed = {dcmread(path).SOPInstanceUID for path in phantom[1:]}
    assert len(scs) == 3
    assert {sc.SourceImageSequence[0].ReferencedSOPInstanceUID for sc in scs} == processed
    assert evidence(sr) == processed
    study = dcmread(phantom[0]).StudyInstanceUID
    assert {ds.StudyInstanceUID for ds in [sr, *scs]} == {study}
    assert {ds.Manufacturer for ds in [sr, *scs]} == {"mammocad"}
    # the broken image is named in the SR as not processed, with its reason
    texts = [str(item.get("TextValue", "")) for item in _walk(sr)]
    assert any(broken.SOPInstanceUID in text and "truncated" in text for text in texts), texts


def _walk(ds: Dataset) -> list[Dataset]:
    items = []
    for item in ds.get("ContentSequence", []):
        items.append(item)
        items.extend(_walk(item))
    return items


@pytest.fixture(autouse=True)
def _quiet_pynetdicom(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="pynetdicom")
