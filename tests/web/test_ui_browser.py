"""The web UI in a real browser against the real service.

Headless Chromium (Debian's ``chromium``, driven by Playwright for Python through its
executable path: nothing is downloaded) opens the page served by ``create_app``, logs in with
an API key made by ``mammocad apikey create``, uploads a phantom study through the file input,
follows the job, opens the study and checks the hanging, the boxes (where result.json puts
them), the toggle, window/level and feedback (read back from the database). Screenshots are
kept in ``$MAMMOCAD_TEST_ARTIFACTS`` (default ``tests/artifacts/``).

The tiny bundle is untrained, so the service runs a detector that reports one known mass per
image (as tests/test_analyze_cli.py does): the boxes, probabilities (noisy-OR 0.86) and
suspicion (high) are then known in advance.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from mammocad.detect import Detections, load_bundle
from mammocad.detect.predict import Detector, ImagePrediction
from mammocad.pipeline import Pipeline
from mammocad.preprocess import PreprocessParams
from mammocad.structures import Laterality, PreprocessedImage, ViewPosition
from mammocad.synthetic import Defect, generate_study, read_truth, write_study

from .conftest import Service, running_service

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

# ~30-45 s on two busy cores; in the default suite because the UI is what radiologists use

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READER = "reader-7"
VIEWPORT = {"width": 1440, "height": 900}


def _artifacts() -> Path:
    folder = Path(os.environ.get("MAMMOCAD_TEST_ARTIFACTS", PROJECT_ROOT / "tests" / "artifacts"))
    folder = folder / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class KnownMassDetector(Detector):
    """One mass per image in the nipple-side part of the breast box, in ORIGINAL pixels,
    handed over in model-input pixels as the model would (score 0.9, malignancy 0.7)."""

    def _predict_one(self, item: PreprocessedImage) -> ImagePrediction:
        x1, y1, x2, y2 = item.breast_box
        width, height = x2 - x1, y2 - y1
        if item.image.laterality is not None and item.image.laterality.value == "R":
            original = [x1 + 0.2 * width, y1 + 0.4 * height, x1 + 0.45 * width, y1 + 0.6 * height]
        else:
            original = [x1 + 0.55 * width, y1 + 0.4 * height, x1 + 0.8 * width, y1 + 0.6 * height]
        boxes = torch.tensor(item.transform.boxes_to_input([original]), dtype=torch.float32)
        found = Detections(
            boxes=boxes,
            labels=torch.tensor([self.model.config.classes.index("mass")]),
            scores=torch.tensor([0.9]),
            malignancy=torch.tensor([0.7]),
            nipple_box=torch.zeros((0, 4)),
            nipple_score=torch.zeros(0),
        )
        return self._to_prediction(item, found)


@pytest.fixture(scope="module")
def service(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    loaded = load_bundle(tiny_bundle)
    pipeline = Pipeline(
        detector=KnownMassDetector(model=loaded.model, manifest=loaded.manifest),
        preprocessing=PreprocessParams.from_dict(loaded.manifest.preprocessing),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores, often busy: more threads only contend
    try:
        with running_service(pipeline, tmp_path_factory.mktemp("service"), workers=1) as running:
            yield running
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """Four views; the left MLO blurred by motion, so the quality gate refuses it and its slot
    shows the picture with the reasons."""
    study = generate_study(
        seed=11, size="small", defects={(Laterality.L, ViewPosition.MLO): [Defect.MOTION_BLUR]}
    )
    folder = write_study(study, tmp_path_factory.mktemp("phantom") / "study")
    truth = read_truth(folder / "truth.json")
    return truth.study_instance_uid, sorted(folder.glob("*.dcm"))


def _drag(page: Any, target: str, dx: float, dy: float, *, button: str) -> None:
    box = page.locator(target).bounding_box()
    x, y = box["x"] + box["width"] / 3, box["y"] + box["height"] / 3
    page.mouse.move(x, y)
    page.mouse.down(button=button)
    page.mouse.move(x + dx, y + dy, steps=6)
    page.mouse.up(button=button)


def _drop(page: Any, target: str, files: list[Path]) -> None:
    """Drop ``files`` on ``target`` as a person dragging them from a file manager would."""
    payload = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in files]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, {type: "application/dicom"}));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event(target, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


def _feedback_rows(data_dir: Path) -> list[tuple[str | None, bool, str, str | None, str | None]]:
    """(finding id, agree, reader, corrected label, comment) of every feedback row."""
    from sqlalchemy import select

    from mammocad.store.models import Feedback
    from mammocad.store.session import database_url, make_engine, session_factory, transaction

    engine = make_engine(database_url(data_dir=data_dir))
    try:
        with transaction(session_factory(engine)) as session:
            rows = session.scalars(select(Feedback).order_by(Feedback.id))
            return [
                (r.finding_id, r.agree, r.reader_id, r.corrected_label, r.comment) for r in rows
            ]
    finally:
        engine.dispose()


def _grey(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


def test_upload_review_toggle_and_feedback_in_chromium(
    browser: Any, service: Service, phantom: tuple[str, list[Path]]
) -> None:
    uid, files = phantom
    artifacts = _artifacts()
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(30_000)
    page.goto(service.url + "/")
    assert "Research use only" in page.locator("#ruo-banner").inner_text()

    # without a key the worklist is refused and the login box asks for one
    page.wait_for_selector("#login-form.needed")
    page.fill("#reader-id", READER)
    page.fill("#api-key", service.key)
    page.click("#login-save")
    page.wait_for_selector("#service-status.ok")

    # upload through the file input; the item follows the job until it is done
    page.set_input_files("#file-input", [str(path) for path in files])
    item = page.locator(".upload-item").first
    item.locator("progress").wait_for()
    page.wait_for_selector(".upload-item[data-state='done']", timeout=60_000)
    row = page.locator(f"#worklist-body tr[data-uid='{uid}']")
    row.wait_for()
    page.wait_for_selector(f"#worklist-body tr[data-uid='{uid}'][data-state='done']")
    cells = row.locator("td").all_inner_texts()
    assert cells[3].split()[0] == "done" and cells[4] == "0.86" and cells[5] == "high", cells
    assert item.locator("progress").evaluate("bar => bar.value") == 1
    page.screenshot(path=str(artifacts / "01-worklist.png"), full_page=True)

    # the same files dropped on the drop zone: nothing new, no second study or job
    _drop(page, "#dropzone", files)
    page.wait_for_selector(".upload-item[data-nothing-new='true'][data-state='done']")
    assert page.locator(".upload-item").count() == 2
    assert page.locator("#worklist-body tr").count() == 1

    # the study (from the newest upload item: the drop's answer links the same study): four
    # slots in the standard hanging, each with its picture and one box
    item.locator("a.study-link").click()
    page.wait_for_selector("#hanging[data-loaded='true']")
    order = page.locator("#hanging .slot").evaluate_all("slots => slots.map(s => s.dataset.slot)")
    assert order == ["RCC", "LCC", "RMLO", "LMLO"]
    boxes, images = _check_boxes_where_the_result_puts_them(page, service, uid)
    _check_back_to_back(page)
    page.screenshot(path=str(artifacts / "02-study-boxes.png"))

    # toggle: the overlay goes and comes back, the button says so
    toggle = page.locator("#toggle-boxes")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "false"
    assert not page.locator(".slot-overlay").first.is_visible()
    page.screenshot(path=str(artifacts / "03-study-boxes-hidden.png"))
    page.keyboard.press("b")
    assert toggle.get_attribute("aria-pressed") == "true"
    assert page.locator(".slot-overlay").first.is_visible()

    # window/level: inverting turns the black air around the breast white
    rows, columns = _image_corner(page, "RCC", images["RCC"])
    canvas = page.locator(".slot[data-slot='RCC'] canvas")
    before = _grey(canvas.screenshot())[rows, columns].mean()
    page.check("#wl-invert")
    page.wait_for_selector("#hanging[data-window='256/128/inverted']")
    after = _grey(canvas.screenshot())[rows, columns].mean()
    assert before < 40 and after > 215, (before, after)
    page.uncheck("#wl-invert")

    # zoom with the wheel grows the boxes about the pointer
    first = page.locator(".slot[data-slot='LCC'] .finding-box")
    width_before = float(first.get_attribute("width") or 0)
    stage = page.locator(".slot[data-slot='LCC'] .stage").bounding_box()
    page.mouse.move(stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        "w => +document.querySelector(\".slot[data-slot='LCC'] .finding-box\")"
        ".getAttribute('width') > w * 1.2",
        arg=width_before,
    )

    # drag pans: the box moves with the pointer
    rect = page.locator(".slot[data-slot='RMLO'] .finding-box")
    x_before, y_before = (float(rect.get_attribute(name) or 0) for name in ("x", "y"))
    _drag(page, ".slot[data-slot='RMLO'] .stage", 60, 25, button="left")
    assert float(rect.get_attribute("x") or 0) == pytest.approx(x_before + 60, abs=1)
    assert float(rect.get_attribute("y") or 0) == pytest.approx(y_before + 25, abs=1)

    # right-drag sets window (horizontal) and level (vertical) on every image
    _drag(page, ".slot[data-slot='RCC'] .stage", 40, -30, button="right")
    assert page.input_value("#wl-width") == "296" and page.input_value("#wl-level") == "158"
    page.click("#reset-view")
    assert page.input_value("#wl-width") == "256" and page.input_value("#wl-level") == "128"
    assert float(rect.get_attribute("x") or 0) == pytest.approx(x_before, abs=1)

    # feedback on one finding and on the study, read back from the database
    finding_id = boxes[1]  # LCC's
    entry = page.locator(f"#finding-list li[data-finding-id='{finding_id}']")
    entry.get_by_role("button", name="Agree with mass on LCC", exact=True).click()
    page.wait_for_selector(
        f"#finding-list li[data-finding-id='{finding_id}'] .feedback-state[data-sent='agree']"
    )
    page.select_option("#feedback-label", "benign")
    page.fill("#feedback-comment", "one real mass, well seen")
    page.click("#study-disagree")
    page.wait_for_selector("#study-feedback-state[data-sent='disagree']")
    page.screenshot(path=str(artifacts / "04-feedback.png"))
    assert _feedback_rows(service.data_dir) == [
        (finding_id, True, READER, None, None),
        (None, False, READER, "benign", "one real mass, well seen"),
    ]
    assert errors == []
    page.close()


def _check_boxes_where_the_result_puts_them(
    page: Any, service: Service, uid: str
) -> tuple[list[str], dict[str, Any]]:
    """Each slot's box sits where the fitted view maps the result's ORIGINAL-pixel box."""
    result = page.evaluate(
        """async ([uid, key]) => {
            const headers = {Authorization: `Bearer ${key}`};
            const r = await fetch(`/api/v1/studies/${uid}`, {headers});
            return (await r.json()).result;
        }""",
        [uid, service.key],
    )
    images = {f"{i['laterality']}{i['view']}": i for i in result["images"]}
    ids = []
    for slot in ("RCC", "LCC", "RMLO", "LMLO"):
        image = images[slot]
        locator = page.locator(f".slot[data-slot='{slot}']")
        assert "loaded" in (locator.get_attribute("class") or "")
        # quality per image: score, verdict and every issue's sentence on the slot
        quality = image["quality"]
        verdict = "" if quality["acceptable"] else " — not acceptable"
        expected_notes = [f"Quality {quality['score']:.2f}{verdict}"]
        expected_notes += [issue["text"] for issue in quality["issues"]]
        assert locator.locator(".slot-quality li").all_text_contents() == expected_notes
        poor = "poor-quality" in (locator.get_attribute("class") or "")
        assert poor == (slot == "LMLO") and bool(quality["issues"]) == (slot == "LMLO")
        if slot == "LMLO":
            # refused by the quality gate: no finding, but shown, so the reader sees why
            assert image["status"] == "rejected" and image["findings"] == []
            assert image["rejection_code"] == "unacceptable_quality"
            assert locator.locator(".slot-status").text_content() == (
                "Rejected: unacceptable_quality"
            )
            continue
        (finding,) = image["findings"]
        ids.append(finding["id"])
        rect = locator.locator(f"g.finding[data-finding-id='{finding['id']}'] rect")
        shown = [float(rect.get_attribute(name) or "nan") for name in ("x", "y", "width", "height")]
        stage = locator.locator(".stage").bounding_box()
        width, height = stage["width"], stage["height"]
        scale = min(width / image["columns"], height / image["rows"])
        tx = width - image["columns"] * scale if image["laterality"] == "R" else 0.0
        ty = (height - image["rows"] * scale) / 2
        mirror = (image["laterality"] == "R") != image["flipped"]
        x1, y1, x2, y2 = finding["box"]
        if mirror:
            x1, x2 = image["columns"] - x2, image["columns"] - x1
        expected = [tx + x1 * scale, ty + y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale]
        assert np.allclose(shown, expected, atol=1.0), (slot, shown, expected)
        label = locator.locator(f"g.finding[data-finding-id='{finding['id']}'] text")
        assert label.text_content() == "mass 0.70"
    return ids, images


def _image_corner(page: Any, slot: str, image: dict[str, Any]) -> tuple[slice, slice]:
    """Slot-canvas rows and columns of a patch near the image's top outer corner (air)."""
    stage = page.locator(f".slot[data-slot='{slot}'] .stage").bounding_box()
    scale = min(stage["width"] / image["columns"], stage["height"] / image["rows"])
    shown_w, shown_h = image["columns"] * scale, image["rows"] * scale
    tx = stage["width"] - shown_w if image["laterality"] == "R" else 0.0
    ty = (stage["height"] - shown_h) / 2
    outer = tx + 0.03 * shown_w if image["laterality"] == "R" else tx + 0.9 * shown_w
    return (
        slice(round(ty + 0.03 * shown_h), round(ty + 0.08 * shown_h)),
        slice(round(outer), round(outer + 0.05 * shown_w)),
    )


