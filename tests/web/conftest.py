"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (no browser
download), skipped where either is missing."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

if TYPE_CHECKING:
    from mammocad.pipeline import Pipeline


def chromium_path() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    url: str
    key: str
    data_dir: Path


@contextmanager
def running_service(
    pipeline: Pipeline, data_dir: Path, *, start_workers: bool = True, **settings: Any
) -> Iterator[Service]:
    """The real service (``create_app``, API keys on) on a free port in a thread, with one
    API key made by ``mammocad apikey create``; stopped on exit."""
    import uvicorn

    from mammocad.cli import app as cli_app
    from mammocad.serve import Settings, create_app

    made = CliRunner().invoke(
        cli_app, ["apikey", "create", "--name", "ui-test", "--data-dir", str(data_dir)]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    config = Settings(
        data_dir=data_dir, host="127.0.0.1", port=port, require_api_key=True, **settings
    )
    application = create_app(config, pipeline=pipeline, start_workers=start_workers)
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-ui-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield Service(url=f"http://127.0.0.1:{port}", key=key, data_dir=data_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def service(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The real service with the tiny bundle and no analysis workers (a module may define its
    own, e.g. with workers and a stand-in detector)."""
    from mammocad.pipeline import Pipeline

    data_dir = tmp_path_factory.mktemp("service")
    pipeline = Pipeline.from_bundle(tiny_bundle)
    with running_service(pipeline, data_dir, start_workers=False) as running:
        yield running
