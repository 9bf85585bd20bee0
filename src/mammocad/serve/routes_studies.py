"""``/api/v1/studies``: upload, worklist, result, pictures, DICOM results, feedback, delete."""

from __future__ import annotations

import io
import logging
import shutil
import time
import zipfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from mammocad.commands.analyze import safe_name
from mammocad.jobs.stages import DICOM_FOLDER, dicom_objects
from mammocad.serve.auth import Authenticated, AuthenticatedPicture
from mammocad.serve.intake import accept
from mammocad.serve.schemas import (
    ErrorBody,
    FeedbackIn,
    FeedbackOut,
    StudyDetail,
    StudyList,
    Uid,
    UploadAccepted,
)
from mammocad.serve.state import app_state
from mammocad.serve.uploads import Incoming
from mammocad.serve.views import study_detail, study_summary
from mammocad.store.keys import audit
from mammocad.store.models import JobStatus, Study, StudyState
from mammocad.store.repository import add_feedback, get_study, list_studies, touch
from mammocad.store.session import transaction

logger = logging.getLogger(__name__)
#: the same worklist page listed again by a key within this many seconds is not audited again
WORKLIST_AUDIT_REPEAT_S = 3600.0

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such study"}
}


class Picture(StrEnum):
    OVERLAY = "overlay"
    INPUT = "input"


def _study_or_404(session: Session, study_instance_uid: str) -> Study:
    study = get_study(session, study_instance_uid)
    if study is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no study {study_instance_uid}: list the studies with GET /api/v1/studies",
        )
    return study


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadAccepted,
    responses={
        200: {"model": UploadAccepted, "description": "Nothing new: the study's latest job"},
        400: {"model": ErrorBody, "description": "Not DICOM, bad zip, several studies"},
        413: {"model": ErrorBody, "description": "Too large or too many files"},
        503: {"model": ErrorBody, "description": "The job queue (broker) is unreachable"},
    },
    summary="Upload one study (DICOM files or one zip) and queue its analysis",
)
def upload_study(
    request: Request,
    response: Response,
    principal: Authenticated,
    files: Annotated[list[UploadFile], File(description="DICOM files of one study, or one zip")],
) -> UploadAccepted:
    """Answers at once with the job to poll (``Location``); the job's answer carries the
    result once done. Instances the study already has are not stored again."""
    state = app_state(request)
    incoming = [Incoming(name=part.filename or "", stream=part.file) for part in files]
    intake = accept(state, incoming, actor=principal.name)
    response.headers["Location"] = intake.body.location
    # 200: nothing new; new images of a study whose job has not started are that job's (202)
    if not intake.queued and intake.body.new_instances == 0:
        response.status_code = status.HTTP_200_OK
    return intake.body


@router.get("", response_model=StudyList, summary="Worklist: studies, newest first")
def list_worklist(
    request: Request,
    principal: Authenticated,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    state: Annotated[StudyState | None, Query(alias="status")] = None,
) -> StudyList:
    with transaction(app_state(request).sessions) as session:
        rows, total = list_studies(
            session, limit=limit, offset=offset, state=state.value if state else None
        )
        items = [study_summary(study) for study in rows]
        detail = "worklist: " + " ".join(study.study_instance_uid for study in rows)
        # the rows show patient IDs and accession numbers: a read of each study, audited
        # once per page a key sees, again after WORKLIST_AUDIT_REPEAT_S
        seen = app_state(request).listed.get(principal.name)
        now = time.monotonic()
        if rows and (seen is None or seen[0] != detail or now - seen[1] > WORKLIST_AUDIT_REPEAT_S):
            audit(
                session,
                actor=principal.name,
                action="list",
                study_instance_uid=None,
                detail=detail,
            )
            app_state(request).listed[principal.name] = (detail, now)
    return StudyList(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{study_instance_uid}",
    response_model=StudyDetail,
    responses=NOT_FOUND,
    summary="A study: status, images, latest job and (once done) the result",
)
def read_study(study_instance_uid: Uid, request: Request, principal: Authenticated) -> StudyDetail:
    with transaction(app_state(request).sessions) as session:
        study = _study_or_404(session, study_instance_uid)
        audit(session, actor=principal.name, action="read", study_instance_uid=study_instance_uid)
        return study_detail(study)


