"""Jobs, the model in use, and health probes (the probes need no key)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import select, text

from mammocad.serve.auth import Authenticated
from mammocad.serve.schemas import ErrorBody, Health, JobId, JobOut, ModelsOut
from mammocad.serve.state import app_state
from mammocad.serve.views import job_out
from mammocad.store.keys import audit
from mammocad.store.models import JobStatus, ModelVersion
from mammocad.store.repository import get_job
from mammocad.store.session import transaction

api = APIRouter(prefix="/api/v1", tags=["jobs and models"])
health = APIRouter(prefix="/health", tags=["health"])


@api.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorBody, "description": "No such job"}},
    summary="A job: status and stage while it runs, the study result once done",
)
def read_job(job_id: JobId, request: Request, principal: Authenticated) -> JobOut:
    with transaction(app_state(request).sessions) as session:
        job = get_job(session, job_id)
        if job is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"no job {job_id}: it never existed or its study was deleted",
            )
        body = job_out(job)
        if job.status == JobStatus.DONE.value:
            audit(
                session,
                actor=principal.name,
                action="read",
                study_instance_uid=body.study_instance_uid,
                detail=f"result via job {job_id}",
            )
    return body


@api.get("/models", response_model=ModelsOut, summary="The model bundle in use (its manifest)")
def read_models(request: Request, principal: Authenticated) -> ModelsOut:
    state = app_state(request)
    with transaction(state.sessions) as session:
        rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id))
        known = [{"name": row.name, "version": row.version, "sha256": row.sha256} for row in rows]
    return ModelsOut(loaded=state.manifest, known=known)


@health.get("/live", response_model=Health, summary="The process answers")
def live() -> Health:
    return Health(status="ok")


@health.get(
    "/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready: see checks"}},
    summary="Database reachable, model loaded, workers running",
)
def ready(request: Request) -> Health | JSONResponse:
    state = app_state(request)
    checks: dict[str, str] = {}
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable ({type(error).__name__})"
    checks["model"] = "ok" if state.pipeline is not None else "not loaded"
    workers = state.workers
    checks["workers"] = "ok" if workers is not None and workers.alive else "not running"
    if all(value == "ok" for value in checks.values()):
        return Health(status="ok", checks=checks)
    body = Health(status="unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
