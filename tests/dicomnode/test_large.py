"""Large instances: digital breast tomosynthesis objects (0.5–1 GB in practice) that a PACS
forwarding whole examinations sends beside the 2D views.

* Memory: the node writes a C-STORE data set to disk as it arrives (pynetdicom's
  ``STORE_RECV_CHUNKED_DATASET``) and moves that file into the spool, so receiving an instance
  costs a small, fixed amount of memory instead of several times its size.
* A study is not closed while an association that delivered instances of it is still receiving
  data: a slow instance does not split its study into two batches.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BreastTomosynthesisImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association

from mammocad.dicomnode import scp

if TYPE_CHECKING:
    from conftest import CopyHandler, Peer, RunningNode

NodeFactory = Callable[..., "RunningNode"]

LOOPBACK = "127.0.0.1"

#: a C-STORE SCU in its own process, so that its memory is not counted with the node's; sends
#: the file from disk in fragments (pynetdicom's ``STORE_SEND_CHUNKED_DATASET``), pausing
#: ``pause_s`` after every PDU (a slow link) when that is not 0
SEND_FILE = """
import sys, time
from pynetdicom import AE, _config, evt
_config.STORE_SEND_CHUNKED_DATASET = True
path, port, sop_class, syntax, pause_s = sys.argv[1:6]
ae = AE(ae_title="MODALITY")
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
ae.add_requested_context(sop_class, syntax)
pause = [(evt.EVT_DATA_SENT, lambda event: time.sleep(float(pause_s)))] if float(pause_s) else []
assoc = ae.associate("127.0.0.1", int(port), ae_title="MAMMOCAD", evt_handlers=pause)
assert assoc.is_established, "association not accepted"
status = assoc.send_c_store(path)
assoc.release()
print(f"{int(status.Status):04X}")
"""


def send_file(path: Path, port: int, *, pause_s: float = 0.0) -> list[str]:
    """The command line of :data:`SEND_FILE` for a Breast Tomosynthesis file."""
    return [sys.executable, "-c", SEND_FILE, str(path), str(port),
            BreastTomosynthesisImageStorage, ExplicitVRLittleEndian, str(pause_s)]  # fmt: skip


def tomosynthesis(
    *, frames: int, rows: int = 1024, columns: int = 1024, study_uid: str | None = None
) -> Dataset:
    """A multi-frame Breast Tomosynthesis Image (PS3.3 A.84) with a recognisable pixel
    pattern; ``frames × rows × columns × 2`` bytes of pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = BreastTomosynthesisImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.Manufacturer = "DBT phantom"
    ds.PatientID = "DBT-1"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    count = frames * rows * columns
    ds.PixelData = (np.arange(count, dtype=np.uint32) % 4093).astype(np.uint16).tobytes()
    return ds


def data_set_digest(path: Path) -> str:
    """SHA-256 of a DICOM file's data set, after its preamble and File Meta Information."""
    with path.open("rb") as file:
        meta = dcmread(file, stop_before_pixels=True, specific_tags=[]).file_meta
        file.seek(132 + 12 + int(meta.FileMetaInformationGroupLength))
        return hashlib.file_digest(file, "sha256").hexdigest()


