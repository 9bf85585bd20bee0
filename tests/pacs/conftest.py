"""Fixtures for the real-PACS scenarios: Orthanc (Debian package) in a private network namespace.

A scenario is a script of this folder that runs Orthanc, our side and its REST client in one
process tree started as ``unshare -n sh -c 'ip link set lo up && exec python SCRIPT ...'``: the
namespace has nothing but loopback, so Orthanc's DICOM port (it has no bind-address option) is
never reachable from the machine's network, and nothing has to enter the namespace later.
``unshare -n`` as root (Orthanc then drops to the ``orthanc`` user), else ``unshare -rn`` (a user
namespace: Orthanc runs as the caller). Skipped when Orthanc or a usable ``unshare`` is missing
(CI installs Orthanc: .ci/run).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Namespace:
    orthanc: str  # the Orthanc executable
    unshare: list[str]
    user: str | None  # run Orthanc as this user (root only)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def pacs_namespace() -> Namespace:
    orthanc = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/bin")
    if orthanc is None:
        pytest.skip("Orthanc is not installed (Debian: apt-get install orthanc orthanc-dicomweb)")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip (util-linux, iproute2) not available")
    for command, user in ((["unshare", "-n"], "orthanc"), (["unshare", "-rn"], None)):
        probe = subprocess.run([*command, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            if user is not None and (os.geteuid() != 0 or not _user_exists(user)):
                user = None
            return Namespace(orthanc=orthanc, unshare=command, user=user)
    pytest.skip("no private network namespace allowed here (unshare -n / -rn failed)")


ScenarioRunner = Callable[..., tuple[dict[str, Any], str]]


@pytest.fixture(scope="session")
def run_scenario(pacs_namespace: Namespace) -> ScenarioRunner:
    """``run_scenario(script_name, work_dir, *args)`` → (its JSON report, its log)."""

    def run(
        script: str, work: Path, *args: str, timeout_s: float = 600
    ) -> tuple[dict[str, Any], str]:
        report = work / "report.json"
        python = [sys.executable, str(HERE / script), "--work", str(work), "--report", str(report)]
        python += ["--orthanc", pacs_namespace.orthanc, *args]
        python += ["--orthanc-user", pacs_namespace.user] if pacs_namespace.user else []
        inner = "ip link set lo up && exec " + " ".join(f"'{arg}'" for arg in python)
        # own process group: on a timeout, Orthanc (a grandchild) goes down with the scenario
        process = subprocess.Popen(
            [*pacs_namespace.unshare, "sh", "-c", inner],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            log = process.communicate(timeout=timeout_s)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            log = process.communicate()[0]
            pytest.fail(f"the scenario {script} ran over {timeout_s} s:\n{log[-6000:]}")
        if process.returncode != 0:
            orthanc_log = "".join(
                path.read_text(errors="replace")[-3000:]
                for path in sorted((work / "orthanc-logs").glob("*.log*"))
            )
            pytest.fail(f"{log[-5000:]}\n--- Orthanc's log ---\n{orthanc_log}")
        return json.loads(report.read_text()), log

    return run
