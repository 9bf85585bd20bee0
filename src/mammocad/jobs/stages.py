"""The stages of one study's analysis job, each a small object with a ``run(context)``.

::

    decode   (queue cpu)  the study's uploaded files → Study (pixels decoded, bad files rejected)
    analyze  (queue gpu)  Pipeline.analyze: preprocess, quality gate, detect, aggregate
    report   (queue cpu)  result.json, overlay and input pictures, DICOM outputs (dicom/)
    push     (queue cpu)  only with a DICOMweb destination: the DICOM outputs by STOW-RS; a
                          failed push is the job's error, but the job is done with its result

A stage reads and writes only the :class:`StudyContext` and files under the data dir; the
database is the runner's (``jobs.runner``), so a stage can move to another process (Celery
queues ``cpu`` / ``gpu``) without touching SQL. Preprocessing, quality and detection stay one
stage because ``Pipeline.analyze`` keeps them together (nipple and missing-view bookkeeping
spans them); their own timings are recorded as ``analyze.preprocess`` etc.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from mammocad.commands.analyze import AnalyzeSummary, release_pixels, safe_name
from mammocad.commands.analyze import write_study_outputs as write_outputs
from mammocad.errors import MammocadError
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.report.dicomweb_push import DicomwebDestination, push_instances
from mammocad.report.pictures import input_picture, write_png
from mammocad.structures import Study

logger = logging.getLogger(__name__)

DICOM_FOLDER = "dicom"
INPUT_FOLDER = "input"
PICTURES_FOLDER = "pictures"
STUDIES_FOLDER = "studies"


class Queue(StrEnum):
    """Where a stage runs once jobs are spread over machines (Celery queue names)."""

    CPU = "cpu"
    GPU = "gpu"


class StageError(MammocadError):
    """A stage cannot go on with this study (the job fails with this message)."""


def study_folder(study_instance_uid: str) -> str:
    """The study's folder relative to the data dir: ``studies/<uid>``."""
    return f"{STUDIES_FOLDER}/{safe_name(study_instance_uid)}"


def dicom_objects(study_dir: Path) -> list[Path]:
    """The study's DICOM outputs under ``study_dir`` (the study folder): ``dicom/sr.dcm``,
    then ``dicom/sc/*.dcm`` and ``dicom/gsps/*.dcm``, each sorted; empty when none."""
    folder = study_dir / DICOM_FOLDER
    sr = folder / "sr.dcm"
    return [
        *([sr] if sr.is_file() else []),
        *sorted((folder / "sc").glob("*.dcm")),
        *sorted((folder / "gsps").glob("*.dcm")),
    ]


@dataclass(slots=True, kw_only=True)
class StudyContext:
    """What one job hands from stage to stage.

    ``pictures`` maps SOPInstanceUID → (overlay, input picture), paths relative to
    ``data_dir`` (``None`` where no picture was drawn). ``delivery_error``: why the push
    stage could not deliver the results (the job is done, with this as its error).
    """

    study_instance_uid: str
    data_dir: Path
    study: Study | None = None
    analysis: StudyAnalysis | None = None
    pictures: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    delivery_error: str | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir / study_folder(self.study_instance_uid)

    def require_study(self) -> Study:
        if self.study is None:
            raise ValueError("no decoded study: run the decode stage first")
        return self.study

    def require_analysis(self) -> StudyAnalysis:
        if self.analysis is None:
            raise ValueError("no analysis: run the analyze stage first")
        return self.analysis


class Stage(Protocol):
    name: str
    queue: Queue

    def run(self, context: StudyContext) -> None: ...


class DecodeStage:
    """Read every uploaded file of the study; files that fail are rejected images, not errors."""

    name = "decode"
    queue = Queue.CPU

    def run(self, context: StudyContext) -> None:
        folder = context.folder / INPUT_FOLDER
        if not folder.is_dir():  # the path is the server's: in the log, not in the job
            logger.warning(
                "job of study %s: upload folder %s is gone", context.study_instance_uid, folder
            )
            raise StageError("the study's uploaded files are gone: upload the study again")
        stream = iter_studies([folder])
        studies = list(stream)
        match = [s for s in studies if s.study_instance_uid == context.study_instance_uid]
        for image in stream.unassigned:
            logger.warning("%s: %s rejected: %s", folder, image.source, image.rejection_text)
        if match:
            context.study = match[0]
        else:  # nothing readable: the pipeline turns this into a 'rejected' result
            context.study = Study(
                study_instance_uid=context.study_instance_uid, images=list(stream.unassigned)
            )