@router.get(
    "/{study_instance_uid}/images/{sop_instance_uid}/{picture}.png",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "The picture"},
        404: {"model": ErrorBody, "description": "No such study, image or picture (yet)"},
    },
    summary="overlay.png (findings drawn on the image) or input.png (the model's input)",
)
def read_picture(
    study_instance_uid: Uid,
    sop_instance_uid: Uid,
    picture: Picture,
    request: Request,
    principal: AuthenticatedPicture,
) -> FileResponse:
    """Takes the API key as ``Authorization: Bearer`` or as ``?key=`` (for ``<img src>``)."""
    state = app_state(request)
    with transaction(state.sessions) as session:
        study = _study_or_404(session, study_instance_uid)
        image = next((i for i in study.images if i.sop_instance_uid == sop_instance_uid), None)
        if image is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"study {study_instance_uid} has no image {sop_instance_uid}",
            )
        relative = image.overlay if picture is Picture.OVERLAY else image.input_picture
        audit(
            session,
            actor=principal.name,
            action="read",
            study_instance_uid=study_instance_uid,
            detail=f"{picture.value}.png of {sop_instance_uid}",
        )
    path = state.settings.data_dir / relative if relative else None
    if path is None or not path.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no {picture.value}.png for this image: it is drawn once the analysis is done "
            "and the image was processed",
        )
    return FileResponse(path, media_type="image/png")  # no-store: serve.headers


@router.get(
    "/{study_instance_uid}/dicom",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "sr.dcm, sc/*.dcm, gsps/*.dcm"},
        404: {"model": ErrorBody, "description": "No such study, or no DICOM results (yet)"},
        409: {"model": ErrorBody, "description": "The results are being rewritten"},
    },
    summary="The study's DICOM results (SR, Secondary Captures, GSPS) as one zip",
)
def read_dicom_results(
    study_instance_uid: Uid, request: Request, principal: Authenticated
) -> Response:
    """The objects the report stage wrote, named as in ``mammocad analyze --dicom``:
    ``sr.dcm``, ``sc/<SOPInstanceUID>.dcm``, ``gsps/<SOPInstanceUID>.dcm``."""
    state = app_state(request)
    with transaction(state.sessions) as session:
        study = _study_or_404(session, study_instance_uid)
        folder = state.settings.data_dir / study.folder
        audit(
            session,
            actor=principal.name,
            action="read",
            study_instance_uid=study_instance_uid,
            detail="DICOM results (zip)",
        )
    paths = dicom_objects(folder)
    if not paths:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"study {study_instance_uid} has no DICOM results: they are written once its "
            "analysis is done, for its processed DICOM images, when the service runs with "
            "MAMMOCAD_DICOM_OUTPUTS=true",
        )
    name = f"{safe_name(study_instance_uid)}-dicom.zip"
    return Response(
        _zip(paths, folder),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
        },  # Cache-Control no-store: mammocad.serve.headers
    )


