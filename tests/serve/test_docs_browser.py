"""The Content-Security-Policy in a real browser: Swagger UI (``/docs``), ReDoc (``/redoc``)
and the web UI render under the service's headers, with no request leaving the service and
no CSP violation. Headless Chromium (Debian's, through Playwright; nothing is downloaded),
skipped where either is missing."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mammocad.pipeline import Pipeline
from mammocad.serve import create_app

from .conftest import make_key, settings_for

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

# collects the page's CSP violations before any of its scripts runs
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
REDOCLY_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"


def _chromium() -> str:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture
def service(tmp_path: Path, pipeline: Pipeline, database: str | None) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of the real service in a thread, workers off."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(tmp_path / "data", database, host="127.0.0.1", port=port)
    key = make_key(settings)
    app = create_app(settings, pipeline=pipeline, start_workers=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-csp-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_docs_and_ui_render_under_the_policy(service: tuple[str, str]) -> None:
    base, key = service
    outside: list[str] = []
    with playwright_sync.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=_chromium(), headless=True, args=["--no-sandbox"]
        )
        try:
            page: Any = browser.new_page()
            page.add_init_script(RECORD_VIOLATIONS)
            # a response: the request left the browser (one the policy blocks has none)
            page.on(
                "response",
                lambda response: (
                    None
                    if response.url.startswith((base, "data:", "blob:"))
                    else outside.append(response.url)
                ),
            )

            page.goto(f"{base}/docs")
            # Swagger UI drew the operations from /openapi.json, and opened one
            page.locator(".opblock-summary").first.wait_for(timeout=30_000)
            page.locator(".opblock-summary").first.click()
            page.locator(".opblock-body").first.wait_for(timeout=10_000)
            assert page.evaluate("window.__violations") == [], "/docs"

            page.goto(f"{base}/redoc")
            page.locator("h2", has_text="Delete a study").first.wait_for(timeout=30_000)
            # the search runs in ReDoc's worker (blob:): it finds an operation
            page.locator("input[placeholder='Search...']").fill("feedback")
            page.locator("[data-role='search:results'] li").first.wait_for(timeout=10_000)
            # ReDoc's sidebar shows Redocly's logo from its CDN: the policy blocks it (no
            # request leaves), the rest of the page needs nothing from outside
            blocked = page.evaluate("window.__violations")
            assert blocked in ([], [REDOCLY_LOGO]), "/redoc"

            page.goto(f"{base}/")
            page.fill("#api-key", key)
            page.click("#login-save")
            page.locator("#worklist-empty").wait_for(timeout=15_000)
            assert page.evaluate("window.__violations") == [], "/"
        finally:
            browser.close()
    assert outside == []
