"""The one route the viewer needs beyond the public API: the clean display picture.

``GET /ui/pictures/{study}/{sop}/display.png`` takes the API key as the picture routes of the
API do (``Authorization: Bearer`` or ``?key=``) and answers 404 for an unknown study or image
and for an image that cannot be rendered (a rejected file).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from mammocad.jobs.stages import INPUT_FOLDER
from mammocad.serve.auth import AuthenticatedPicture, Principal
from mammocad.serve.schemas import Uid
from mammocad.serve.state import app_state
from mammocad.store.keys import audit
from mammocad.store.repository import get_study
from mammocad.store.session import transaction
from mammocad.web.pictures import cached_display, display_path

router = APIRouter(prefix="/ui/pictures", include_in_schema=False)


def _locate(
    request: Request, principal: Principal, study_instance_uid: str, sop_instance_uid: str
) -> tuple[Path, Path]:
    """(uploaded file, display picture path) of an image, its read audited as the API's
    pictures are; 404 when the database has none."""
    state = app_state(request)
    with transaction(state.sessions) as session:
        study = get_study(session, study_instance_uid)
        image = None
        if study is not None:
            image = next((i for i in study.images if i.sop_instance_uid == sop_instance_uid), None)
        if study is None or image is None:
            raise HTTPException(
                status_code=status.HTTP_404_NOT_FOUND,
                detail=f"no image {sop_instance_uid} in study {study_instance_uid}",
            )
        audit(
            session,
            actor=principal.name,
            action="read",
            study_instance_uid=study_instance_uid,
            detail=f"display.png of {sop_instance_uid}",
        )
        study_dir = state.settings.data_dir / study.folder
        return study_dir / INPUT_FOLDER / image.file_name, display_path(study_dir, sop_instance_uid)


@router.get("/{study_instance_uid}/{sop_instance_uid}/display.png")
async def display_picture(
    request: Request,
    study_instance_uid: Uid,
    sop_instance_uid: Uid,
    principal: AuthenticatedPicture,
) -> FileResponse:
    """The stored image as 8-bit grey PNG on the ORIGINAL grid (long side ≤ 2048)."""
    source, target = _locate(request, principal, study_instance_uid, sop_instance_uid)
    picture = await run_in_threadpool(cached_display, source, target)
    if picture is None:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"image {sop_instance_uid} has no picture: it was rejected or is gone",
        )
    return FileResponse(picture, media_type="image/png")  # no-store: serve.headers
