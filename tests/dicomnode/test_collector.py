"""Spool folders and the idle timeout, on a clock the test moves by hand."""

from __future__ import annotations

import threading
from pathlib import Path

from mammocad.dicomnode.collector import ClosedStudy, StudyCollector, uid_name


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def collector(tmp_path: Path, clock: Clock, closed: list[ClosedStudy]) -> StudyCollector:
    return StudyCollector(
        spool_dir=tmp_path / "spool", idle_timeout_s=10.0, on_closed=closed.append, clock=clock
    )


def store(target: StudyCollector, study: str, sop: str, data: bytes = b"DICM") -> Path:
    return target.store(study_instance_uid=study, sop_instance_uid=sop, data=data, calling_aet="MG")


def test_study_closes_only_after_idle_timeout_since_last_instance(tmp_path: Path) -> None:
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    store(spool, "1.2.3", "1.2.3.1")
    clock.now += 6
    store(spool, "1.2.3", "1.2.3.2", b"second")
    clock.now += 9.9  # 15.9 s after the first, 9.9 s after the last instance
    assert spool.close_idle() == []
    assert spool.open_studies() == {"1.2.3": 2}
    clock.now += 0.1
    (study,) = spool.close_idle()
    assert study.study_instance_uid == "1.2.3"
    assert study.instances == 2
    assert study.calling_aets == {"MG"}
    assert sorted(p.name for p in study.instances_dir.iterdir()) == ["1.2.3.1.dcm", "1.2.3.2.dcm"]
    assert (study.instances_dir / "1.2.3.2.dcm").read_bytes() == b"second"
    assert spool.open_studies() == {}
    assert not (tmp_path / "spool" / "incoming" / "1.2.3").exists()


def test_instance_after_closing_opens_a_new_batch(tmp_path: Path) -> None:
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    store(spool, "1.2.3", "1.2.3.1")
    clock.now += 10
    (first,) = spool.close_idle()
    store(spool, "1.2.3", "1.2.3.9")
    clock.now += 10
    (second,) = spool.close_idle()
    assert first.folder != second.folder
    assert [p.name for p in first.instances_dir.iterdir()] == ["1.2.3.1.dcm"]
    assert [p.name for p in second.instances_dir.iterdir()] == ["1.2.3.9.dcm"]


def test_resent_instance_replaces_the_earlier_copy(tmp_path: Path) -> None:
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    store(spool, "1.2.3", "1.2.3.1", b"old")
    store(spool, "1.2.3", "1.2.3.1", b"new")
    (study,) = spool.close_idle(force=True)
    assert [p.read_bytes() for p in study.instances_dir.iterdir()] == [b"new"]


def test_malformed_uids_cannot_leave_the_spool(tmp_path: Path) -> None:
    assert uid_name("1.2.840.1") == "1.2.840.1"
    for bad in ("../../etc", "1.2/3", "", "." * 3, "9" * 65):
        name = uid_name(bad)
        assert "/" not in name and name.startswith("x") and len(name) == 41
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    path = store(spool, "../../escape", "../x")
    assert path.resolve().is_relative_to((tmp_path / "spool" / "incoming").resolve())


def test_concurrent_stores_from_many_threads(tmp_path: Path) -> None:
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)

    def sender(index: int) -> None:
        for number in range(20):
            store(spool, f"1.2.{index % 3}", f"1.2.{index}.{number}", bytes([index, number]))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spool.open_studies() == {"1.2.0": 40, "1.2.1": 40, "1.2.2": 40}
    studies = spool.close_idle(force=True)
    assert sorted(study.instances for study in studies) == [40, 40, 40]
    assert not list((tmp_path / "spool").rglob("*.part"))


def test_watcher_thread_delivers_closed_studies(tmp_path: Path) -> None:
    delivered = threading.Event()
    got: list[ClosedStudy] = []

    def on_closed(study: ClosedStudy) -> None:
        got.append(study)
        delivered.set()

    spool = StudyCollector(spool_dir=tmp_path / "spool", idle_timeout_s=0.2, on_closed=on_closed)
    spool.start()
    try:
        store(spool, "1.2.3", "1.2.3.1")
        assert delivered.wait(5.0)
    finally:
        spool.stop()
    assert [study.study_instance_uid for study in got] == ["1.2.3"]


