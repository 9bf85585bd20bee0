"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served from
files installed with the package.

FastAPI's own pages load their JavaScript and CSS from a CDN (and ReDoc its fonts from
Google): blank in a hospital without internet. The package ``fastapi-offline`` (MIT) ships
builds of Swagger UI 5 (Apache-2.0) and ReDoc 2 (MIT) and nothing else we would load; its
files are served under :data:`DOCS_ASSETS` and the pages are FastAPI's, pointed at them. The
service uses API keys, not OAuth2, so Swagger UI's OAuth2 redirect page is not served.

Each page brings its own Content-Security-Policy (:mod:`mammocad.serve.headers` keeps it):
Swagger UI's inline start-up script is allowed by its hash, not by ``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from mammocad.serve.headers import CSP

#: URL prefix of the Swagger UI and ReDoc files
DOCS_ASSETS = "/docs-assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# Swagger UI (checked in Chromium): its CSS draws icons as data: images, and "Try it out"
# shows a picture the API answers as a blob: image; its components set styles through the
# DOM, which CSP does not block, so no 'unsafe-inline' style is needed.
_SWAGGER_POLICY = (
    "default-src 'none'; script-src 'self' {scripts}; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# ReDoc: styled-components writes <style> elements at run time ('unsafe-inline' is the only
# way to allow them: without it nothing renders), icons are data: images and the search
# runs in a worker made from a blob: URL. Redocly's logo from its CDN stays blocked.
_REDOC_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _assets() -> Path:
    """The folder of Swagger UI's and ReDoc's files in the installed fastapi-offline."""
    return Path(str(files("fastapi_offline") / "static"))


def _script_hashes(html: str) -> str:
    """CSP sources allowing exactly the page's inline scripts (CSP 3 hash sources)."""
    return " ".join(
        "'sha256-{}'".format(
            base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        )
        for body in _INLINE_SCRIPT.findall(html)
    )


def mount_docs(app: FastAPI, *, openapi_url: str) -> None:
    """``GET /docs``, ``GET /redoc`` and their files under :data:`DOCS_ASSETS`; ``app`` must be
    made with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_assets()), name="docs-assets")

    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            # the default validator badge sends the spec to validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        html = bytes(page.body).decode("utf-8")
        page.headers[CSP] = _SWAGGER_POLICY.format(scripts=_script_hashes(html))
        return page

    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers[CSP] = _REDOC_POLICY
        return page

    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