class AnalyzeStage:
    """The model: preprocess, quality gate, detect and aggregate (``Pipeline.analyze``)."""

    name = "analyze"
    queue = Queue.GPU

    def __init__(self, *, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def run(self, context: StudyContext) -> None:
        analysis = self.pipeline.analyze(context.require_study())
        for stage, milliseconds in analysis.timings_ms.items():
            if stage != "total":
                context.timings_ms[f"analyze.{stage}"] = milliseconds
        context.analysis = analysis


class ReportStage:
    """``result.json`` and overlays (as ``mammocad analyze`` writes them), the DICOM outputs
    (as ``analyze --dicom``: ``dicom/sr.dcm``, ``dicom/sc/``, ``dicom/gsps/``; one SR of
    ``sr_template``) and, per image, the model-input picture ``mammocad preprocess`` writes,
    under the study folder."""

    name = "report"
    queue = Queue.CPU

    def __init__(self, *, dicom: bool = True, sr_template: str = "tid1500") -> None:
        self.dicom = dicom
        self.sr_template = sr_template

    def run(self, context: StudyContext) -> None:
        analysis = context.require_analysis()
        summary = AnalyzeSummary(model=analysis.result["model"])
        studies_dir = context.data_dir / STUDIES_FOLDER
        # objects of an earlier analysis (another model, more images, DICOM outputs since
        # switched off) must not be served or pushed with this result
        shutil.rmtree(context.folder / DICOM_FOLDER, ignore_errors=True)
        write_outputs(
            analysis, studies_dir, summary, dicom=self.dicom, sr_template=self.sr_template
        )
        overlays = {
            str(entry["key"]): f"{STUDIES_FOLDER}/{entry['overlay']}"
            for entry in summary.inputs
            if entry.get("overlay") and entry.get("key")
        }
        for key, prepared in analysis.preprocessed.items():
            relative = f"{study_folder(context.study_instance_uid)}/{PICTURES_FOLDER}/"
            relative += f"{safe_name(key)}.input.png"
            try:
                write_png(context.data_dir / relative, input_picture(prepared.input))
            except Exception:  # a picture must not cost the result
                logger.exception("input picture of %s could not be written", key)
                relative = ""
            context.pictures[key] = (overlays.get(key), relative or None)
        for key, overlay in overlays.items():
            context.pictures.setdefault(key, (overlay, None))
        release_pixels(analysis.study)


class PushStage:
    """Send the study's DICOM outputs to ``destination`` (STOW-RS, PS3.18 §10.5).

    Never fails the job: the result is already written and is stored whatever the server
    says; a failed delivery goes to ``context.delivery_error`` (the job's error) and the log.
    """

    name = "push"
    queue = Queue.CPU

    def __init__(self, *, destination: DicomwebDestination) -> None:
        self.destination = destination

    def run(self, context: StudyContext) -> None:
        paths = dicom_objects(context.folder)
        if not paths:
            logger.info("%s: no DICOM outputs to push", context.study_instance_uid)
            return
        try:
            report = push_instances(paths, destination=self.destination)
        except Exception as error:  # an unreadable object, a bug: still not the result's loss
            logger.exception("%s: push failed", context.study_instance_uid)
            text = f"STOW-RS push to {self.destination.url} failed"
            text += f" ({type(error).__name__}: {error})"
        else:
            if report.ok:
                logger.info("%s: %s", context.study_instance_uid, report.summary())
                return
            text = report.summary()
        context.delivery_error = (
            f"results saved; {text}: check the DICOMweb server, then upload the study again "
            "to retry"
        )
        logger.warning("%s: %s", context.study_instance_uid, context.delivery_error)


def default_stages(
    *,
    pipeline: Pipeline,
    dicom: bool = True,
    sr_template: str = "tid1500",
    push: DicomwebDestination | None = None,
) -> list[Stage]:
    """decode → analyze → report (→ push, with a ``push`` destination) with ``pipeline`` as
    the model; ``dicom`` and ``sr_template`` as for :class:`ReportStage`."""
    stages: list[Stage] = [
        DecodeStage(),
        AnalyzeStage(pipeline=pipeline),
        ReportStage(dicom=dicom, sr_template=sr_template),
    ]
    if push is not None:
        stages.append(PushStage(destination=push))
    return stages
