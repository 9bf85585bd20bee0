"""The web UI: plain HTML, CSS and JavaScript modules served by the API, no front-end build.

:func:`mount_ui` adds ``GET /`` (the single page) and ``/ui/static/*`` (its assets) to a
FastAPI app. The page talks only to the public REST API (``/api/v1``) with the API key the
reader types in, so everything it shows is something the API gives any client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

#: the page and its assets, shipped as package data
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: URL prefix of the assets (index.html refers to them with it)
STATIC_PREFIX = "/ui/static"

# The page is small and changes with each release: revalidate instead of caching stale code.
_NO_STALE = {"Cache-Control": "no-cache"}


def mount_ui(app: FastAPI) -> None:
    """Serve the UI page at ``/`` (and ``/ui``), its assets under ``/ui/static/`` and the
    viewer's display pictures under ``/ui/pictures/`` (:mod:`mammocad.web.routes`).

    Raises ``FileNotFoundError`` when the package was installed without its static files
    (``web/static/*`` in the package data), so a broken install fails at start, not per request.
    """
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise FileNotFoundError(
            f"web UI files missing at {STATIC_DIR}: reinstall mammocad with its package data"
        )

    def page() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=_NO_STALE)

    for path in ("/", "/ui", "/ui/"):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    # imported here: the routes use the service (serve, store), which imports this package
    from mammocad.web.routes import router

    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="ui-static")


__all__ = ["STATIC_DIR", "STATIC_PREFIX", "mount_ui"]
