"""The Content-Security-Policy in a real browser: Swagger UI (``/docs``), ReDoc (``/redoc``)
and the web UI render under the service's headers, with no request leaving the service and
no CSP violation. Headless Chromium (Debian's, through Playwright; nothing is downloaded),
skipped where either is missing."""

from __future__ import annotations

from typing import Any

from .conftest import Service

# collects the page's CSP violations before any of its scripts runs
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
REDOCLY_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_docs_and_ui_render_under_the_policy(browser: Any, service: Service) -> None:
    base, key = service.url, service.key
    outside: list[str] = []
    page: Any = browser.new_page()
    try:
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
        page.close()
    assert outside == []
