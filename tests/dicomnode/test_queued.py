"""The node over the service's job queue: C-STORE in → intake → job → database → C-STORE out.

Each test gets its own data dir (SQLite) with in-process workers over the tiny bundle, as
``mammocad dicom-node --data-dir`` builds them without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComprehensiveSRStorage,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    SecondaryCaptureImageStorage,
)
from sqlalchemy import select

from mammocad.dicomnode import Destination, QueuedStudyHandler, SendSyntax, StudyHandlingError
from mammocad.dicomnode.service import ServiceQueue
from mammocad.jobs import InProcessWorkers, JobRunner
from mammocad.jobs.stages import DecodeStage, StageError, StudyContext
from mammocad.pipeline import Pipeline
from mammocad.serve import Settings
from mammocad.store.models import AuditEntry, JobStatus, StudyState
from mammocad.store.repository import get_study, latest_job
from mammocad.store.session import transaction

if TYPE_CHECKING:
    from conftest import Destination as Recorder
    from conftest import IdleQueue, Peer, RunningNode

NodeFactory = Callable[..., "RunningNode"]
DestinationFactory = Callable[..., "Recorder"]


@pytest.fixture
def service(tmp_path: Path, pipeline: Pipeline) -> Iterator[ServiceQueue]:
    queue = ServiceQueue.open(Settings(data_dir=tmp_path / "data"), load_pipeline=lambda: pipeline)
    yield queue
    queue.close()


def queued_handler(service: ServiceQueue, **options: object) -> QueuedStudyHandler:
    return QueuedStudyHandler(
        **{
            "data_dir": service.settings.data_dir,
            "sessions": service.sessions,
            "workers": service.workers,
            "timeout_s": 120.0,
            "poll_interval_s": 0.1,
            **options,
        }  # type: ignore[arg-type]
    )


def test_study_goes_through_the_job_queue_into_the_database_and_back(
    service: ServiceQueue,
    node_factory: NodeFactory,
    destination_factory: DestinationFactory,
    peer: Peer,
    phantom: list[Path],
    tmp_path: Path,
) -> None:
    recorder = destination_factory(syntaxes=[ExplicitVRLittleEndian])
    handler = queued_handler(service, gsps=True, actor="dicom-node:MAMMOCAD")
    destination = Destination.parse(recorder.address, transfer_syntaxes=(SendSyntax.explicit,))
    node = node_factory(handler=handler, idle_timeout_s=0.3, destination=destination)
    assert peer.c_store(node.port, phantom) == [0] * 4
    outcome = node.next_outcome(timeout=120)
    assert outcome.ok, outcome.error
    assert outcome.folder is None  # sent: the spool folder is gone

    uid = dcmread(phantom[0]).StudyInstanceUID
    by_class: dict[str, int] = {}
    for item in recorder.received:
        assert item.dataset.StudyInstanceUID == uid
        by_class[item.dataset.SOPClassUID] = by_class.get(item.dataset.SOPClassUID, 0) + 1
    assert by_class[ComprehensiveSRStorage] == 1
    assert by_class[SecondaryCaptureImageStorage] == 4
    gsps = service.settings.data_dir / "studies" / uid / "dicom" / "gsps"
    assert by_class.get(GrayscaleSoftcopyPresentationStateStorage, 0) == len(list(gsps.iterdir()))

    with transaction(service.sessions) as session:
        study = get_study(session, uid)
        assert study is not None and study.state == StudyState.DONE.value
        assert len(study.images) == 4 and study.result is not None
        job = latest_job(study)
        assert job is not None and job.status == JobStatus.DONE.value and len(study.jobs) == 1
        actors = session.scalars(select(AuditEntry.actor)).all()
        assert list(actors) == ["dicom-node:MAMMOCAD"]

    # the same study again: nothing new, no new job, the stored outputs come back at once
    again = handler(phantom[0].parent, out_dir=tmp_path / "again")
    assert len([path for path in again if path.parent.name == "sc"]) == 4
    with transaction(service.sessions) as session:
        study = get_study(session, uid)
        assert study is not None and len(study.jobs) == 1


def test_unreadable_study_fails_with_its_reason_and_the_node_goes_on(
    service: ServiceQueue,
    node_factory: NodeFactory,
    peer: Peer,
    phantom: list[Path],
    broken_phantom: list[Dataset],
) -> None:
    node = node_factory(handler=queued_handler(service), idle_timeout_s=0.3)
    assert peer.c_store(node.port, broken_phantom) == [0] * 4
    outcome = node.next_outcome(timeout=120)
    assert not outcome.ok
    assert "no image of the study could be processed (truncated_pixel_data)" in str(outcome.error)
    assert outcome.folder is not None and outcome.folder.parent.name == "failed"
    assert "truncated_pixel_data" in (outcome.folder / "reason.txt").read_text()
    assert len(list((outcome.folder / "instances").iterdir())) == 4  # kept for a re-run
    with transaction(service.sessions) as session:
        study = get_study(session, dcmread(phantom[0]).StudyInstanceUID)
        assert study is not None and study.result_status == "rejected"
    assert peer.associate(node.port, calling="STILL_UP").is_released


class FailingStage:
    name = "analyze"
    queue = DecodeStage.queue

    def run(self, context: StudyContext) -> None:
        raise StageError("the detector is out of memory: lower MAMMOCAD_WORKERS")


def test_failed_job_is_a_handling_error_with_the_jobs_text(
    service: ServiceQueue, phantom: list[Path], tmp_path: Path
) -> None:
    runner = JobRunner(
        sessions=service.sessions,
        data_dir=service.settings.data_dir,
        stages=[DecodeStage(), FailingStage()],
    )
    service.workers.stop()
    service.workers = workers = InProcessWorkers(sessions=service.sessions, runner=runner)
    workers.start()
    handler = queued_handler(service)
    with pytest.raises(StudyHandlingError, match=r"job \S+ failed: analyze: .*out of memory"):
        handler(phantom[0].parent, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_job_that_does_not_finish_in_time_is_a_handling_error(
    service: ServiceQueue, phantom: list[Path], tmp_path: Path, idle_queue: IdleQueue
) -> None:
    handler = queued_handler(service, workers=idle_queue, timeout_s=0.3)
    service.workers.stop()  # nobody takes the job
    with pytest.raises(StudyHandlingError, match=r"not finished after 0.3 s \(status queued\)"):
        handler(phantom[0].parent, out_dir=tmp_path / "out")


@pytest.fixture(autouse=True)
def _quiet_pynetdicom(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="pynetdicom")
