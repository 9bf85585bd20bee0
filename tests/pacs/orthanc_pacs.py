"""A real Orthanc for the PACS scenarios: configuration, start-up, REST calls, read-back.

Imported by the scenario scripts of this folder, which run INSIDE a private network namespace
(see conftest.py): Orthanc 1.10 listens for DICOM on all interfaces and has no bind-address
option, so it only ever runs in a namespace that has nothing but loopback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ORTHANC_AET, ORTHANC_DICOM, ORTHANC_HTTP = "ORTHANC", 4242, 8042
PLUGINS = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = PLUGINS / "libOrthancDicomWeb.so"
BASE = f"http://127.0.0.1:{ORTHANC_HTTP}"


def rest(method: str, route: str, body: bytes | None = None, timeout_s: float = 120.0) -> Any:
    request = urllib.request.Request(BASE + route, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:  # Orthanc's JSON error body says what went wrong
        raise RuntimeError(
            f"Orthanc {method} {route}: {error.code} {error.read()[:2000]!r}"
        ) from error


def keep_logs(root: Path, target: Path) -> None:
    """Copy Orthanc's log files out of its temporary folder (the test prints them on failure)."""
    target.mkdir(parents=True, exist_ok=True)
    for log in root.glob("*.log*"):
        shutil.copy(log, target / log.name)


def download(route: str, target: Path) -> Path:
    with urllib.request.urlopen(BASE + route, timeout=60) as response:
        target.write_bytes(response.read())
    return target


def orthanc_config(
    root: Path,
    *,
    modalities: dict[str, list[Any]] | None = None,
    dicomweb_servers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Loopback only, inside a namespace with nothing else: no remote access, no users."""
    plugins = [str(DICOMWEB_PLUGIN)]
    dicomweb: dict[str, Any] = {"Enable": True, "Root": "/dicom-web/"}
    if dicomweb_servers:
        dicomweb["Servers"] = dicomweb_servers
    return {
        "Name": "mammocad-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "DicomAet": ORTHANC_AET,
        "DicomPort": ORTHANC_DICOM,
        "HttpPort": ORTHANC_HTTP,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": modalities or {},
        "Plugins": [path for path in plugins if Path(path).is_file()],
        "DicomWeb": dicomweb,
        "StableAge": 2,
    }


def start_orthanc(
    root: Path, config: dict[str, Any], *, orthanc: str, user: str | None
) -> subprocess.Popen[bytes]:
    """Start Orthanc on ``config`` and wait until its REST API answers."""
    path = root / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    command = [orthanc, f"--logdir={root}", str(path)]
    if user is not None:
        # Orthanc runs unprivileged, as Debian's service does; the folder must be its own
        shutil.chown(root, user, user)
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}; see {root}")
        try:
            rest("GET", "/system")
            return process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("Orthanc did not answer on its HTTP port within 60 s")


def upload(files: list[Path]) -> str:
    """Store one study in Orthanc through REST; Orthanc's id of the study."""
    studies = {rest("POST", "/instances", path.read_bytes())["ParentStudy"] for path in files}
    (study,) = studies
    return str(study)


def series_modalities(study: str) -> set[str]:
    return {
        series["MainDicomTags"].get("Modality", "")
        for series in rest("GET", f"/studies/{study}/series")
    }


def collect(study: str, out: Path) -> dict[str, Any]:
    """The study as Orthanc holds it now: series, instance tags, copies of SR and SC files,
    and (with the DICOMweb plugin) the QIDO-RS series list."""
    report: dict[str, Any] = {"orthanc_studies": rest("GET", "/studies"), "series": []}
    tags = rest("GET", f"/studies/{study}")["MainDicomTags"]
    report["study_instance_uid"] = tags["StudyInstanceUID"]
    for series in rest("GET", f"/studies/{study}/series"):
        entry = {"tags": series["MainDicomTags"], "instances": []}
        for instance in series["Instances"]:
            tags = rest("GET", f"/instances/{instance}/simplified-tags")
            item = {
                "SOPInstanceUID": tags["SOPInstanceUID"],
                "SOPClassUID": tags["SOPClassUID"],
                "StudyInstanceUID": tags["StudyInstanceUID"],
            }
            if tags.get("Modality") in ("SR", "OT"):
                path = out / f"{tags['SOPInstanceUID']}.dcm"
                item["file"] = str(download(f"/instances/{instance}/file", path))
            entry["instances"].append(item)
        report["series"].append(entry)
    if DICOMWEB_PLUGIN.is_file():
        uid = report["study_instance_uid"]
        report["qido_series"] = rest("GET", f"/dicom-web/studies/{uid}/series")
    return report


def scenario_arguments(description: str | None) -> argparse.Namespace:
    """The command line every scenario takes (conftest.py's ``run_scenario`` passes it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--study", type=Path, required=True, help="folder of a phantom study")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--orthanc", default="Orthanc", help="the Orthanc executable")
    parser.add_argument("--orthanc-user", default=None, help="run Orthanc as this user")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args()
    (args.work / "from-orthanc").mkdir(parents=True, exist_ok=True)
    return args
