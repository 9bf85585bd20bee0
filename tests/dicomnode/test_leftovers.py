"""What a node leaves behind when closing a study fails (disk full) or its process dies: the
study is closed again later and taken in once with all its instances, not left in incoming/;
staging folders a dead intake left under DATA/uploads/ are cleared at start (only those
nothing has written to for a day: the API may share the data dir and be writing its own)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom import dcmread

from mammocad.dicomnode import QueuedStudyHandler
from mammocad.dicomnode.collector import ClosedStudy, StudyCollector
from mammocad.dicomnode.service import ServiceQueue
from mammocad.pipeline import Pipeline
from mammocad.serve import Settings
from mammocad.store.repository import get_study
from mammocad.store.session import transaction

if TYPE_CHECKING:
    from conftest import IdleQueue, RunningNode

NodeFactory = Callable[..., "RunningNode"]
DAY = 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spool_of(tmp_path: Path, clock: Clock) -> StudyCollector:
    closed: list[ClosedStudy] = []
    return StudyCollector(
        spool_dir=tmp_path / "spool", idle_timeout_s=10.0, on_closed=closed.append, clock=clock
    )


def store(spool: StudyCollector, study: str, sop: str) -> None:
    spool.store(study_instance_uid=study, sop_instance_uid=sop, data=sop.encode(), calling_aet="MG")


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """While ``full[0]`` is true, moving a study out of incoming/ fails with ENOSPC (creating
    its closed/ folder still works: the rename is what fails)."""
    full = [True]
    real_rename = Path.rename

    def rename(self: Path, target: str | os.PathLike[str]) -> Path:
        if full[0] and self.parent.name == "incoming":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    yield full


def test_study_whose_close_failed_is_closed_after_another_idle_timeout(
    tmp_path: Path, disk_full: list[bool], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    spool = spool_of(tmp_path, clock)
    store(spool, "1.2.3", "1.2.3.1")
    store(spool, "1.2.3", "1.2.3.2")
    clock.now += 10
    with caplog.at_level(logging.WARNING, logger="mammocad.dicomnode.collector"):
        assert spool.close_idle() == []
    assert "study 1.2.3 could not be closed" in caplog.text and "trying again in 10.0 s" in (
        caplog.text
    )
    assert spool.open_studies() == {"1.2.3": 2}  # still open, not forgotten until a restart
    assert list((tmp_path / "spool" / "closed").iterdir()) == []  # no empty batch left
    disk_full[0] = False
    clock.now += 9.9
    assert spool.close_idle() == []  # a fresh idle timeout from the failed try
    clock.now += 0.1
    (study,) = spool.close_idle()
    assert study.instances == 2
    assert sorted(p.name for p in study.instances_dir.iterdir()) == ["1.2.3.1.dcm", "1.2.3.2.dcm"]
    assert spool.open_studies() == {}


def test_study_whose_close_failed_is_taken_up_once_after_a_restart(
    tmp_path: Path, disk_full: list[bool]
) -> None:
    clock = Clock()
    first = spool_of(tmp_path, clock)
    store(first, "1.2.3", "1.2.3.1")
    clock.now += 10
    assert first.close_idle() == []
    disk_full[0] = False  # the node is stopped, space is freed, the node starts again

    second = spool_of(tmp_path, clock)
    assert second.recover() == []  # nothing closed to hand on: no batch without instances
    assert second.open_studies() == {"1.2.3": 1}
    clock.now += 10
    (study,) = second.close_idle()
    assert [p.read_bytes() for p in study.instances_dir.iterdir()] == [b"1.2.3.1"]


def test_closed_folder_of_a_close_cut_off_before_its_rename_is_not_handed_on(
    tmp_path: Path,
) -> None:
    """The node killed between creating a study's closed/ folder and moving its instances in:
    at start the instances are reopened from incoming/ and the empty folder goes; a closed
    folder with instances is handed on as before."""
    clock = Clock()
    spool = spool_of(tmp_path, clock)
    store(spool, "1.2.4", "1.2.4.1")
    clock.now += 10
    (handled,) = spool.close_idle()  # closed; the kill cut its handling off
    store(spool, "1.2.3", "1.2.3.1")  # the kill cut its close off after the mkdir
    empty = tmp_path / "spool" / "closed" / "1.2.3-20260101T000000000000"
    empty.mkdir()

    again = spool_of(tmp_path, clock)
    pending = again.recover()
    assert [(s.study_instance_uid, s.folder, s.instances) for s in pending] == [
        ("1.2.4", handled.folder, 1)
    ]
    assert not empty.exists()
    assert again.open_studies() == {"1.2.3": 1}


class IntakeOnly:
    """The job-queue handler's intake (``take_in``), without waiting for the job."""

    def __init__(self, queued: QueuedStudyHandler) -> None:
        self.queued = queued
        self.job_ids: list[str] = []

    def __call__(self, instances_dir: Path, *, out_dir: Path) -> list[Path]:
        self.job_ids.append(self.queued.take_in(instances_dir))
        return []


