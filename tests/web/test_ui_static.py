"""The web UI without a browser: the page and every asset it loads are served, the module
graph is complete, the display picture is the stored image on its ORIGINAL grid, and the
hanging geometry (pure JavaScript) is right when run by node."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image as PILImage

import mammocad.web as web
from mammocad.synthetic import write_studies
from mammocad.web import STATIC_DIR, mount_ui
from mammocad.web.pictures import cached_display, render_display

ASSET = re.compile(r"""(?:href|src)="(/ui/static/[^"]+)\"""")
IMPORT = re.compile(r"""^import\s[^;]*?from\s+"(\./[^"]+)";""", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()
    mount_ui(app)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("phantom"), seed=3, size="small"
    )
    return sorted(folder.glob("*.dcm"))


def test_the_page_is_served_with_the_research_use_notice(client: TestClient) -> None:
    for path in ("/", "/ui", "/ui/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Research use only — not for clinical use" in response.text
        assert response.headers["cache-control"] == "no-cache"


def test_every_asset_and_module_the_page_loads_is_served(client: TestClient) -> None:
    page = client.get("/").text
    pending = ASSET.findall(page)
    assert "/ui/static/js/app.js" in pending and "/ui/static/app.css" in pending
    seen: set[str] = set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        assert response.status_code == 200, url
        if url.endswith(".js"):
            assert "javascript" in response.headers["content-type"], url
            base = url.rsplit("/", 1)[0]
            pending += [f"{base}/{name[2:]}" for name in IMPORT.findall(response.text)]
    modules = {f"/ui/static/js/{path.name}" for path in (STATIC_DIR / "js").glob("*.js")}
    assert modules <= seen, f"modules nothing imports: {sorted(modules - seen)}"
    assert client.get("/ui/static/js/missing.js").status_code == 404


def test_elements_the_scripts_look_up_exist_in_the_page(client: TestClient) -> None:
    page = client.get("/").text
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    scripts = "".join(path.read_text("utf-8") for path in (STATIC_DIR / "js").glob("*.js"))
    wanted = set(re.findall(r"""getElementById\("([^"]+)"\)""", scripts))
    assert wanted and wanted <= ids, sorted(wanted - ids)


def test_mount_fails_at_start_without_the_static_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "STATIC_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="package data"):
        mount_ui(FastAPI())


def test_display_picture_is_the_stored_image_on_its_grid(
    phantom_files: list[Path], tmp_path: Path
) -> None:
    source = phantom_files[0]
    dataset = pydicom.dcmread(source, stop_before_pixels=True)
    grey = render_display(source, max_side=256)
    assert grey is not None and grey.dtype == np.uint8
    assert max(grey.shape) == 256
    assert grey.shape[0] / grey.shape[1] == pytest.approx(dataset.Rows / dataset.Columns, 0.01)
    assert grey.max() > 200 and grey.min() < 30  # rendered, not a flat or raw 16-bit picture
    target = tmp_path / "pictures" / "x.display.png"
    assert cached_display(source, target) == target
    written = target.stat().st_mtime_ns
    assert cached_display(source, target) == target and target.stat().st_mtime_ns == written
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 300)
    assert render_display(garbage) is None
    assert cached_display(garbage, tmp_path / "g.png") is None
    assert cached_display(tmp_path / "gone.dcm", tmp_path / "gone.png") is None


def test_display_route_needs_a_key_and_serves_uploaded_images(
    tiny_bundle: Path, phantom_files: list[Path], tmp_path: Path
) -> None:
    from mammocad.pipeline import Pipeline
    from mammocad.serve import Settings, create_app
    from mammocad.serve.state import AppState
    from mammocad.store.keys import create_api_key
    from mammocad.store.session import transaction

    settings = Settings(data_dir=tmp_path, host="127.0.0.1", require_api_key=True)
    app = create_app(settings, pipeline=Pipeline.from_bundle(tiny_bundle), start_workers=False)
    with TestClient(app) as client:
        state: AppState = app.state.mammocad
        with transaction(state.sessions) as session:
            key = create_api_key(session, name="display-test")
        parts = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in phantom_files]
        upload = client.post(
            "/api/v1/studies", files=parts, headers={"Authorization": f"Bearer {key}"}
        )
        assert upload.status_code == 202, upload.text
        uid = upload.json()["study_instance_uid"]
        dataset = pydicom.dcmread(phantom_files[0], stop_before_pixels=True)
        url = f"/ui/pictures/{uid}/{dataset.SOPInstanceUID}/display.png"
        assert client.get(url).status_code == 401
        response = client.get(url, params={"key": key})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        width, height = PILImage.open(io.BytesIO(response.content)).size
        assert height / width == pytest.approx(dataset.Rows / dataset.Columns, 0.01)
        bearer = {"Authorization": f"Bearer {key}"}
        assert (
            client.get(f"/ui/pictures/{uid}/1.2.3/display.png", headers=bearer).status_code == 404
        )
        assert (
            client.get(
                f"/ui/pictures/9.9/{dataset.SOPInstanceUID}/display.png", headers=bearer
            ).status_code
            == 404
        )