def _check_back_to_back(page: Any) -> None:
    """Chest walls meet in the middle: the right breast's tissue touches its slot's right
    edge, the left breast's its left edge (the phantom's background is black)."""
    for slot in ("RCC", "LCC", "RMLO", "LMLO"):
        grey = _grey(page.locator(f".slot[data-slot='{slot}'] canvas").screenshot())
        left, right = grey[:, :6].mean(), grey[:, -6:].mean()
        centre_side, outer_side = (right, left) if slot[0] == "R" else (left, right)
        assert centre_side > outer_side + 20, (slot, left, right)


def test_a_leading_candidate_is_drawn_dashed_and_listed_without_feedback(
    browser: Any, service: Service
) -> None:
    """A breast's ``x_leading_candidate`` (a box not reported that drives its
    probability) is drawn on its image in the candidate style and listed apart from the
    findings, with no agree/disagree buttons (it is not a reported finding)."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(service.url + "/")
    drawn = page.evaluate(
        """async () => {
            const { SlotView } = await import("/ui/static/js/viewer.js");
            const { StudyPage } = await import("/ui/static/js/study.js");
            const candidate = { id: "img-1-f4", sop_instance_uid: "img-1", label: "mass",
                                score: 0.21, malignancy_probability: 0.88, box: [10, 20, 40, 60] };
            const image = { sop_instance_uid: "img-1", laterality: "R", view: "CC", rows: 100,
                            columns: 80, status: "processed", findings: [] };
            const hooks = { adjustWindow() {}, hover() {}, select() {} };
            const slot = new SlotView({ slot: { id: "RCC", laterality: "R" }, image,
                                        pictureUrls: [], candidates: [candidate], hooks });
            document.body.append(slot.element);
            slot.drawFindings();
            const group = slot.element.querySelector(".finding.candidate");
            const rect = group.querySelector("rect");
            new StudyPage().fillFindings({ images: [image], breasts: [
                { laterality: "R", x_leading_candidate: candidate }, { laterality: "L" }] });
            const item = document.querySelector("#finding-list li.candidate");
            return {
                id: group.dataset.findingId,
                dashes: getComputedStyle(rect).strokeDasharray,
                text: group.querySelector("text").textContent,
                title: group.querySelector("title").textContent,
                listed: item.innerText,
                buttons: item.querySelectorAll("button").length,
            };
        }"""
    )
    assert drawn["id"] == "img-1-f4"
    assert drawn["dashes"] not in ("", "none")
    assert drawn["text"].startswith("candidate:") and "0.88" in drawn["text"]
    assert "not reported" in drawn["title"]
    assert "Candidate: " in drawn["listed"] and "RCC" in drawn["listed"]
    assert drawn["buttons"] == 0
    assert errors == []
    page.close()
