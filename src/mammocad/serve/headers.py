"""Security and caching headers on every response: API, web UI, pictures and errors.

One ASGI middleware (outside every route and the body limit) adds:

* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a Content-Security-Policy
  with ``frame-ancestors 'none'``: no browser guesses a type or frames a page (clickjacking);
* ``Referrer-Policy: no-referrer``: a picture URL may carry ``?key=``, which a referrer would
  hand to whatever the page links to;
* ``Cache-Control: no-store`` on everything but the paths said to be cacheable (the UI's page
  and assets, the docs' assets): results, pictures and DICOM objects are patient data, which
  must sit in no shared or browser cache ("private" still lets the browser keep them on disk).

The Content-Security-Policy is the one a route set itself (the docs pages, whose inline
start-up script is allowed by its hash), else :data:`PAGE_POLICY` for HTML (the web UI) and
:data:`API_POLICY` for everything else.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "Content-Security-Policy"
#: JSON, pictures, zips, errors are no documents: nothing may run in or frame them (an SVG
#: or a mis-typed body opened in a tab runs no script)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: the web UI (static/index.html and its modules): scripts, styles and the favicon come from
#: the service itself, no inline script, style or attribute (the modules build the DOM with
#: classes and set no style attribute; pictures are fetched and drawn on canvases, so no
#: data: or blob: image); form-action 'none' as the key form is handled by script only, and a
#: broken script must not submit the key in a URL
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: on every response, whatever the route set
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: a response that must not be cached, e.g. the 500 answered outside the middleware (the
#: exception handler of ``Exception`` runs in Starlette's outermost middleware)
ERROR_HEADERS = {**ALWAYS, CSP: API_POLICY, "Cache-Control": "no-store"}


class SecurityHeadersMiddleware:
    """Adds the headers above to each HTTP response. Responses at ``cacheable_paths`` (exact)
    or under ``cacheable_prefixes`` keep their own ``Cache-Control``; any other is
    ``no-store``, whatever its route said. Two lists, not one with trailing slashes: the UI
    page ``/ui/`` is no prefix, its pictures under ``/ui/pictures/`` are patient data."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cacheable_paths: Iterable[str] = (),
        cacheable_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._paths = frozenset(cacheable_paths)
        self._prefixes = tuple(cacheable_prefixes)

    def _cacheable(self, path: str) -> bool:
        return path in self._paths or path.startswith(self._prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        keep_cache = self._cacheable(scope["path"])

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers[name] = value
                if CSP not in headers:
                    html = headers.get("content-type", "").startswith("text/html")
                    headers[CSP] = PAGE_POLICY if html else API_POLICY
                if not keep_cache:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_secured)