NODE_SCRIPT = """
import { SLOTS, assignSlots, boxToScreen, fitView, mirrorFor, windowLut, zoomAbout }
  from "%s";
const image = (laterality, view, extra = {}) =>
  ({ laterality, view, rows: 100, columns: 50, status: "processed", ...extra });
const images = [image("L", "MLO"), image("R", "CC", { flipped: true }),
  image("R", "CC", { status: "rejected" }), image("L", "CC"), image("R", "ML"), image("L", "XCCL")];
const { slots, others } = assignSlots(images);
const out = {
  order: SLOTS.map((s) => s.id),
  slots: Object.fromEntries(Object.entries(slots).map(([k, v]) => [k, images.indexOf(v)])),
  others: others.map((o) => images.indexOf(o)),
  mirror: [mirrorFor(image("R", "CC", { flipped: true })), mirrorFor(image("R", "CC")),
           mirrorFor(image("L", "CC", { flipped: true })), mirrorFor(image("L", "CC"))],
  fitR: fitView(image("R", "CC", { flipped: true }), 200, 100),
  fitL: fitView(image("L", "CC", { flipped: true }), 200, 100),
  boxMirrored: boxToScreen(fitView(image("L", "CC", { flipped: true }), 200, 100),
                           image("L", "CC"), [10, 20, 20, 40]),
  zoom: zoomAbout({ mirror: false, scale: 1, tx: 0, ty: 0 }, 2, 10, 10),
  lut: Array.from(windowLut(100, 100)).filter((_, i) => [0, 50, 100, 150, 255].includes(i)),
  inverted: windowLut(256, 128, true)[0],
  refused: ((views) => views.indexOf(assignSlots(views).slots.LMLO))([
    image("L", "MLO", { status: "rejected", rejection_code: "truncated_pixel_data" }),
    image("L", "MLO", { status: "rejected", rejection_code: "unacceptable_quality" }),
  ]),
};
console.log(JSON.stringify(out));
"""


def test_hanging_geometry_in_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    module = (STATIC_DIR / "js" / "hanging.js").as_uri()
    done = subprocess.run(
        [node, "--input-type=module", "-e", NODE_SCRIPT % module],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["order"] == ["RCC", "LCC", "RMLO", "LMLO"]
    # processed CC beats the rejected CC; XCCL only when no CC; ML stands in for MLO
    assert out["slots"] == {"RCC": 1, "LCC": 3, "RMLO": 4, "LMLO": 0}
    assert out["others"] == [2, 5]
    # stored chest wall right (flipped) is right for R; mirrored for L; the reverse otherwise
    assert out["mirror"] == [False, True, True, False]
    # 50×100 in 200×100: scale 1; R against the centre line (right edge), L against the left
    assert out["fitR"] == {"mirror": False, "scale": 1, "tx": 150, "ty": 0}
    assert out["fitL"] == {"mirror": True, "scale": 1, "tx": 0, "ty": 0}
    assert out["boxMirrored"] == {"x": 30, "y": 20, "width": 10, "height": 20}
    # of two rejected MLOs, the one the quality gate refused (it has a picture) hangs
    assert out["refused"] == 1
    assert out["zoom"] == {"mirror": False, "scale": 2, "tx": -10, "ty": -10}
    assert out["lut"] == [0, 0, 128, 255, 255]
    assert out["inverted"] == 255
