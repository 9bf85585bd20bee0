"""Fixtures of the DICOM node tests: phantom studies, pynetdicom peers on loopback, a node.

The peers are real pynetdicom application entities talking TCP on 127.0.0.1: a storage SCU
standing in for a modality or PACS, and a storage SCP standing in for the results destination
(with the transfer syntaxes it accepts chosen by the test).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from mammocad.dicomnode import DicomNode, NodeSettings, StudyOutcome
from mammocad.pipeline import Pipeline
from mammocad.synthetic import write_studies

LOOPBACK = "127.0.0.1"
MODALITY = "MODALITY"


def phantom_files(root: Path, *, seed: int) -> list[Path]:
    """The four DICOM files of one small phantom study (sorted)."""
    (folder,) = write_studies(n_studies=1, out_dir=root, seed=seed, size="small")
    return sorted(folder.glob("*.dcm"))


@pytest.fixture(scope="session")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One small four-view phantom study, shared by the session: copy before changing."""
    return phantom_files(tmp_path_factory.mktemp("phantom"), seed=11)


@pytest.fixture
def broken_phantom(phantom: list[Path]) -> list[Dataset]:
    """The phantom's images, each with half its pixel data cut off (a transfer that went
    wrong upstream): the headers read, the pixels do not."""
    broken = []
    for path in phantom:
        ds = dcmread(path)
        ds.decompress()
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 4 * 2]
        broken.append(ds)
    return broken


class Peer:
    """A modality or PACS on loopback: pynetdicom as SCU."""

    def c_store(
        self,
        port: int,
        items: Sequence[Path | Dataset],
        *,
        calling: str = MODALITY,
        called: str = "MAMMOCAD",
        syntaxes: Sequence[str] | None = None,
    ) -> list[int]:
        """C-STORE every item over one association; the statuses, in order. ``syntaxes``:
        offered for every SOP class (default: the items' own transfer syntaxes)."""
        datasets = [dcmread(item) if isinstance(item, Path) else item for item in items]
        offers: dict[str, list[str]] = {}
        for ds in datasets:
            own = offers.setdefault(ds.SOPClassUID, [])
            for syntax in syntaxes or [ds.file_meta.TransferSyntaxUID]:
                if syntax not in own:
                    own.append(syntax)
        ae = AE(ae_title=calling)
        for sop_class, offered in offers.items():
            if syntaxes is None:  # one context per syntax: each item goes as it is stored
                for syntax in offered:
                    ae.add_requested_context(sop_class, syntax)
            else:
                ae.add_requested_context(sop_class, offered)
        assoc = ae.associate(LOOPBACK, port, ae_title=called)
        if not assoc.is_established:
            raise AssertionError("the node did not accept the association")
        try:
            return [int(assoc.send_c_store(ds).Status) for ds in datasets]
        finally:
            assoc.release()

    def associate(self, port: int, *, calling: str, called: str = "MAMMOCAD") -> Association:
        """An association with Verification only; C-ECHO once, then released."""
        ae = AE(ae_title=calling)
        ae.add_requested_context(Verification)
        assoc = ae.associate(LOOPBACK, port, ae_title=called)
        if assoc.is_established:
            self.echo_status = int(assoc.send_c_echo().Status)
            assoc.release()
        return assoc

    echo_status: int | None = None


@pytest.fixture
def peer() -> Peer:
    return Peer()


@dataclass(slots=True)
class Received:
    dataset: Dataset
    transfer_syntax: str
    calling_aet: str


@dataclass(slots=True)
class Destination:
    """A storage SCP on loopback that records what it receives."""

    server: ThreadedAssociationServer
    ae_title: str
    received: list[Received] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{LOOPBACK}:{self.port}"


@pytest.fixture
def destination_factory() -> Iterator[Callable[..., Destination]]:
    servers: list[ThreadedAssociationServer] = []
    lock = threading.Lock()

    def start(
        *,
        syntaxes: Sequence[str],
        ae_title: str = "RESULTS",
        sop_classes: Sequence[str] | None = None,
        status: int = 0x0000,
        callers: Sequence[str] = (),
    ) -> Destination:
        """Accepts ``sop_classes`` (default: all storage) in ``syntaxes`` from ``callers``
        (default: anyone), answers ``status``."""
        ae = AE(ae_title=ae_title)
        ae.require_calling_aet = list(callers)
        classes = sop_classes or [cx.abstract_syntax for cx in StoragePresentationContexts]
        for sop_class in classes:
            ae.add_supported_context(sop_class, list(syntaxes))
        destination: Destination

        def on_store(event: evt.Event) -> int:
            ds = event.dataset
            ds.file_meta = event.file_meta
            item = Received(ds, str(event.context.transfer_syntax), event.assoc.requestor.ae_title)
            with lock:
                destination.received.append(item)
            return status

        server = ae.start_server(
            (LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        servers.append(server)
        destination = Destination(server=server, ae_title=ae_title)
        return destination

    yield start
    for server in servers:
        server.shutdown()


class RunningNode:
    """A started :class:`DicomNode` whose finished studies arrive in :attr:`outcomes`."""

    def __init__(self, node: DicomNode, outcomes: queue.Queue[StudyOutcome]) -> None:
        self.node = node
        self.outcomes = outcomes

    @property
    def port(self) -> int:
        return self.node.port

    def next_outcome(self, timeout: float = 60.0) -> StudyOutcome:
        try:
            return self.outcomes.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no study finished within {timeout} s") from None


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., RunningNode]]:
    nodes: list[DicomNode] = []

    def start(*, handler: object, **options: object) -> RunningNode:
        settings = NodeSettings(
            **{
                "port": 0,
                "bind_address": LOOPBACK,
                "spool_dir": tmp_path / "spool",
                "idle_timeout_s": 0.5,
                "network_timeout_s": 10.0,
                **options,
            }  # type: ignore[arg-type]
        )
        outcomes: queue.Queue[StudyOutcome] = queue.Queue()
        node = DicomNode(settings=settings, handler=handler, on_done=outcomes.put)  # type: ignore[arg-type]
        node.start()
        nodes.append(node)
        return RunningNode(node, outcomes)

    yield start
    for node in nodes:
        node.stop()


class CopyHandler:
    """A fast stand-in for the analysis: one derived copy of each received instance (new SOP
    Instance UID, Manufacturer ``mammocad``); records the folders it was given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, instances_dir: Path, *, out_dir: Path) -> list[Path]:
        files = sorted(instances_dir.glob("*.dcm"))
        self.calls.append([path.name for path in files])
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = []
        for path in files:
            ds = dcmread(path)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.Manufacturer = "mammocad"
            target = out_dir / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(target, enforce_file_format=True)
            outputs.append(target)
        return outputs


@pytest.fixture
def copy_handler() -> CopyHandler:
    return CopyHandler()


@pytest.fixture(scope="session")
def pipeline(tiny_bundle: Path) -> Pipeline:
    """The tiny untrained bundle, loaded once for the session."""
    return Pipeline.from_bundle(tiny_bundle, num_threads=1)


class IdleQueue:
    """A job queue whose workers never come: the test looks at intake, or at the wait."""

    def start(self) -> int:
        return 0

    def submit(self, job_id: str) -> None:
        pass

    def stop(self, timeout_s: float = 30.0) -> None:
        pass

    @property
    def alive(self) -> bool:
        return False


@pytest.fixture
def idle_queue() -> IdleQueue:
    return IdleQueue()
