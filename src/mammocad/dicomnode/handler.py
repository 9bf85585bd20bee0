"""What the node does with a closed study: the :class:`StudyHandler` protocol and its default.

:class:`PipelineStudyHandler` runs the analysis in this process (``mammocad analyze --dicom``
on the study's folder), without the service database; ``mammocad dicom-node`` uses
:class:`~mammocad.dicomnode.queued.QueuedStudyHandler`, which sends each study through the
service's job queue.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

from mammocad.errors import MammocadError

if TYPE_CHECKING:
    from mammocad.pipeline import Pipeline

logger = logging.getLogger(__name__)


class StudyHandlingError(MammocadError):
    """A closed study gave no result to send; the message says why (the node logs it, keeps
    the study under ``SPOOL/failed/`` and goes on)."""


class StudyHandler(Protocol):
    """Analyse the instances in ``instances_dir`` (one study, files as received) and return
    the DICOM files to send back, written under ``out_dir``.

    Raises:
        StudyHandlingError: nothing to send (the reason is logged with the study).
    """

    def __call__(self, instances_dir: Path, *, out_dir: Path) -> list[Path]: ...


class PipelineStudyHandler:
    """The in-process handler: :func:`mammocad.commands.analyze.run_analyze` with DICOM
    outputs (docs/dicom-outputs.md), returning the SR and Secondary Captures (and, with
    ``gsps``, the presentation states); ``sr_template`` as for ``analyze --sr-template``.

    One study at a time: the pipeline holds a detector whose threads are already sized for
    the machine, so running two studies at once would only make both slower.
    """

    def __init__(
        self, *, pipeline: Pipeline, gsps: bool = False, sr_template: str = "tid1500"
    ) -> None:
        self.pipeline = pipeline
        self.gsps = gsps
        self.sr_template = sr_template
        self._lock = threading.Lock()

    def __call__(self, instances_dir: Path, *, out_dir: Path) -> list[Path]:
        from mammocad.commands.analyze import run_analyze  # imports torch: only when used

        with self._lock:
            summary = run_analyze(
                [instances_dir], out_dir=out_dir, pipeline=self.pipeline,
                console=Console(quiet=True), dicom=True, sr_template=self.sr_template,
            )  # fmt: skip
        for entry in summary.inputs:
            if entry["status"] == "rejected":
                logger.warning(
                    "%s not analysed: %s: %s",
                    Path(str(entry["source"])).name, entry["rejection_code"], entry["text"],
                )  # fmt: skip
        if summary.internal_errors:
            # the SR lists those images as not processed; the rest of the study is still sent
            logger.error(
                "%d images failed inside mammocad (traceback above)", summary.internal_errors
            )
        files = self._outputs(out_dir)
        if not files:
            reasons = sorted({str(entry["rejection_code"]) for entry in summary.inputs})
            raise StudyHandlingError(
                "no DICOM output: no image of the study could be processed "
                f"({', '.join(reasons) or 'no files'})"
            )
        return files

    def _outputs(self, out_dir: Path) -> list[Path]:
        kinds = ["sr.dcm", "sc/*.dcm", *(["gsps/*.dcm"] if self.gsps else [])]
        return [path for kind in kinds for path in sorted(out_dir.glob(f"*/dicom/{kind}"))]
