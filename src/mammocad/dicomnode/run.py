"""Run the node in the foreground until SIGINT or SIGTERM (``mammocad dicom-node``)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from mammocad.dicomnode.handler import StudyHandler
from mammocad.dicomnode.node import DicomNode
from mammocad.dicomnode.settings import NodeSettings

if TYPE_CHECKING:
    from mammocad.pipeline import Pipeline
    from mammocad.serve.settings import Settings

logger = logging.getLogger(__name__)


def run_node(settings: NodeSettings, handler: StudyHandler) -> None:
    """Start the node, block until SIGINT/SIGTERM, stop it gracefully (the study being
    analysed finishes; open and queued studies stay in the spool for the next start)."""
    if not settings.allowed_calling_aets:
        logger.warning(
            "no --allow given: any calling AE title is accepted; name the modalities and PACS "
            "that may send studies (--allow AET, repeatable)"
        )
    if settings.destination is None:
        logger.warning("no --destination: results are kept under %s", settings.spool_dir / "done")
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = DicomNode(settings=settings, handler=handler)
    try:
        node.start()
        stop.wait()
    finally:
        node.stop()
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


def run_queued_node(
    settings: NodeSettings,
    service: Settings,
    *,
    load_pipeline: Callable[[], Pipeline],
    gsps: bool = False,
) -> None:
    """:func:`run_node` with a :class:`~mammocad.dicomnode.queued.QueuedStudyHandler` over
    the service of ``service`` (its data dir, database and job queue); the queue's workers
    stop after the node.

    Raises:
        MammocadError: the database cannot be reached, or Celery is missing for a broker.
    """
    from mammocad.dicomnode.service import ServiceQueue  # imports the service: only when used

    queue = ServiceQueue.open(service, load_pipeline=load_pipeline)
    try:
        run_node(settings, queue.handler(gsps=gsps, actor=f"dicom-node:{settings.ae_title}"))
    finally:
        queue.close()
