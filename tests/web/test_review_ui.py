"""Web UI review: what a radiologist met using the page, each checked in headless Chromium.

The page is served by the real service (``create_app``, API keys on, no analysis workers);
worklist pages and study results the browser should show are handed over by Playwright's
request routing where a real one would take minutes of analysis to produce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import Service

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

VIEWPORT = {"width": 1440, "height": 900}
WORKLIST = re.compile(r".*/api/v1/studies(\?.*)?$")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any uncaught script error."""
    opened = browser.new_page(viewport=VIEWPORT)
    opened.set_default_timeout(10_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        opened.close()
    assert errors == []


def _logged_in(page: Any, service: Service) -> None:
    page.add_init_script(f"localStorage.setItem('mammocad.apiKey', {json.dumps(service.key)})")


def _row(index: int) -> dict[str, Any]:
    uid = f"1.2.826.0.1.3680043.8.498.{1000 + index}"
    return {
        "study_instance_uid": uid,
        "patient_id": f"MassTestP{index:05d}RIGHTCCWITHALONGID",
        "accession_number": f"A{index:09d}",
        "study_date": "20250101",
        "study_time": "093000",
        "created_at": "2026-01-01T09:00:00Z",
        "updated_at": "2026-01-01T09:00:00Z",
        "status": "done",
        "result_status": "complete",
        "malignancy_probability": 0.12,
        "suspicion": "low",
        "image_count": 4,
        "url": f"/api/v1/studies/{uid}",
    }


def _serve_worklist(page: Any, total: int, *, needs_key: str | None = None) -> list[str]:
    """Answer the worklist as the API does (limit/offset, default 50) from ``total`` rows;
    with ``needs_key``, 401 unless the request carries it. Returns the URLs asked for."""
    rows = [_row(index) for index in range(total)]
    asked: list[str] = []

    def answer(route: Any) -> None:
        request = route.request
        if request.method != "GET":
            route.fallback()
            return
        asked.append(request.url)
        if needs_key and request.headers.get("authorization") != f"Bearer {needs_key}":
            route.fulfill(status=401, json={"detail": "missing API key", "code": "unauthorized"})
            return
        query = parse_qs(urlparse(request.url).query)
        limit = int(query.get("limit", ["50"])[0])
        offset = int(query.get("offset", ["0"])[0])
        items = rows[offset : offset + limit]
        route.fulfill(json={"items": items, "total": total, "limit": limit, "offset": offset})

    page.route(WORKLIST, answer)
    return asked


def _serve_rows(page: Any, rows: list[dict[str, Any]]) -> None:
    """Answer the worklist with ``rows`` (one page)."""

    def answer(route: Any) -> None:
        if route.request.method != "GET":
            route.fallback()
            return
        route.fulfill(json={"items": rows, "total": len(rows), "limit": 50, "offset": 0})

    page.route(WORKLIST, answer)


def test_a_rejected_image_is_named_by_its_view_not_by_a_path_on_the_server(
    page: Any, service: Service
) -> None:
    """The message of a rejected image said ``/srv/…/input/<sop>.dcm: rejected (no_tissue)``:
    a path on the server (``source`` of the result), meaningless to the reader and too long
    for the panel. It names the view and says why, with the quality issue's sentence."""
    page.goto(service.url + "/")
    listed = page.evaluate(
        """async () => {
            const { StudyPage } = await import("/ui/static/js/study.js");
            const path = "/srv/mammocad/studies/1.2.3/input/1.2.3.4.dcm";
            new StudyPage().fillMessages({ messages: [], images: [
                { sop_instance_uid: "1.2.3.4", source: path, laterality: "L", view: "CC",
                  status: "rejected", rejection_code: "no_tissue",
                  quality: { score: 0, acceptable: false, issues: [
                    { code: "no_tissue", severity: "error", text: "No breast tissue found." }] } },
                { sop_instance_uid: "1.2.3.5", source: path, laterality: "R", view: "CC",
                  status: "processed", quality: { issues: [] } }] });
            const list = document.querySelector("#message-list");
            return [...list.querySelectorAll("li")].map((li) => li.textContent);
        }"""
    )
    assert listed == ["error LCC image rejected (no_tissue): No breast tissue found."], listed


def test_a_refused_feedback_names_the_field_that_is_wrong(page: Any, service: Service) -> None:
    """A comment over the API's 2000 characters answered "not sent: Value should have at most
    2000 items after validation, not 2001", which does not say what to shorten. The message
    names the field (FastAPI's ``loc``), and the comment box stops at 2000 characters."""
    _logged_in(page, service)
    page.goto(service.url + "/")
    message = page.evaluate(
        """async () => {
            const { request, routes } = await import("/ui/static/js/api.js");
            const body = { reader_id: "r1", study: { agree: true, comment: "x".repeat(2001) } };
            try {
                await request(routes.feedback("1.2.3"), { method: "POST", json: body });
                return "sent";
            } catch (error) {
                return `${error.status} ${error.message}`;
            }
        }"""
    )
    assert message.startswith("422 ") and "comment" in message, message
    assert page.get_attribute("#feedback-comment", "maxlength") == "2000"
    assert page.get_attribute("#reader-id", "maxlength") == "128"


def test_the_worklist_pages_through_more_studies_than_one_page(page: Any, service: Service) -> None:
    """The worklist asked for the API's first page only (50 studies): the 51st study and every
    older one could not be reached from the page. It pages with Older / Newer."""
    _logged_in(page, service)
    asked = _serve_worklist(page, 120)
    page.goto(service.url + "/")
    page.wait_for_selector("#worklist-body tr")
    page.wait_for_selector("#worklist-pager:not([hidden])", timeout=5_000)
    assert page.locator("#worklist-body tr").count() == 50
    assert page.inner_text("#worklist-range") == "1–50 of 120"
    assert page.is_disabled("#worklist-newer") and page.is_enabled("#worklist-older")
    page.click("#worklist-older")
    page.wait_for_selector("#worklist-body tr[data-uid$='.1050']")
    assert page.inner_text("#worklist-range") == "51–100 of 120"
    page.click("#worklist-older")
    page.wait_for_selector("#worklist-body tr[data-uid$='.1119']")
    assert page.locator("#worklist-body tr").count() == 20
    assert page.inner_text("#worklist-range") == "101–120 of 120"
    assert page.is_disabled("#worklist-older") and page.is_enabled("#worklist-newer")
    page.click("#worklist-newer")
    page.wait_for_selector("#worklist-body tr[data-uid$='.1050']")
    assert "offset=100" in asked[-2] and "offset=50" in asked[-1]


def test_one_page_of_studies_shows_no_pager(page: Any, service: Service) -> None:
    _logged_in(page, service)
    _serve_worklist(page, 3)
    page.goto(service.url + "/")
    page.wait_for_selector("#worklist-body tr")
    assert page.locator("#worklist-body tr").count() == 3
    assert not page.is_visible("#worklist-pager")


def test_a_narrow_window_scrolls_the_worklist_not_the_page(page: Any, service: Service) -> None:
    """At 600 px the table pushed the page to ~900 px: the top bar, upload box and footer
    stopped at 600 px and the Delete buttons lay off-screen. The table scrolls on its own."""
    _logged_in(page, service)
    _serve_worklist(page, 3)
    page.set_viewport_size({"width": 600, "height": 800})
    page.goto(service.url + "/")
    page.wait_for_selector("#worklist-body tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= 600
    delete = page.locator("#worklist-body tr").first.get_by_role("button")
    delete.scroll_into_view_if_needed()
    box = delete.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 600


def test_forgetting_the_key_takes_the_patients_off_the_screen(page: Any, service: Service) -> None:
    """After "Forget" (a reader leaving the workstation) the worklist kept showing every
    patient of the last key, refreshed or not. Without a key it shows none."""
    _logged_in(page, service)
    _serve_worklist(page, 3, needs_key=service.key)
    page.goto(service.url + "/")
    page.wait_for_selector("#worklist-body tr")
    page.click("#login-clear")
    page.wait_for_selector("#login-form.needed")
    page.wait_for_function("document.querySelectorAll('#worklist-body tr').length === 0")
    assert "RIGHTCCWITHALONGID" not in page.inner_text("main")


def test_the_model_is_named_without_a_key_when_the_service_needs_none(
    page: Any, service: Service
) -> None:
    """With ``MAMMOCAD_REQUIRE_API_KEY=false`` (the README's demo) the footer never named the
    model: the page asked for it only when a key was saved."""
    manifest = {"loaded": {"name": "mammocad-detector", "version": "0.5.2"}, "seen": []}
    page.route("**/api/v1/models", lambda route: route.fulfill(json=manifest))
    page.goto(service.url + "/")
    page.wait_for_function(
        "document.querySelector('#model-info').textContent.includes('mammocad-detector')"
    )
    assert page.inner_text("#model-info") == "model: mammocad-detector 0.5.2"


def test_a_label_at_the_centre_line_keeps_its_probability_in_view(
    page: Any, service: Service
) -> None:
    """On a right image the chest wall meets the slot's right edge: a box there had its label
    start at the box and run past the edge, cutting off the probability ("mass 0.")."""
    page.goto(service.url + "/")
    shown = page.evaluate(
        """async () => {
            const { SlotView } = await import("/ui/static/js/viewer.js");
            const finding = { id: "f1", label: "mass", score: 0.4, malignancy_probability: 0.98,
                              box: [370, 40, 398, 60] };
            const image = { sop_instance_uid: "i1", laterality: "R", view: "CC", rows: 300,
                            columns: 400, flipped: true, status: "processed",
                            findings: [finding] };
            const hooks = { adjustWindow() {}, hover() {}, select() {} };
            const slot = new SlotView({ slot: { id: "RCC", laterality: "R" }, image,
                                        pictureUrls: [], candidates: [], hooks });
            slot.element.style.cssText = "width: 400px; height: 300px";
            document.body.prepend(slot.element);
            slot.drawFindings();
            slot.render();
            const text = slot.element.querySelector(".finding-text").getBBox();
            return { right: text.x + text.width, left: text.x, room: slot.size().width };
        }"""
    )
    assert shown["room"] == 400
    assert shown["left"] >= 0 and shown["right"] <= shown["room"], shown


def test_a_study_probability_is_coloured_by_its_suspicion(page: Any, service: Service) -> None:
    """The worklist and the study chip coloured the study probability by fixed cut-offs (red
    from 0.5) while the bundle's suspicion thresholds differ: 0.51 was red beside
    "intermediate". The colour follows the suspicion the result gives."""
    _logged_in(page, service)
    row = {**_row(0), "malignancy_probability": 0.51, "suspicion": "intermediate"}
    _serve_rows(page, [row])
    page.goto(service.url + "/")
    cell = page.locator("#worklist-body tr td.num").first
    cell.wait_for()
    assert cell.inner_text() == "0.51"
    classes = (cell.get_attribute("class") or "").split()
    assert "risk-mid" in classes and "risk-high" not in classes, classes
    colours = page.evaluate(
        """async () => {
            const { studyRiskClass } = await import("/ui/static/js/format.js");
            return [studyRiskClass(0.51, "intermediate"), studyRiskClass(0.4, "high"),
                    studyRiskClass(0.6, null)];
        }"""
    )
    assert colours == ["risk-mid", "risk-high", "risk-high"]


def test_a_failed_study_says_why_in_the_worklist(page: Any, service: Service) -> None:
    """A failed row showed only "failed": the reader had to open each study to learn why."""
    _logged_in(page, service)
    why = "The study's files are gone (/data/studies/x/input): upload the study again."
    row = {**_row(0), "status": "failed", "result_status": None, "error": why}
    row.update(malignancy_probability=None, suspicion=None)
    _serve_rows(page, [row])
    page.goto(service.url + "/")
    page.locator("#worklist-body tr").first.wait_for()
    assert page.inner_text("#worklist-body tr .failure") == why


def test_labels_of_clustered_boxes_do_not_overlap(page: Any, service: Service) -> None:
    """Boxes close together (the demo study's left CC) wrote their labels over each other,
    unreadable; each label takes the first free spot around its box, the most suspicious
    first."""
    page.goto(service.url + "/")
    labels = page.evaluate(
        """async () => {
            const { SlotView } = await import("/ui/static/js/viewer.js");
            const box = (id, p, b) => ({ id, label: "mass", score: 0.5,
                                         malignancy_probability: p, box: b });
            const findings = [box("a", 0.77, [100, 100, 130, 130]),
                              box("b", 0.34, [110, 105, 140, 135]),
                              box("c", 0.13, [95, 112, 125, 140]),
                              box("d", 0.61, [105, 96, 135, 126])];
            const image = { sop_instance_uid: "i1", laterality: "L", view: "CC", rows: 300,
                            columns: 400, flipped: false, status: "processed", findings };
            const hooks = { adjustWindow() {}, hover() {}, select() {} };
            const slot = new SlotView({ slot: { id: "LCC", laterality: "L" }, image,
                                        pictureUrls: [], candidates: [], hooks });
            slot.element.style.cssText = "width: 400px; height: 300px";
            document.body.prepend(slot.element);
            slot.drawFindings();
            slot.render();
            return [...slot.element.querySelectorAll(".finding-text")].map((text) => {
                const b = text.getBBox();
                return { text: text.textContent, x: b.x, y: b.y, w: b.width, h: b.height };
            });
        }"""
    )
    assert len(labels) == 4
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a, b)
        assert a["y"] >= 0 and a["y"] + a["h"] <= 300, a