def test_a_large_instance_is_received_in_bounded_memory(
    node_factory: NodeFactory, copy_handler: CopyHandler, tmp_path: Path
) -> None:
    """A 128 MiB tomosynthesis object sent from another process: the node's traced memory
    while receiving stays a small fraction of the instance (it was about 3× before)."""
    source = tmp_path / "dbt.dcm"
    ds = tomosynthesis(frames=64)
    ds.save_as(source, enforce_file_format=True)
    size, study_uid, sop_uid = source.stat().st_size, ds.StudyInstanceUID, ds.SOPInstanceUID
    del ds
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    tracemalloc.start()
    try:
        sent = subprocess.run(
            send_file(source, node.port), capture_output=True, text=True, timeout=120, check=False
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "0000"
    spooled = node.node.settings.spool_dir / "incoming" / study_uid / f"{sop_uid}.dcm"
    assert data_set_digest(spooled) == data_set_digest(source)  # the data set as sent
    assert dcmread(spooled, stop_before_pixels=True).SOPInstanceUID == sop_uid
    print(f"instance {size / 2**20:.0f} MiB, peak traced memory {peak / 2**20:.1f} MiB")
    assert peak < size / 8, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB instance"


def throttled_association(
    port: int, datasets: list[Dataset], slow: threading.Event, *, pause_s: float
) -> Association:
    """An association from MODALITY that pauses ``pause_s`` after every PDU it sends while
    ``slow`` is set: a slow network or a busy sender."""

    def throttle(event: evt.Event) -> None:
        if slow.is_set():
            time.sleep(pause_s)

    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(
        LOOPBACK, port, ae_title="MAMMOCAD", evt_handlers=[(evt.EVT_DATA_SENT, throttle)]
    )
    assert assoc.is_established
    return assoc


def test_a_slow_large_instance_does_not_split_its_study(
    node_factory: NodeFactory, copy_handler: CopyHandler, phantom: list[Path]
) -> None:
    """The 2D views, then a tomosynthesis object of the same study that takes three times the
    idle timeout to arrive: one batch of five instances, not four and then one."""
    idle = 1.0
    node = node_factory(handler=copy_handler, idle_timeout_s=idle)
    views = [dcmread(path) for path in phantom]
    dbt = tomosynthesis(frames=2, rows=512, columns=512, study_uid=views[0].StudyInstanceUID)
    slow = threading.Event()
    assoc = throttled_association(node.port, [*views, dbt], slow, pause_s=0.05)
    try:
        assert [int(assoc.send_c_store(ds).Status) for ds in views] == [0] * 4
        slow.set()  # 1 MiB in PDUs of 16 KiB, 50 ms each: about 3 s
        started = time.monotonic()
        assert int(assoc.send_c_store(dbt).Status) == 0
        assert time.monotonic() - started > 2 * idle  # the test did throttle the transfer
    finally:
        assoc.release()
    outcome = node.next_outcome(timeout=30)
    assert outcome.ok, outcome.error
    expected = sorted(f"{ds.SOPInstanceUID}.dcm" for ds in [*views, dbt])
    assert copy_handler.calls == [expected]
    time.sleep(2 * idle)
    assert node.outcomes.empty() and node.node.collector.open_studies() == {}


def test_an_interrupted_transfer_leaves_no_temporary_file(
    node_factory: NodeFactory,
    copy_handler: CopyHandler,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sender that dies in the middle of a data set: pynetdicom's temporary file of the
    unfinished data set is removed, and nothing reaches the spool."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    source = tmp_path / "dbt.dcm"
    tomosynthesis(frames=2, rows=512, columns=512).save_as(source, enforce_file_format=True)
    command = send_file(source, node.port, pause_s=0.02)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as sender:
        try:
            deadline = time.monotonic() + 20
            while not any(path.stat().st_size > 100_000 for path in temporary.iterdir()):
                assert sender.poll() is None, sender.communicate()
                assert time.monotonic() < deadline, "the data set did not start arriving"
                time.sleep(0.05)
        finally:
            sender.kill()  # the connection drops in the middle of the data set
    deadline = time.monotonic() + 10
    while list(temporary.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(temporary.iterdir()) == []
    assert not list((node.node.settings.spool_dir / "incoming").rglob("*.dcm"))


def test_data_sets_in_memory_still_work_when_the_switch_is_off(
    node_factory: NodeFactory,
    copy_handler: CopyHandler,
    peer: Peer,
    phantom: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another part of the process turned pynetdicom's switch off: the node falls back to
    the encoded data set in memory, still spooled unchanged."""
    monkeypatch.setattr(scp, "receive_data_sets_to_disk", lambda: None)
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    node = node_factory(handler=copy_handler, idle_timeout_s=60.0)
    assert peer.c_store(node.port, phantom[:1]) == [0]
    (spooled,) = (node.node.settings.spool_dir / "incoming").rglob("*.dcm")
    assert data_set_digest(spooled) == data_set_digest(phantom[0])
