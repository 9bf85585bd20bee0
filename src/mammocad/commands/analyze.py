"""``mammocad analyze``: every study of the inputs → result.json and overlay pictures.

Output folder::

    DIR/<StudyInstanceUID>/result.json                  the result schema object of the study
    DIR/<StudyInstanceUID>/overlays/<SOPInstanceUID>.png  each processed image (and each the
                                                          quality gate refused), as stored, with
                                                          boxes, labels, probabilities, quality
                                                          issues and a model footer
    DIR/<StudyInstanceUID>/dicom/                       with ``--dicom``: sr.dcm, sc/*.dcm and
                                                          gsps/*.dcm (docs/dicom-outputs.md);
                                                          sr.dcm is TID 1500, or TID 4000 with
                                                          ``--sr-template mammography-cad``
    DIR/summary.json                                    every input file (processed or rejected
                                                          with code and sentence), every study

Studies are decoded and analysed one at a time and their pixels dropped afterwards, so a batch
holds one study's images at most. A study's outputs are written into ``DIR/.mammocad-staging/``
and replace its folder only once complete; a study that fails has its folder removed, so a
re-run into the same ``DIR`` never leaves an earlier run's result.json or overlays beside this
run's summary.json. A disk that is full or a folder that cannot be written is no failure of the
study: the run stops (:class:`AnalyzeStorageError`), each study's earlier folder kept.
See docs/analyze.md.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.markup import escape

import mammocad
from mammocad.commands.progress import batch_progress
from mammocad.detect.bundle import bundle_inside
from mammocad.errors import MammocadError, ModelBundleError, RejectionCode
from mammocad.io import SPLIT_PATIENT, iter_studies
from mammocad.pipeline import INTERNAL_ERROR, Pipeline, StudyAnalysis
from mammocad.report.overlay import render_overlay
from mammocad.report.pictures import write_png
from mammocad.structures import Image, ImageQuality, PreprocessedImage, Severity, Study

logger = logging.getLogger(__name__)

MODEL_ENV = "MAMMOCAD_MODEL"
#: The shipped bundle, beside ``src/`` in a checkout (``models/mammocad-detector``).
DEFAULT_MODEL_DIR = Path(mammocad.__file__).resolve().parents[2] / "models" / "mammocad-detector"
TRAIN_HINT = (
    "train one with `mammocad train detector --data phantom:n=200,seed=0 --out runs/detector` "
    "and pass `--model runs/detector/mammocad-detector` (or set MAMMOCAD_MODEL to it)"
)
# Hershey fonts draw ASCII only, hence "-" rather than a dash.
DISCLAIMER = "research use only - not for primary diagnosis"
#: where ``run_analyze`` writes a study before it replaces the study's folder: two levels
#: below DIR, so the ``DIR/*/result.json`` that evaluations read never sees a study half-written
STAGING_FOLDER = ".mammocad-staging"
#: what :func:`write_study_outputs` puts in a study's folder: a re-run replaces or removes a
#: study folder only when it holds nothing else (it may be the user's own folder of images)
OUTPUT_NAMES = frozenset({"result.json", "overlays", "dicom"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: write failures of the disk or the output folder, not of a study: they stop the run (as
#: ``mammocad batch`` stops), where failing study after study would remove each earlier result
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class AnalyzeStorageError(MammocadError):
    """The output folder cannot be written: the disk is full or read-only, or a study's
    folder cannot be replaced."""


def resolve_model(explicit: Path | None, *, environ: Mapping[str, str] = os.environ) -> Path:
    """The bundle folder to use: ``--model``, else ``$MAMMOCAD_MODEL``, else the shipped one.

    Raises:
        ModelBundleError: the chosen folder has no ``manifest.json`` (the message says how to
            get a bundle).
    """
    if explicit is not None:
        path, origin = explicit, "--model"
    elif environ.get(MODEL_ENV):
        path, origin = Path(environ[MODEL_ENV]), MODEL_ENV
    else:
        path, origin = DEFAULT_MODEL_DIR, "the default model location"
    if not (path / "manifest.json").is_file():
        inner = bundle_inside(path)
        if inner:  # a training run's folder: the bundle is inside
            raise ModelBundleError(
                f"no model bundle at {path} ({origin}), but {inner} holds one: pass that folder."
            )
        raise ModelBundleError(f"no model bundle at {path} ({origin}): {TRAIN_HINT}.")
    return path


def safe_name(name: str) -> str:
    """A file or folder name for a UID or key: the name itself when it is safe (UIDs are),
    else its unsafe characters replaced and a hash of the whole name appended, so that two
    names never share a folder (``1.2/3`` and ``1.2_3``: the second study's result.json would
    replace the first's)."""
    if _UNSAFE.search(name) is None and name.strip("."):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', name).strip('.')}-{digest}".lstrip("-")


@dataclass(slots=True)
class AnalyzeSummary:
    """``summary.json``: the model, one entry per study and one per input file."""

    model: dict[str, Any]
    studies: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    #: studies of fewer than four images whose patient has other studies among the inputs
    #: (:data:`mammocad.io.SPLIT_PATIENT`; printed as a hint, not in summary.json)
    split_patient_studies: int = 0

    def count_split_patient(self, study: Study) -> None:
        if any(message.code == SPLIT_PATIENT for message in study.messages):
            self.split_patient_studies += 1

    def split_patient_hint(self) -> str | None:
        """The line that points at ``--group-by patient``, when it may apply."""
        if not self.split_patient_studies:
            return None
        return (
            f"{self.split_patient_studies} studies of fewer than four images share their "
            "patient with other studies of these inputs: if they hold views of one examination "
            "(CBIS-DDSM stores each view as a study), --group-by patient reads them as one study"
        )

    def no_inputs_hint(self) -> str | None:
        """The line that says the inputs held no file at all (an empty folder or archive)."""
        if self.inputs:
            return None
        return (
            "no input file found: the inputs hold nothing but hidden files and documents "
            "(.txt, .json, .pdf...), which are passed over; give DICOM, PNG or PGM files, or "
            "folders or zip archives that hold them"
        )

    @property
    def processed(self) -> int:
        return sum(entry["status"] == "processed" for entry in self.inputs)

    @property
    def rejected(self) -> int:
        return len(self.inputs) - self.processed

    @property
    def internal_errors(self) -> int:
        return sum(entry["rejection_code"] == INTERNAL_ERROR.value for entry in self.inputs)

    @property
    def unwritten(self) -> int:
        """Inputs of studies left without result because their folder was not mammocad's."""
        conflict = RejectionCode.OUTPUT_CONFLICT.value
        return sum(entry["rejection_code"] == conflict for entry in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "studies": self.studies, "inputs": self.inputs}


def input_entry(image: Image, study: Study | None = None, **outputs: str | None) -> dict[str, Any]:
    """The summary's entry for one input; ``study``: the study it was analysed in, whose UID
    differs from the image's own when a patient's studies were merged (``--group-by
    patient``)."""
    uid = image.study_instance_uid if study is None else study.study_instance_uid
    return {
        "source": image.source,
        "key": image.key if image.sop_instance_uid or image.source else None,
        "study_instance_uid": uid,
        "status": image.status.value,
        "rejection_code": image.rejection_code.value if image.rejection_code else None,
        "text": image.rejection_text,
        **outputs,
    }


def _drawn(analysis: StudyAnalysis, image: Image) -> PreprocessedImage | None:
    """The preprocessed image an overlay is drawn from: a processed image's, or that of one the
    quality gate refused (drawn with its reasons); ``None`` when there is nothing to draw."""
    if image.pixels is None:
        return None
    return analysis.preprocessed.get(image.key) or analysis.refused.get(image.key)


def _overlay_quality(prepared: PreprocessedImage, image: Image) -> ImageQuality:
    """The technical quality issues plus the image's warnings (e.g. laterality guessed)."""
    quality = prepared.quality
    warnings = tuple(
        m for m in image.messages if m.severity is not Severity.INFO and m not in quality.issues
    )
    return ImageQuality(
        score=quality.score, acceptable=quality.acceptable, issues=(*quality.issues, *warnings)
    )


def _overlay_picture(analysis: StudyAnalysis, image: Image, footer: str) -> npt.NDArray[np.uint8]:
    prepared = _drawn(analysis, image)
    if prepared is None:
        raise ValueError(f"{image.key}: neither processed nor refused for its quality")
    # the picture is named by its SOP Instance UID: the footer says which breast and view it
    # shows, as read (an inferred side or view is flagged among the quality notes)
    side = image.laterality.value if image.laterality else "?"
    view = image.view.value if image.view else "?"
    return render_overlay(
        image,
        analysis.findings(image.key),
        candidates=analysis.unreported_candidates(image.key),
        nipple=prepared.nipple,
        quality=_overlay_quality(prepared, image),
        footer=f"{side} {view} | {footer}" if footer else f"{side} {view}",
    )


def _write_overlay(analysis: StudyAnalysis, image: Image, folder: Path, footer: str) -> str | None:
    """Relative path of the overlay written, ``None`` when drawing failed (logged)."""
    relative = Path(folder.name, "overlays", f"{safe_name(image.key)}.png")
    try:
        write_png(folder.parent / relative, _overlay_picture(analysis, image, footer))
    except Exception as error:  # cv2.error included: a picture must not cost the result
        if isinstance(error, OSError) and error.errno in UNWRITABLE:
            raise  # but the study must not replace its earlier folder without its pictures
        logger.exception("overlay of %s (%s) could not be written", image.key, image.source)
        return None
    return relative.as_posix()


def _write_dicom(
    analysis: StudyAnalysis, folder: Path, footer: str, sr_template: str = "tid1500"
) -> tuple[str | None, list[dict[str, str | None]]]:
    """Relative path of the study's DICOM folder (``None`` when nothing was written) and what
    could not be written, for summary.json (each also logged)."""
    from mammocad.report.dicom import write_dicom_outputs  # needs highdicom: only with --dicom

    images = {image.key: image for image in analysis.study.images}

    def picture(key: str) -> npt.NDArray[np.uint8] | None:
        image = images.get(key)
        if image is None or image.pixels is None or key not in analysis.preprocessed:
            return None
        return _overlay_picture(analysis, image, footer)

    outputs = write_dicom_outputs(
        analysis.result, folder=folder / "dicom", picture=picture, sr_template=sr_template
    )
    issues: list[dict[str, str | None]] = []
    for message in outputs.messages:
        logger.warning("%s: %s", analysis.study.study_instance_uid, message.text)
        issues.append(
            {
                "code": message.code,
                "text": message.text,
                "sop_instance_uid": message.sop_instance_uid,
            }
        )
    return (f"{folder.name}/dicom" if outputs.paths() else None), issues


def write_study_outputs(
    analysis: StudyAnalysis,
    out_dir: Path,
    summary: AnalyzeSummary,
    *,
    dicom: bool = False,
    sr_template: str = "tid1500",
) -> None:
    study, result = analysis.study, analysis.result
    folder = out_dir / safe_name(study.study_instance_uid)
    folder.mkdir(parents=True, exist_ok=True)
    result_path = folder / "result.json"
    result_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    relative = f"{folder.name}/result.json"
    model = result["model"]
    footer = f"{model['name']} {model['version']} | {DISCLAIMER}"
    for image in study.images:
        overlay = None
        if _drawn(analysis, image) is not None:
            overlay = _write_overlay(analysis, image, folder, footer)
        summary.inputs.append(input_entry(image, study, result=relative, overlay=overlay))
    entry = {
        "study_instance_uid": study.study_instance_uid,
        "status": result["status"],
        "malignancy_probability": result["malignancy_probability"],
        "suspicion": result["suspicion"],
        "result": relative,
    }
    if dicom:
        entry["dicom"], entry["dicom_issues"] = _write_dicom(analysis, folder, footer, sr_template)
    summary.studies.append(entry)


def record_failed_study(study: Study, error: Exception, summary: AnalyzeSummary) -> None:
    """Last resort beyond the pipeline's per-image guards: list the study's files as failed."""
    logger.exception("study %s could not be analysed", study.study_instance_uid)
    text = (
        f"mammocad failed on this study ({type(error).__name__}: {error}); no result was "
        "written — please report this with the log."
    )
    record_unwritten_study(study, summary, code=INTERNAL_ERROR, text=text)


def record_unwritten_study(
    study: Study, summary: AnalyzeSummary, *, code: RejectionCode, text: str
) -> None:
    """List the study's files and the study as without result, its processed images as
    rejected ``code`` with ``text``."""
    for image in study.images:
        if image.is_processed:
            image.reject(code, text)
        summary.inputs.append(input_entry(image, study, result=None, overlay=None))
    summary.studies.append(
        {
            "study_instance_uid": study.study_instance_uid,
            "status": "rejected",
            "malignancy_probability": None,
            "suspicion": None,
            "result": None,
        }
    )


def release_pixels(study: Study) -> None:
    # a batch must not hold every decoded image at once
    for image in study.images:
        image.pixels = None
        image.padding_mask = None


def check_output_apart(
    inputs: Sequence[str | Path], out_dir: Path, *, option: str = "--out"
) -> None:
    """Refuse an output (``option`` names it in the message) that is, holds or lies inside one
    of the inputs: a study's results replace its folder ``out_dir/<StudyInstanceUID>``, and
    an export laid out as ``<StudyInstanceUID>/*.dcm`` would have its images replaced; inside
    an input folder, the next run would read this one's overlay pictures as images.

    Raises:
        ValueError: ``out_dir`` is an input, a folder above one or inside one.
    """
    out = out_dir.resolve()
    for item in inputs:
        path = Path(item).resolve()
        if path == out or out in path.parents:
            raise ValueError(
                f"{option} {out_dir} holds the input {item}: what is written there replaces "
                "it (the results of a study replace its folder, which may be the folder of "
                "its images); write the results to a folder outside the inputs"
            )
        if path in out.parents:
            raise ValueError(
                f"{option} {out_dir} is inside the input folder {item}: the next run would "
                "read these results (overlay pictures, archives) as images; write the results "
                "to a folder outside the inputs"
            )


def _is_output_folder(folder: Path) -> bool:
    """Whether ``folder`` is absent or holds only what :func:`write_study_outputs` writes."""
    try:
        return all(child.name in OUTPUT_NAMES for child in folder.iterdir())
    except FileNotFoundError:
        return True
    except OSError:  # a file, or unreadable: not ours to replace
        return False


def check_grouping(group_by: str, *, dicom: bool) -> None:
    """Refuse DICOM outputs for studies merged per patient.

    An SR, Secondary Capture or presentation state belongs to the study of the images it
    describes (General Study Module, PS3.3 C.7.2.1; the evidence of an SR lies in its own
    study, PS3.3 C.17.2). Images of one patient read together from several studies have no
    such study: their merged Study Instance UID is ours, known to no archive.
    """
    if dicom and group_by == "patient":
        raise ValueError(
            "DICOM outputs need the images' own study, and a patient's images merged from "
            "several studies have none: drop --dicom (result.json and overlays are written) "
            "or group by study"
        )


def run_analyze(
    inputs: Sequence[Path],
    *,
    out_dir: Path,
    pipeline: Pipeline,
    console: Console | None = None,
    dicom: bool = False,
    sr_template: str = "tid1500",
    group_by: str = "study",
) -> AnalyzeSummary:
    """Analyse every study of ``inputs`` (files, folders, zips) into ``out_dir``; ``dicom`` adds
    the SR, Secondary Captures and presentation states of each study (before pixels are freed);
    ``sr_template`` (``tid1500`` or ``mammography-cad``) picks which SR that is; ``group_by``
    ``"patient"`` reads each patient's images as one study (:func:`mammocad.io.iter_studies`),
    for collections that give every view its own study.

    Raises:
        ValueError: ``dicom`` with ``group_by="patient"`` (see :func:`check_grouping`), or
            ``out_dir`` is or holds an input (:func:`check_output_apart`).
    """
    check_grouping(group_by, dicom=dicom)
    check_output_apart(inputs, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # an earlier run's summary describes folders this run replaces: until this run's is
    # written, none (a run cut short must not pass for the earlier one)
    (out_dir / "summary.json").unlink(missing_ok=True)
    staging = out_dir / STAGING_FOLDER
    shutil.rmtree(staging, ignore_errors=True)  # what a run cut short left half-written
    stream = iter_studies(list(inputs), group_by=group_by)
    summary = AnalyzeSummary(model=pipeline.model_info.to_dict())
    with batch_progress(console) as progress:
        task = progress.add_task("analyze", total=len(stream) + len(stream.unassigned))
        for study in stream:
            listed, studies = len(summary.inputs), len(summary.studies)
            summary.count_split_patient(study)
            folder = out_dir / safe_name(study.study_instance_uid)
            if not _is_output_folder(folder):  # only a folder of ours is ever replaced
                text = (
                    f"{folder} holds files mammocad did not write, which it leaves alone, so "
                    "this study was not analysed: move those files away or analyze into an "
                    "empty --out folder, and run the same command again"
                )
                conflict = RejectionCode.OUTPUT_CONFLICT
                record_unwritten_study(study, summary, code=conflict, text=text)
                release_pixels(study)
                progress.advance(task)
                continue
            try:
                analysis = pipeline.analyze(study)
                with _stop_when_unwritable(folder):
                    write_study_outputs(
                        analysis, staging, summary, dicom=dicom, sr_template=sr_template
                    )
                    _replace_folder(staging / folder.name, folder)
            except AnalyzeStorageError:
                shutil.rmtree(staging, ignore_errors=True)  # give back the room
                raise
            except Exception as error:  # a bug must cost one study, not the batch
                del summary.inputs[listed:], summary.studies[studies:]
                record_failed_study(study, error, summary)
                # neither this run's partial outputs nor an earlier run's result.json and
                # overlays may stand for a study this run failed on
                shutil.rmtree(staging / folder.name, ignore_errors=True)
                shutil.rmtree(folder, ignore_errors=True)
            release_pixels(study)
            progress.advance(task)
        for image in stream.unassigned:
            summary.inputs.append(input_entry(image, result=None, overlay=None))
            progress.advance(task)
    shutil.rmtree(staging, ignore_errors=True)
    text = json.dumps(summary.to_dict(), indent=2) + "\n"
    with _stop_when_unwritable(out_dir / "summary.json"):
        (out_dir / "summary.json").write_text(text, encoding="utf-8")
    return summary


@contextmanager
def _stop_when_unwritable(where: Path) -> Iterator[None]:
    """A full or read-only disk, or a folder that cannot be written, under ``where`` stops
    the run with what to do."""
    try:
        yield
    except OSError as error:
        if error.errno not in UNWRITABLE:
            raise
        raise AnalyzeStorageError(
            f"could not write {error.filename or where} ({error.strerror or error}): free "
            "some space there or make it writable (close any program that has its files "
            "open), or name another --out, and run the same command again; each study folder "
            "not yet replaced keeps its earlier result"
        ) from error


def _replace_folder(staged: Path, folder: Path) -> None:
    """Put a study's complete outputs in place of its folder: whatever an earlier run left
    there (an overlay of an image this run rejected, a dicom/ folder written without --dicom
    now) goes with it. The earlier folder is moved aside whole before it is removed: one that
    cannot be (a file open in a viewer on Windows) stays as it was, not half removed."""
    aside = Path(tempfile.mkdtemp(dir=staged.parent)) / folder.name
    with suppress(FileNotFoundError):  # none: a study new to this DIR
        folder.replace(aside)
    try:
        staged.replace(folder)
    except OSError:
        with suppress(FileNotFoundError):
            aside.replace(folder)  # the earlier result back in its place
        raise
    shutil.rmtree(aside.parent, ignore_errors=True)


def print_summary(summary: AnalyzeSummary, *, out_dir: Path, console: Console) -> None:
    """One line per study, one per rejected input, then the totals."""
    for study in summary.studies:
        probability = study["malignancy_probability"]
        shown = "—" if probability is None else f"{probability:.2f}"
        console.print(
            f"{escape(study['study_instance_uid'])}: {study['status']}, "
            f"malignancy {shown} ({study['suspicion'] or 'no reading'})"
        )
    for entry in summary.inputs:
        if entry["status"] == "rejected":
            console.print(
                f"  [yellow]{escape(str(entry['source']))}[/yellow]: {entry['rejection_code']} — "
                f"{escape(str(entry['text']))}"
            )
    if hint := summary.split_patient_hint():
        console.print(hint, markup=False)
    if hint := summary.no_inputs_hint():
        console.print(hint, style="yellow", markup=False)
    console.print(
        f"{len(summary.studies)} studies; {summary.processed} images processed, "
        f"{summary.rejected} rejected; results in [bold]{escape(str(out_dir))}[/bold] "
        "(summary.json lists every input)"
    )
