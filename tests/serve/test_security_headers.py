"""Security headers, caching and offline docs: every response (API, UI, pictures, errors)
carries nosniff, DENY framing, no referrer and a Content-Security-Policy; patient data is
``no-store``; ``/docs`` and ``/redoc`` load nothing from outside the service; the access log
masks the key however its query parameter name is encoded."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from mammocad.pipeline import Pipeline
from mammocad.serve import create_app

from .conftest import Api, dicoms, make_key, settings_for
from .test_review_security import access_log_line
from .test_stow import stow

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

ASSET = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}


def assert_secured(response: Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("referrer-policy") == "no-referrer", where
    policy = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert "'unsafe-eval'" not in policy, where


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_nothing_from_outside_the_service(idle_api: Api, page: str) -> None:
    """Hospitals run the service without internet: FastAPI's pages loaded Swagger UI and
    ReDoc from cdn.jsdelivr.net (and fonts from Google) and stayed blank."""
    response = idle_api.client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert re.findall(r"https?://[^\s\"'<>]*", response.text) == []
    assets = [a or b for a, b in ASSET.findall(response.text)]
    assert len(assets) >= 3, assets  # script, favicon and the spec (and Swagger UI's CSS)
    for url in assets:
        assert url.startswith("/"), url
        served = idle_api.client.get(url)
        assert served.status_code == 200, url
        suffix = Path(url).suffix
        assert CONTENT_TYPES[suffix] in served.headers["content-type"], url
        assert served.content, url
    assert_secured(response)


def test_every_kind_of_response_has_the_security_headers(
    idle_api: Api, phantom_study: Path
) -> None:
    client, auth = idle_api.client, idle_api.auth
    uid = idle_api.upload(dicoms(phantom_study)).json()["study_instance_uid"]
    picture = f"/api/v1/studies/{uid}/images/1.2.3/overlay.png"
    answers = {
        ("/api/v1/studies", True): 200,
        ("/api/v1/studies", False): 401,
        ("/api/v1/studies/1.2.3.4", True): 404,
        (picture, True): 404,
        (picture + "?key=mcad_wrong", False): 401,
        ("/api/v1/studies?limit=-1", True): 422,
        ("/no/such/route", False): 404,
        ("/", False): 200,
        ("/ui/static/app.css", False): 200,
        ("/ui/static/nothing.js", False): 404,
        ("/docs", False): 200,
        ("/openapi.json", False): 200,
        ("/health/live", False): 200,
    }
    for (path, with_key), expected in answers.items():
        response = client.get(path, headers=auth if with_key else {})
        assert response.status_code == expected, (path, response.text[:200])
        assert_secured(response)
    # the body limit's 413 is answered by a middleware before any route
    too_large = client.post(
        "/api/v1/studies", headers={**auth, "Content-Length": str(2**40)}, content=b""
    )
    assert too_large.status_code == 413
    assert_secured(too_large)
    # the UI page's own policy: scripts and styles from the service only, none inline
    page_policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self';" in page_policy and "'unsafe-inline'" not in page_policy
    assert (
        "default-src 'none'"
        in client.get("/api/v1/studies", headers=auth).headers["content-security-policy"]
    )


def test_an_internal_error_has_the_security_headers(
    tmp_path: Path, pipeline: Pipeline, database: str | None
) -> None:
    """Starlette answers the handler of ``Exception`` in its outermost middleware, outside the
    app's own: the 500 must carry the headers itself."""
    settings = settings_for(tmp_path / "data", database)
    make_key(settings)
    app = create_app(settings, pipeline=pipeline, start_workers=False)

    def fail() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", fail)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert_secured(response)
    assert response.headers["cache-control"] == "no-store"


def test_patient_data_is_never_stored_in_a_cache(
    start_api: Callable[..., Api], phantom_study: Path
) -> None:
    """Results, pictures and DICOM objects are PHI: ``no-store`` keeps them out of shared
    and browser caches (the routes said ``private``, which lets a browser keep them on
    disk); the UI's page and files stay cacheable (no patient data)."""
    api = start_api()
    client, auth = api.client, api.auth
    uploaded = api.upload(dicoms(phantom_study))
    job = api.wait(uploaded.json()["location"])
    assert job["status"] == "done", job
    uid = uploaded.json()["study_instance_uid"]
    study = client.get(f"/api/v1/studies/{uid}", headers=auth).json()
    image = study["images"][0]
    sop = image["sop_instance_uid"]
    responses = [
        uploaded,
        client.get(uploaded.json()["location"], headers=auth),
        client.get(f"/api/v1/studies/{uid}", headers=auth),
        client.get("/api/v1/studies", headers=auth),
        client.get(image["overlay_url"], headers=auth),
        client.get(image["input_url"], params={"key": api.key}),
        client.get(f"/api/v1/studies/{uid}/dicom", headers=auth),
        client.get(f"/ui/pictures/{uid}/{sop}/display.png", params={"key": api.key}),
        stow(api, [path.read_bytes() for path in dicoms(phantom_study)]),
        client.get(f"/api/v1/studies/{uid}/images/{sop}/nothing.png", headers=auth),
    ]
    for response in responses:
        where = f"{response.request.url.path} ({response.status_code})"
        assert response.status_code < 400 or response.status_code in (404, 422), where
        assert response.headers.get("cache-control") == "no-store", where
        assert_secured(response)
    assert [r.status_code for r in responses[4:9]] == [200] * 5
    # no patient data: cacheable as their routes say
    assert client.get("/").headers["cache-control"] == "no-cache"
    for asset in ("/ui/static/app.css", "/docs-assets/swagger-ui.css"):
        served = client.get(asset)
        assert served.status_code == 200 and "no-store" not in served.headers.get(
            "cache-control", ""
        ), asset


ENCODED_NAMES = ["key", "%6Bey", "k%65y", "%6b%65%79", "KEY", "Key"]


@pytest.mark.parametrize("name", ENCODED_NAMES)
def test_the_key_is_masked_in_the_access_log_however_its_name_is_encoded(
    start_api: Callable[..., Api], name: str
) -> None:
    """Starlette decodes query parameter names (``%6Bey`` is ``key``), so such a URL
    authenticates, and uvicorn logs it as the client wrote it. ``KEY`` is refused, but it is
    still a client's key."""
    api = start_api()
    picture = "/api/v1/studies/1.2.3/images/1.2.4/overlay.png"
    answered = api.client.get(f"{picture}?{name}={api.key}")
    # 404 (no such study) once authenticated; a name the service does not read is a 401
    assert answered.status_code == (404 if unquote(name) == "key" else 401), answered.text
    line = access_log_line(f"{picture}?a=1&{name}={api.key}&monkey=2&keys=3&{name}=again")
    assert api.key not in line and "again" not in line
    assert f"overlay.png?a=1&{name}=***&monkey=2&keys=3&{name}=***" in line