def _zip(paths: list[Path], folder: Path) -> bytes:
    """The objects under their names relative to the study's ``dicom/`` folder, built in
    memory (a study's objects are a few MB; the fastest deflate level is enough for the
    overlays' dark background)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in paths:
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # a new analysis is replacing them right now
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    "the study's DICOM results are being rewritten by a new analysis: "
                    "try again once its job is done",
                ) from None
            archive.writestr(path.relative_to(folder / DICOM_FOLDER).as_posix(), data)
    return buffer.getvalue()


@router.delete(
    "/{study_instance_uid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "Analysis running"}},
    summary="Delete a study: its rows, uploads, results and pictures",
)
def delete_study(study_instance_uid: Uid, request: Request, principal: Authenticated) -> Response:
    state = app_state(request)
    with transaction(state.sessions) as session:
        study = _study_or_404(session, study_instance_uid)
        # a study queued again while an earlier job still runs is 'queued': that job would
        # write its pictures and DICOM objects into the deleted folder
        running = any(job.status == JobStatus.RUNNING.value for job in study.jobs)
        if running or study.state == StudyState.PROCESSING.value:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "the study is being analysed: delete it once its job is done or failed",
            )
        folder = state.settings.data_dir / study.folder
        session.delete(study)
        audit(session, actor=principal.name, action="delete", study_instance_uid=study_instance_uid)
    _remove_folder(folder, state.settings.data_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _remove_folder(folder: Path, data_dir: Path) -> None:
    # the folder comes from our own row, but never delete outside the data dir
    if folder.resolve().is_relative_to(data_dir.resolve()) and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


@router.post(
    "/{study_instance_uid}/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackOut,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "No result yet"},
        422: {"model": ErrorBody, "description": "Unknown finding id or invalid body"},
    },
    summary="A reader agrees or disagrees with the study and/or its findings",
)
def post_feedback(
    study_instance_uid: Uid, body: FeedbackIn, request: Request, principal: Authenticated
) -> FeedbackOut:
    with transaction(app_state(request).sessions) as session:
        study = _study_or_404(session, study_instance_uid)
        if study.result is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, "the study has no result yet: poll it until it is done"
            )
        known = {finding.finding_id for finding in study.findings}
        unknown = sorted({f.finding_id for f in body.findings} - known)
        if unknown:
            raise HTTPException(
                422,
                f"unknown finding id(s) {', '.join(unknown)}: use the ids in the result",
            )
        _check_boxes(study, body)
        count = _record_feedback(session, study, body, api_key_name=principal.name)
        touch(study)
        audit(
            session,
            actor=principal.name,
            action="feedback",
            study_instance_uid=study_instance_uid,
            detail=f"{count} verdict(s) by reader {body.reader_id}",
        )
    return FeedbackOut(study_instance_uid=study_instance_uid, recorded=count)


def _check_boxes(study: Study, body: FeedbackIn) -> None:
    """422 for a corrected box outside its finding's image (ORIGINAL pixels)."""
    images = {finding.finding_id: finding.sop_instance_uid for finding in study.findings}
    document = study.result.document if study.result is not None else {}
    sizes = {
        str(entry.get("sop_instance_uid")): (entry.get("columns"), entry.get("rows"))
        for entry in document.get("images", [])
    }
    for item in body.findings:
        if item.corrected_box is None:
            continue
        columns, rows = sizes.get(images[item.finding_id], (None, None))
        if not isinstance(columns, int) or not isinstance(rows, int):
            continue
        x2, y2 = item.corrected_box[2], item.corrected_box[3]
        if x2 > columns or y2 > rows:
            raise HTTPException(
                422,
                f"corrected_box of finding {item.finding_id} reaches beyond its image "
                f"({columns} columns, {rows} rows): give [x1, y1, x2, y2] in original pixels",
            )


def _record_feedback(session: Session, study: Study, body: FeedbackIn, *, api_key_name: str) -> int:
    """One feedback row per verdict; returns how many."""
    if body.study is not None:
        add_feedback(
            session,
            study,
            finding_id=None,
            agree=body.study.agree,
            corrected_label=body.study.corrected_label.value
            if body.study.corrected_label
            else None,
            comment=body.study.comment,
            reader_id=body.reader_id,
            api_key_name=api_key_name,
        )
    for item in body.findings:
        add_feedback(
            session,
            study,
            finding_id=item.finding_id,
            agree=item.agree,
            corrected_label=item.corrected_label.value if item.corrected_label else None,
            corrected_box=item.corrected_box,
            comment=item.comment,
            reader_id=body.reader_id,
            api_key_name=api_key_name,
        )
    return len(body.findings) + (body.study is not None)
