"""Review findings: the spool when it cannot be written, UIDs that are present but empty, and
the association log of an association the sender aborts."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom import dcmread
from pynetdicom import AE

from mammocad.dicomnode.collector import StudyCollector

if TYPE_CHECKING:
    from conftest import CopyHandler, Peer, RunningNode

NodeFactory = Callable[..., "RunningNode"]


def test_study_is_spooled_again_once_the_spool_is_writable(tmp_path: Path) -> None:
    """A spool that cannot be written (read-only, unmounted) answers A700; once it can be
    written again, the study's next instances are stored, not refused until the node restarts."""
    spool = StudyCollector(spool_dir=tmp_path / "spool", idle_timeout_s=10.0, on_closed=print)
    incoming = tmp_path / "spool" / "incoming"
    shutil.rmtree(incoming)
    incoming.write_bytes(b"")  # a file where the folder should be: mkdir fails as on a ro mount
    with pytest.raises(OSError):
        spool.store(
            study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=b"a", calling_aet="MG"
        )
    incoming.unlink()
    incoming.mkdir()
    path = spool.store(
        study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=b"a", calling_aet="MG"
    )
    assert path.read_bytes() == b"a"
    assert spool.open_studies() == {"1.2.3": 1}


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full halfway through an instance: the partial file is removed (it would keep the
    disk full and travel with the study into closed/ and failed/)."""
    spool = StudyCollector(spool_dir=tmp_path / "spool", idle_timeout_s=10.0, on_closed=print)

    def disk_full(self: Path, data: bytes) -> int:
        with self.open("wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError):
        spool.store(
            study_instance_uid="1.2.3",
            sop_instance_uid="1.2.3.1",
            data=b"x" * 1000,
            calling_aet="MG",
        )
    assert [p.name for p in (tmp_path / "spool").rglob("*") if p.is_file()] == []


def test_study_with_no_instance_written_is_not_handed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every instance of a study refused with A700 (disk full): closing it hands nothing to
    the handler (it would fail with "no DICOM instance" or send nothing) and leaves no folder."""
    now = [1000.0]
    spool = StudyCollector(
        spool_dir=tmp_path / "spool", idle_timeout_s=10.0, on_closed=print, clock=lambda: now[0]
    )

    def disk_full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", disk_full)
        with pytest.raises(OSError):
            spool.store(
                study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=b"x", calling_aet="MG"
            )
    now[0] += 10
    assert spool.close_idle() == []
    assert spool.open_studies() == {}
    spooled = sorted(p.name for p in (tmp_path / "spool").rglob("*"))
    assert spooled == ["closed", "done", "failed", "incoming"]


def test_empty_study_instance_uid_is_refused(
    node_factory: NodeFactory, copy_handler: CopyHandler, peer: Peer, phantom: list[Path]
) -> None:
    """Study Instance UID is Type 1: present but empty is as missing as absent (A900)."""
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    empty = dcmread(phantom[0])
    empty.StudyInstanceUID = ""
    assert peer.c_store(node.port, [empty, phantom[1]]) == [0xA900, 0x0000]
    assert len(list((node.node.settings.spool_dir / "incoming").rglob("*.dcm"))) == 1


def test_association_aborted_by_the_sender_is_logged_as_aborted(
    node_factory: NodeFactory,
    copy_handler: CopyHandler,
    phantom: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    datasets = [dcmread(path) for path in phantom]
    ae = AE(ae_title="MG1")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    with caplog.at_level(logging.INFO, logger="mammocad.dicomnode"):
        assoc = ae.associate("127.0.0.1", node.port, ae_title="MAMMOCAD")
        assert [int(assoc.send_c_store(ds).Status) for ds in datasets[:2]] == [0, 0]
        assoc.abort()
        deadline = time.monotonic() + 10
        while "association MG1" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a late EVT_ABORTED has had time to arrive
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("association MG1")]
    assert len(lines) == 1 and " aborted: 2 instances stored" in lines[0], lines
    assert node.node.scp._associations == {}  # nothing left behind per association