def test_recover_reopens_incoming_and_requeues_interrupted_work(tmp_path: Path) -> None:
    clock, closed = Clock(), []
    first = collector(tmp_path, clock, closed)
    store(first, "1.2.3", "1.2.3.1")
    store(first, "1.2.4", "1.2.4.1")
    clock.now += 10
    store(first, "1.2.5", "1.2.5.1")  # still open when the node "stops"
    interrupted = next(s for s in first.close_idle() if s.study_instance_uid == "1.2.3")
    interrupted.results_dir.mkdir()
    (interrupted.results_dir / "half-written.dcm").write_bytes(b"x")
    (tmp_path / "spool" / "incoming" / "1.2.5" / "1.2.5.2.dcm.77.part").write_bytes(b"x")

    second = collector(tmp_path, clock, closed)
    pending = second.recover()
    assert sorted(study.study_instance_uid for study in pending) == ["1.2.3", "1.2.4"]
    assert not interrupted.results_dir.exists()
    assert second.open_studies() == {"1.2.5": 1}
    assert not list((tmp_path / "spool").rglob("*.part"))
    clock.now += 10
    assert [study.study_instance_uid for study in second.close_idle()] == ["1.2.5"]


def test_a_study_stays_open_while_its_association_is_receiving(tmp_path: Path) -> None:
    """The idle clock runs from the later of the last instance and the last data of an open
    association that delivered instances of the study (a large instance on its way)."""
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    spool.receiving("assoc-1")
    spool.receiving("assoc-2")
    spool.store(study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=b"2D",
                calling_aet="MG", sender="assoc-1")  # fmt: skip
    spool.store(study_instance_uid="1.2.4", sop_instance_uid="1.2.4.1", data=b"2D",
                calling_aet="MG", sender="assoc-2")  # fmt: skip
    for _ in range(6):  # 30 s of a tomosynthesis object arriving on assoc-1
        clock.now += 5
        spool.receiving("assoc-1")
        assert [study.study_instance_uid for study in spool.close_idle()] in ([], ["1.2.4"])
    assert spool.open_studies() == {"1.2.3": 1}  # assoc-2 went quiet: its study closed
    clock.now += 2
    spool.sender_gone("assoc-1")  # released (or dropped) 2 s after its last data
    clock.now += 7.9
    assert spool.close_idle() == []
    clock.now += 0.1  # 10 s after the association's last data
    assert [study.study_instance_uid for study in spool.close_idle()] == ["1.2.3"]


def test_an_association_that_goes_quiet_holds_no_study(tmp_path: Path) -> None:
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    spool.receiving("assoc")
    spool.store(study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=b"x",
                calling_aet="MG", sender="assoc")  # fmt: skip
    clock.now += 10  # still open, but nothing arrived
    assert [s.instances for s in spool.close_idle()] == [1]
    # a new batch of the study from another association: assoc, still sending, does not hold it
    spool.receiving("other")
    spool.store(study_instance_uid="1.2.3", sop_instance_uid="1.2.3.2", data=b"y",
                calling_aet="MG", sender="other")  # fmt: skip
    for _ in range(2):
        clock.now += 5
        spool.receiving("assoc")
    assert [s.instances for s in spool.close_idle()] == [1]


def test_a_received_file_is_linked_into_the_spool(tmp_path: Path) -> None:
    """A file handed over (pynetdicom's temporary file of a large instance) is hard-linked,
    not read, and gets the permissions of a new file in the spool, not the temporary 0600."""
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    received = tmp_path / "received.dcm"
    received.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 10)
    received.chmod(0o600)
    path = spool.store(study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=received,
                       calling_aet="MG")  # fmt: skip
    assert path.stat().st_ino == received.stat().st_ino
    assert path.stat().st_mode & 0o777 == path.parent.stat().st_mode & 0o666
    received.unlink()  # what pynetdicom does once the C-STORE handler has returned
    assert path.read_bytes() == b"\0" * 128 + b"DICM" + bytes(range(256)) * 10


def test_an_association_moving_on_to_another_study_no_longer_holds_the_first(
    tmp_path: Path,
) -> None:
    """A PACS forwarding its queue over one association: study A's instances came first,
    then study B's go on arriving. A is closed idle_timeout_s after its last instance (or
    after the data that was still on its way when B's first instance came), not held open
    until the association ends."""
    clock, closed = Clock(), []
    spool = collector(tmp_path, clock, closed)
    spool.receiving("assoc")
    spool.store(study_instance_uid="1.2.3", sop_instance_uid="1.2.3.1", data=b"A",
                calling_aet="PACS", sender="assoc")  # fmt: skip
    for index in range(1, 7):  # 30 s of study B on the same association
        clock.now += 5
        spool.receiving("assoc")
        spool.store(study_instance_uid="1.2.4", sop_instance_uid=f"1.2.4.{index}", data=b"B",
                    calling_aet="PACS", sender="assoc")  # fmt: skip
    # A's last instance came 30 s ago, and the association moved on to B 25 s ago
    assert [study.study_instance_uid for study in spool.close_idle()] == ["1.2.3"]
    assert spool.open_studies() == {"1.2.4": 6}
