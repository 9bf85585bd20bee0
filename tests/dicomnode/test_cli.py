"""``mammocad dicom-node``: options checked up front; runs until SIGTERM and stops cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.dicomnode import NodeSettings
from mammocad.serve import Settings

if TYPE_CHECKING:
    from conftest import Peer


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--destination", "ORTHANC-pacs-4242"], "AET@host:port"),
        (["--allow", "A\\B"], "AE title"),
        (["--ae-title", "X" * 17], "AE title"),
        (["--send-syntax", "jpeg"], "jpeg"),
        (["--sr-template", "tid2000"], "tid2000"),
    ],
)
def test_bad_options_are_usage_errors(option: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dicom-node", "--spool", str(tmp_path), *option])
    assert result.exit_code == 2
    assert message in result.output


def test_node_uses_the_service_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the node goes through the service of --data-dir (queued handler), with
    --sr-template and --gsps passed on; the environment fills what is not given."""
    import mammocad.dicomnode.run as run

    calls: list[dict[str, Any]] = []

    def fake(settings: NodeSettings, service: Settings, **options: Any) -> None:
        calls.append({"node": settings, "service": service, **options})

    monkeypatch.setattr(run, "run_queued_node", fake)
    monkeypatch.setenv("MAMMOCAD_JOB_TIME_LIMIT_S", "120")
    monkeypatch.delenv("MAMMOCAD_DEVICE", raising=False)
    arguments = ["dicom-node", "--spool", str(tmp_path / "spool"), "--ae-title", "CAD1"]
    arguments += ["--data-dir", str(tmp_path / "data"), "--sr-template", "mammography-cad"]
    result = CliRunner().invoke(app, [*arguments, "--gsps"])
    assert result.exit_code == 0, result.output
    (call,) = calls
    assert call["node"].ae_title == "CAD1" and call["gsps"] is True
    service = call["service"]
    assert service.data_dir == tmp_path / "data" and service.sr_template == "mammography-cad"
    assert service.job_time_limit_s == 120.0 and service.device == "cpu"


@pytest.mark.slow  # 9–25 s: the subprocess imports torch and loads the bundle
def test_runs_until_sigterm(tiny_bundle: Path, tmp_path: Path, peer: Peer) -> None:
    command = [
        sys.executable,
        "-m",
        "mammocad.cli",
        "dicom-node",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
    ]
    command += ["--spool", str(tmp_path / "spool"), "--model", str(tiny_bundle)]
    command += ["--data-dir", str(tmp_path / "data")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 120
    while port is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening on port (\d+)", line)
        port = int(match[1]) if match else None
    try:
        assert port is not None, "".join(lines)
        assert peer.associate(port, calling="ANY").is_released
        assert peer.echo_status == 0x0000
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[1]
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "any calling AE title is accepted" in log  # no --allow: warned
    assert "C-ECHO from ANY" in log
    assert "SIGTERM received: stopping" in log and "DICOM node MAMMOCAD stopped" in log