@pytest.fixture
def service(tmp_path: Path, pipeline: Pipeline) -> Iterator[ServiceQueue]:
    queue = ServiceQueue.open(Settings(data_dir=tmp_path / "data"), load_pipeline=lambda: pipeline)
    queue.workers.stop()  # nothing is analysed: intake is what is looked at
    yield queue
    queue.close()


def test_study_left_in_incoming_is_taken_in_once_at_the_next_start(
    tmp_path: Path,
    service: ServiceQueue,
    node_factory: NodeFactory,
    phantom: list[Path],
    idle_queue: IdleQueue,
) -> None:
    """The spool as a node leaves it whose close failed or that was killed mid-close: the
    study's instances in incoming/, an empty closed/ folder. The next node takes the study
    into the service once, with its four instances, and files nothing under failed/."""
    spool = tmp_path / "spool"
    uid = dcmread(phantom[0]).StudyInstanceUID
    incoming = spool / "incoming" / uid
    incoming.mkdir(parents=True)
    for path in phantom:
        shutil.copyfile(path, incoming / f"{dcmread(path).SOPInstanceUID}.dcm")
    (spool / "closed" / f"{uid}-20260101T000000000000").mkdir(parents=True)

    handler = IntakeOnly(
        QueuedStudyHandler(
            data_dir=service.settings.data_dir, sessions=service.sessions, workers=idle_queue
        )
    )
    node = node_factory(handler=handler, idle_timeout_s=0.3)
    outcome = node.next_outcome(timeout=30)
    assert outcome.ok, outcome.error
    with pytest.raises(AssertionError, match="no study finished"):
        node.next_outcome(timeout=1.0)
    assert len(handler.job_ids) == 1
    with transaction(service.sessions) as session:
        study = get_study(session, uid)
        assert study is not None and len(study.images) == 4
    inputs = service.settings.data_dir / "studies" / uid / "input"
    assert len(list(inputs.glob("*.dcm"))) == 4
    assert not incoming.exists()
    assert list((spool / "failed").iterdir()) == []
    assert list((service.settings.data_dir / "uploads").iterdir()) == []


def aged(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    for item in [*sorted(path.rglob("*"), reverse=True), path]:
        os.utime(item, (when, when))
    return path


def test_node_start_clears_stale_staging_only(
    tmp_path: Path, pipeline: Pipeline, phantom: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    """An intake the node's process died in leaves its staging folder (hard links to spool
    files): gone at the next start once a day old. One linked just now (another process's
    intake in flight) stays, though its files carry the spool files' old times; the spool
    files themselves stay whole."""
    data, spool = tmp_path / "data", tmp_path / "spool"
    spool.mkdir()
    originals = []
    for path in phantom:
        target = spool / path.name
        shutil.copyfile(path, target)
        originals.append(aged(target, 3 * DAY))
    stale = data / "uploads" / uuid.uuid4().hex
    stale.mkdir(parents=True)
    for index, path in enumerate(originals):
        os.link(path, stale / f"n{index:05d}")
    aged(stale, 2 * DAY)
    live = data / "uploads" / uuid.uuid4().hex
    live.mkdir()
    for index, path in enumerate(originals):
        os.link(path, live / f"n{index:05d}")

    with caplog.at_level(logging.INFO, logger="mammocad.serve.intake"):
        queue = ServiceQueue.open(Settings(data_dir=data), load_pipeline=lambda: pipeline)
    queue.close()
    assert not stale.exists()
    assert len(list(live.iterdir())) == 4
    assert [p.read_bytes() for p in originals] == [p.read_bytes() for p in phantom]
    size = sum(p.stat().st_size for p in originals)
    assert f"removed 1 stale staging folder(s) ({size} bytes)" in caplog.text


@pytest.fixture(autouse=True)
def _quiet_pynetdicom(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="pynetdicom")
