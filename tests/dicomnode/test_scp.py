"""The node as acceptor: C-ECHO, C-STORE into the spool, AE title checks, association log.

A-ASSOCIATE-RJ fields (PS3.8 Table 9-21): result 1 rejected-permanent, source 1 DICOM UL
service-user (ACSE related), reason 3 calling-AE-title-not-recognized / 7 called-AE-title-not-
recognized.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian

if TYPE_CHECKING:
    from conftest import CopyHandler, Peer, RunningNode

NodeFactory = Callable[..., "RunningNode"]


def incoming(node: RunningNode) -> list[Path]:
    return sorted((node.node.settings.spool_dir / "incoming").rglob("*.dcm"))


def test_c_echo(node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer) -> None:
    node = node_factory(handler=copy_handler)
    assoc = peer.associate(node.port, calling="ANYONE")
    assert assoc.is_established is False and assoc.is_released  # type: ignore[attr-defined]
    assert peer.echo_status == 0x0000


def test_calling_ae_not_on_allow_list_is_rejected(
    node_factory: NodeFactory,
    copy_handler: CopyHandler,
    peer: Peer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = node_factory(handler=copy_handler, allowed_calling_aets=frozenset({"MG1", "PACS"}))
    with caplog.at_level(logging.WARNING, logger="mammocad.dicomnode"):
        assoc = peer.associate(node.port, calling="INTRUDER")
    assert assoc.is_rejected
    reply = assoc.acceptor.primitive
    assert (reply.result, reply.result_source, reply.diagnostic) == (0x01, 0x01, 0x03)
    assert "INTRUDER" in caplog.text and "MG1, PACS" in caplog.text
    assert peer.associate(node.port, calling="MG1").is_released
    assert peer.echo_status == 0x0000


def test_wrong_called_ae_title_is_rejected(
    node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer
) -> None:
    node = node_factory(handler=copy_handler)
    assoc = peer.associate(node.port, calling="MG1", called="SOMEONE_ELSE")
    reply = assoc.acceptor.primitive
    assert (reply.result, reply.result_source, reply.diagnostic) == (0x01, 0x01, 0x07)


def test_c_store_spools_the_data_set_as_received(
    node_factory: NodeFactory,
    copy_handler: CopyHandler,
    peer: Peer,
    phantom: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    with caplog.at_level(logging.INFO, logger="mammocad.dicomnode"):
        assert peer.c_store(node.port, phantom) == [0x0000] * 4
    files = incoming(node)
    assert len(files) == 4
    for source in phantom:
        original = dcmread(source)
        spooled = dcmread(files[0].parent / f"{original.SOPInstanceUID}.dcm")
        # same transfer syntax (compressed ones included), same data set, same pixel bytes
        assert spooled.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert spooled == original
        assert spooled.PixelData == original.PixelData
    study = dcmread(phantom[0]).StudyInstanceUID
    assert node.node.collector.open_studies() == {study: 4}
    assert "association MODALITY from 127.0.0.1:" in caplog.text
    assert "released: 4 instances stored, 0 refused" in caplog.text


def test_c_store_keeps_the_syntax_negotiated(
    node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer, phantom: list[Path]
) -> None:
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    uncompressed = [dcmread(path) for path in phantom]
    for ds in uncompressed:
        ds.decompress()  # the phantom's syntaxes vary; this test sends them re-encoded
    statuses = peer.c_store(node.port, uncompressed, syntaxes=[ImplicitVRLittleEndian])
    assert statuses == [0x0000] * len(uncompressed)
    for path in incoming(node):
        spooled = dcmread(path)
        assert spooled.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        original = next(ds for ds in uncompressed if ds.SOPInstanceUID == spooled.SOPInstanceUID)
        assert spooled.PixelData == original.PixelData


def test_instance_without_study_uid_is_refused_and_the_rest_stored(
    node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer, phantom: list[Path]
) -> None:
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    broken = dcmread(phantom[0])
    del broken.StudyInstanceUID
    statuses = peer.c_store(node.port, [broken, *phantom[1:]])
    # PS3.4 Table B.2-1: A9xx "Data Set does not match SOP Class"
    assert statuses == [0xA900, 0x0000, 0x0000, 0x0000]
    assert len(incoming(node)) == 3


def test_own_results_coming_back_are_acknowledged_not_spooled(
    node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer, phantom: list[Path]
) -> None:
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    ours = dcmread(phantom[0])
    ours.Manufacturer = "mammocad"
    assert peer.c_store(node.port, [ours, phantom[1]]) == [0x0000, 0x0000]
    assert [path.name for path in incoming(node)] == [f"{dcmread(phantom[1]).SOPInstanceUID}.dcm"]
