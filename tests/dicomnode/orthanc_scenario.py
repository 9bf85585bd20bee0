"""Orthanc ↔ mammocad dicom-node round trip; run INSIDE a private network namespace.

``test_orthanc.py`` starts this script as ``unshare -n sh -c 'ip link set lo up && exec python
orthanc_scenario.py ...'``: Orthanc 1.10 cannot bind its DICOM port to loopback only, so it gets
a network namespace of its own that has nothing but ``lo`` (the machine's ports are untouched,
nothing outside can reach it). Orthanc, our node and this script's REST client all live in that
namespace; the whole scenario runs here so no process has to enter a namespace later.

Steps: start Orthanc with a temporary configuration (our node as a DICOM modality), upload a
phantom study by REST, ask Orthanc to C-STORE it to our node, wait until the node has analysed
the study and C-STOREd its SR and Secondary Captures back, then read the study back from
Orthanc (REST and QIDO-RS) into ``--report`` (JSON) with copies of the returned objects. The
test asserts on that report; this script only collects.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ORTHANC_AET, ORTHANC_DICOM, ORTHANC_HTTP = "ORTHANC", 4242, 8042
NODE_AET, NODE_PORT = "MAMMOCAD", 11112
PLUGINS = Path("/usr/share/orthanc/plugins")
BASE = f"http://127.0.0.1:{ORTHANC_HTTP}"

logger = logging.getLogger("orthanc_scenario")


def rest(method: str, route: str, body: bytes | None = None) -> Any:
    request = urllib.request.Request(BASE + route, data=body, method=method)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def download(route: str, target: Path) -> Path:
    with urllib.request.urlopen(BASE + route, timeout=60) as response:
        target.write_bytes(response.read())
    return target


def orthanc_config(root: Path) -> dict[str, Any]:
    plugins = [str(PLUGINS / "libOrthancDicomWeb.so")]
    return {
        "Name": "mammocad-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "DicomAet": ORTHANC_AET,
        "DicomPort": ORTHANC_DICOM,
        "HttpPort": ORTHANC_HTTP,
        # loopback only, inside a namespace with nothing else: no remote access, no users
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"mammocad": [NODE_AET, "127.0.0.1", NODE_PORT]},
        "Plugins": [path for path in plugins if Path(path).is_file()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 2,
    }


def start_orthanc(root: Path, *, orthanc: str, user: str | None) -> subprocess.Popen[bytes]:
    config = root / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(root), indent=2))
    command = [orthanc, f"--logdir={root}", str(config)]
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


def run_node(args: argparse.Namespace, outcomes: queue.Queue[Any]) -> Any:
    from mammocad.dicomnode import (
        Destination,
        DicomNode,
        NodeSettings,
        PipelineStudyHandler,
    )
    from mammocad.pipeline import Pipeline

    settings = NodeSettings(
        ae_title=NODE_AET,
        port=NODE_PORT,
        allowed_calling_aets=frozenset({ORTHANC_AET}),
        destination=Destination(ae_title=ORTHANC_AET, host="127.0.0.1", port=ORTHANC_DICOM),
        spool_dir=args.work / "spool",
        idle_timeout_s=1.0,
        keep_studies=True,  # the test compares what Orthanc holds with what we wrote
    )
    handler = PipelineStudyHandler(pipeline=Pipeline.from_bundle(args.bundle))
    node = DicomNode(settings=settings, handler=handler, on_done=outcomes.put)
    node.start()
    return node


def upload(files: list[Path]) -> str:
    """Store the study in Orthanc through REST; Orthanc's study id."""
    studies = {rest("POST", "/instances", path.read_bytes())["ParentStudy"] for path in files}
    (study,) = studies
    return str(study)


def collect(study: str, out: Path) -> dict[str, Any]:
    """The study as Orthanc holds it now: series, instance tags, the returned files."""
    report: dict[str, Any] = {"orthanc_studies": rest("GET", "/studies"), "series": []}
    report["study_instance_uid"] = rest("GET", f"/studies/{study}")["MainDicomTags"][
        "StudyInstanceUID"
    ]
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
    if (PLUGINS / "libOrthancDicomWeb.so").is_file():
        uid = report["study_instance_uid"]
        report["qido_series"] = rest("GET", f"/dicom-web/studies/{uid}/series")
    return report


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    files = sorted(args.study.glob("*.dcm"))
    root = Path(tempfile.mkdtemp(prefix="mammocad-orthanc-"))
    root.chmod(0o755)
    orthanc = start_orthanc(root, orthanc=args.orthanc, user=args.orthanc_user)
    outcomes: queue.Queue[Any] = queue.Queue()
    node = None
    try:
        node = run_node(args, outcomes)
        study = upload(files)
        started = time.monotonic()
        # Orthanc pushes the study to our node by C-STORE (its "store to modality" route)
        pushed = rest("POST", "/modalities/mammocad/store", json.dumps([study]).encode())
        outcome = outcomes.get(timeout=args.timeout)
        report = collect(study, args.work / "from-orthanc")
        report.update(
            pushed=pushed,
            node_ok=outcome.ok,
            node_error=outcome.error,
            node_folder=str(outcome.folder),
            sources=[str(path) for path in files],
            seconds=time.monotonic() - started,
        )
        return report
    finally:
        if node is not None:
            node.stop()
        orthanc.terminate()
        orthanc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--study", type=Path, required=True, help="folder of a phantom study")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--orthanc", default="Orthanc", help="the Orthanc executable")
    parser.add_argument("--orthanc-user", default=None, help="run Orthanc as this user")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args()
    from mammocad.dicomnode.run import configure_logging

    configure_logging()
    (args.work / "from-orthanc").mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(scenario(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
