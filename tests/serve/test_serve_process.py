"""``mammocad serve`` as a real process (uvicorn on a free loopback port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mammocad.cli import app as cli


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_serve_process_answers(tmp_path: Path, tiny_bundle: Path, phantom_study: Path) -> None:
    data = tmp_path / "data"
    created = CliRunner().invoke(cli, ["apikey", "create", "--name", "p", "--data-dir", str(data)])
    key = created.output.strip().splitlines()[-1]
    port = free_port()
    env = {**os.environ, "MAMMOCAD_THREADS": "1"}
    command = [
        sys.executable, "-m", "mammocad.cli", "serve", "--port", str(port),
        "--data-dir", str(data), "--model", str(tiny_bundle),
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the server did not become ready in 90 s"
            time.sleep(0.5)
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/api/v1/studies", timeout=10).status_code == 401
        files = [("files", (p.name, p.read_bytes())) for p in sorted(phantom_study.glob("*.dcm"))]
        uploaded = httpx.post(f"{base}/api/v1/studies", files=files, headers=headers, timeout=60)
        assert uploaded.status_code == 202, uploaded.text
        location = base + uploaded.headers["Location"]
        for _ in range(240):
            job = httpx.get(location, headers=headers, timeout=10).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.5)
        assert job["status"] == "done", job
        assert job["result"]["status"] == "complete"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
