"""Orthanc ⇄ ``mammocad serve`` through DICOMweb only; run INSIDE a private network namespace.

``test_orthanc_stow.py`` starts this script through the ``run_scenario`` fixture (conftest.py).
Steps: start our service (API key required) on loopback with Orthanc's DICOMweb root as its
STOW-RS push destination, start Orthanc with our service as a DICOMweb server (the key in its
``HttpHeaders``), upload a phantom study into Orthanc by REST, ask Orthanc to send it to us by
STOW-RS (its ``/dicom-web/servers/{name}/stow`` route, PS3.18 §10.5 on our side), wait until
our job is done, wait until the results have arrived back in Orthanc by STOW-RS, and read the
study back (REST and QIDO-RS) into ``--report``. The test asserts; this script only collects.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from orthanc_pacs import (
    BASE,
    collect,
    keep_logs,
    orthanc_config,
    rest,
    scenario_arguments,
    series_modalities,
    start_orthanc,
    upload,
)

API_PORT = 8100
API = f"http://127.0.0.1:{API_PORT}"

logger = logging.getLogger("orthanc_stow_scenario")


def api_get(route: str, key: str) -> Any:
    request = urllib.request.Request(API + route, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_service(args: argparse.Namespace) -> tuple[Any, threading.Thread, str]:
    """Our service in a thread of this process: uvicorn on loopback, one in-process worker."""
    import uvicorn

    from mammocad.pipeline import Pipeline
    from mammocad.serve.app import create_app
    from mammocad.serve.settings import Settings
    from mammocad.store.keys import create_api_key
    from mammocad.store.session import (
        database_url,
        make_engine,
        session_factory,
        transaction,
        upgrade,
    )

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=args.work / "service",
        host="127.0.0.1",
        port=API_PORT,
        dicomweb_push_url=f"{BASE}/dicom-web",
    )
    url = database_url(data_dir=settings.data_dir, override=None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        key = create_api_key(session, name="orthanc")
    engine.dispose()
    app = create_app(settings, pipeline=Pipeline.from_bundle(args.bundle, num_threads=1))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=API_PORT, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("our service did not start within 60 s")
        time.sleep(0.1)
    return server, thread, key


def wait_for_job(uid: str, key: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            body: dict[str, Any] = api_get(f"/api/v1/studies/{uid}", key)
        except urllib.error.HTTPError as error:  # 404 until the STOW request has been stored
            if error.code != 404:
                raise
            body = {"job": None}
        job = body.get("job") or {}
        if job.get("status") in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def wait_for_results(study: str, timeout_s: float) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        modalities = series_modalities(study)
        if {"SR", "OT"} <= modalities or time.monotonic() > deadline:
            return modalities
        time.sleep(0.5)


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    files = sorted(args.study.glob("*.dcm"))
    root = Path(tempfile.mkdtemp(prefix="mammocad-orthanc-"))
    root.chmod(0o755)
    server, thread, key = start_service(args)
    servers = {
        "mammocad": {"Url": f"{API}/dicomweb/", "HttpHeaders": {"Authorization": f"Bearer {key}"}}
    }
    orthanc = start_orthanc(
        root,
        orthanc_config(root, dicomweb_servers=servers),
        orthanc=args.orthanc,
        user=args.orthanc_user,
    )
    try:
        study = upload(files)
        uid = rest("GET", f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"]
        started = time.monotonic()
        # Orthanc sends the study to our service by STOW-RS
        stowed = rest(
            "POST", "/dicom-web/servers/mammocad/stow", json.dumps({"Resources": [study]}).encode()
        )
        detail = wait_for_job(uid, key, args.timeout)
        modalities = wait_for_results(study, 60)
        report = collect(study, args.work / "from-orthanc")
        report.update(
            stowed=stowed,
            job=detail.get("job"),
            result=detail.get("result"),
            modalities_in_orthanc=sorted(modalities),
            service_dicom=str(args.work / "service"),
            sources=[str(path) for path in files],
            seconds=time.monotonic() - started,
        )
        return report
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        orthanc.terminate()
        orthanc.wait(timeout=30)
        keep_logs(root, args.work / "orthanc-logs")
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    args = scenario_arguments(__doc__)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("highdicom", "httpx", "multipart"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    args.report.write_text(json.dumps(scenario(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
