"""The FastAPI app: ``create_app(settings)``; start-up migrates the database, loads the model
bundle once and starts the in-process workers."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mammocad import __version__
from mammocad.commands.analyze import resolve_model
from mammocad.jobs import JobRunner
from mammocad.pipeline import Pipeline
from mammocad.serve.auth import ACCESS_LOGGER, REDACT_QUERY_KEY
from mammocad.serve.docs import DOCS_ASSETS, mount_docs
from mammocad.serve.headers import ERROR_HEADERS, SecurityHeadersMiddleware
from mammocad.serve.intake import clear_stale_staging
from mammocad.serve.job_queue import build_job_queue, service_stages
from mammocad.serve.limits import BodyLimitMiddleware
from mammocad.serve.preload import preload as preload_studies
from mammocad.serve.routes_admin import api as admin_router
from mammocad.serve.routes_admin import health as health_router
from mammocad.serve.routes_dicomweb import router as dicomweb_router
from mammocad.serve.routes_studies import router as studies_router
from mammocad.serve.settings import Settings
from mammocad.serve.state import AppState
from mammocad.serve.uploads import UploadError
from mammocad.store.repository import register_model
from mammocad.store.session import (
    database_url,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)

logger = logging.getLogger(__name__)

OPENAPI_URL = "/openapi.json"
# what may be cached: no patient data, only the web UI's page (it sets `no-cache` itself) and
# the files of the UI and the docs; paths as mammocad.web.mount_ui serves them
_UI_PAGES = ("/", "/ui", "/ui/")
_CACHEABLE_PREFIXES = ("/ui/static/", f"{DOCS_ASSETS}/")

DESCRIPTION = """\
Mammography CAD (research use only, not for primary diagnosis).

**Authentication.** Every route except `/health/*` needs an API key (create one with
`mammocad apikey create --name NAME`), sent as `Authorization: Bearer <key>`. The picture
routes (`.../overlay.png`, `.../input.png`) also accept the key as the query parameter
`?key=<key>`, because an `<img src>` cannot send headers; such URLs end up in browser history
and proxy logs, so use them only over HTTPS and with keys you can revoke. A missing or unknown
key is answered 401 (with `WWW-Authenticate: Bearer`), a revoked key 403.

**Flow.** `POST /api/v1/studies` (multipart field `files`: DICOM files or one zip) answers 202
with a job id and a `Location` to poll; the job answers with the study result once its status
is `done`. The result is the result schema object (`schemas/result.schema.json`); boxes are in
the original pixel grid of each image. Errors are JSON `{"detail": ..., "code": ...}`.
"""


def _load_pipeline(settings: Settings) -> Pipeline:
    return Pipeline.from_bundle(
        resolve_model(settings.model), device=settings.device, num_threads=settings.threads
    )


def _mount_ui(app: FastAPI) -> None:
    try:
        from mammocad.web import mount_ui  # the web UI, when this install has it
    except ImportError:
        logger.info("no web UI (mammocad.web) installed: serving the API only")
        return
    mount_ui(app)


def create_app(
    settings: Settings,
    *,
    pipeline: Pipeline | None = None,
    start_workers: bool = True,
    preload: Sequence[Path] = (),
) -> FastAPI:
    """The API over ``settings``; ``pipeline`` replaces loading the bundle (tests, embedding);
    the studies under ``preload`` are queued at start-up (:mod:`mammocad.serve.preload`).

    Raises:
        UnsafeSettingsError: settings that would expose data outside development.
    """
    settings.check_safe()
    # picture URLs carry ``?key=``: never into the server's access log
    logging.getLogger(ACCESS_LOGGER).addFilter(REDACT_QUERY_KEY)
    url = database_url(data_dir=settings.data_dir, override=settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # what uploads left when a process died mid-way; only folders untouched for a day, as
        # other processes (workers, the DICOM node) may be writing theirs now
        clear_stale_staging(settings.data_dir)
        upgrade(url)
        engine = make_engine(url)
        state = AppState(settings=settings, engine=engine, sessions=session_factory(engine))
        app.state.mammocad = state
        state.pipeline = pipeline if pipeline is not None else _load_pipeline(settings)
        state.manifest = state.pipeline.detector.manifest.to_dict()
        with transaction(state.sessions) as session:
            state.model_version_id = register_model(session, state.manifest).id
        runner = JobRunner(
            sessions=state.sessions,
            data_dir=settings.data_dir,
            stages=service_stages(settings, state.pipeline),
            model_version_id=state.model_version_id,
        )
        state.workers = build_job_queue(settings, state.sessions, lambda: runner)
        if start_workers:
            state.workers.start()
        if preload:
            preload_studies(state, preload)
        try:
            yield
        finally:
            state.workers.stop()
            engine.dispose()

    app = FastAPI(
        title="mammocad",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={401: {"description": "Missing or invalid API key"}},
        openapi_url=OPENAPI_URL,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN: mount_docs serves them locally
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    # added last, so outermost: its headers are on the body limit's 413 too
    app.add_middleware(
        SecurityHeadersMiddleware,
        cacheable_paths=_UI_PAGES,
        cacheable_prefixes=_CACHEABLE_PREFIXES,
    )
    mount_docs(app, openapi_url=OPENAPI_URL)
    app.include_router(studies_router)
    app.include_router(dicomweb_router)
    app.include_router(admin_router)
    app.include_router(health_router)
    app.add_exception_handler(UploadError, _upload_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    _mount_ui(app)
    return app


async def _upload_error(_request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, UploadError):  # registered for UploadError only
        raise error
    return JSONResponse({"detail": error.message, "code": error.code}, error.status_code)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as strings: JSON has no such numbers, but a request's
    1e999 or NaN reads as one, and FastAPI echoes the input in its 422."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, RequestValidationError):  # registered for it only
        raise error
    body = {"detail": _json_safe(jsonable_encoder(error.errors()))}
    return JSONResponse(body, 422)


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=error)
    return JSONResponse(
        {"detail": "internal error: see the service log", "code": "internal_error"},
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        # Starlette answers this handler outside every middleware: the headers come with it
        headers=ERROR_HEADERS,
    )
