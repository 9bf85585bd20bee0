"""Orthanc ↔ mammocad dicom-node round trip; run INSIDE a private network namespace.

``test_orthanc_node.py`` starts this script through the ``run_scenario`` fixture (conftest.py:
a private network namespace with nothing but loopback, where Orthanc, our node and this
script's REST client all live).

Steps: start Orthanc with a temporary configuration (our node as a DICOM modality), upload a
phantom study by REST, ask Orthanc to C-STORE it to our node, wait until the node has had the
study analysed through the service's job queue (a SQLite database under ``--work``/data) and
C-STOREd its SR and Secondary Captures back, then read the study back from
Orthanc (REST and QIDO-RS) into ``--report`` (JSON) with copies of the returned objects. The
test asserts on that report; this script only collects.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orthanc_pacs import (
    ORTHANC_AET,
    ORTHANC_DICOM,
    collect,
    keep_logs,
    orthanc_config,
    rest,
    scenario_arguments,
    start_orthanc,
    upload,
)

NODE_AET, NODE_PORT = "MAMMOCAD", 11112

logger = logging.getLogger("orthanc_scenario")


def run_node(args: argparse.Namespace, outcomes: queue.Queue[Any]) -> tuple[Any, Any]:
    """The node over a service of its own (SQLite in ``--work``/data, in-process workers),
    as ``mammocad dicom-node --data-dir`` runs it; the node and the service queue."""
    from mammocad.dicomnode import Destination, DicomNode, NodeSettings
    from mammocad.dicomnode.service import ServiceQueue
    from mammocad.pipeline import Pipeline
    from mammocad.serve import Settings

    settings = NodeSettings(
        ae_title=NODE_AET,
        port=NODE_PORT,
        allowed_calling_aets=frozenset({ORTHANC_AET}),
        destination=Destination(ae_title=ORTHANC_AET, host="127.0.0.1", port=ORTHANC_DICOM),
        spool_dir=args.work / "spool",
        idle_timeout_s=1.0,
        keep_studies=True,  # the test compares what Orthanc holds with what we wrote
    )
    service = ServiceQueue.open(
        Settings(data_dir=args.work / "data"),
        load_pipeline=lambda: Pipeline.from_bundle(args.bundle),
    )
    node = DicomNode(settings=settings, handler=service.handler(), on_done=outcomes.put)
    node.start()
    return node, service


def service_record(service: Any, uid: str) -> dict[str, Any]:
    """What the service database holds about the study."""
    from mammocad.store.repository import get_study, latest_job
    from mammocad.store.session import transaction

    with transaction(service.sessions) as session:
        study = get_study(session, uid)
        if study is None:
            return {}
        job = latest_job(study)
        return {
            "state": study.state,
            "images": len(study.images),
            "jobs": len(study.jobs),
            "job_status": None if job is None else job.status,
            "result_status": study.result_status,
        }


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    files = sorted(args.study.glob("*.dcm"))
    root = Path(tempfile.mkdtemp(prefix="mammocad-orthanc-"))
    root.chmod(0o755)
    modalities = {"mammocad": [NODE_AET, "127.0.0.1", NODE_PORT]}
    config = orthanc_config(root, modalities=modalities)
    orthanc = start_orthanc(root, config, orthanc=args.orthanc, user=args.orthanc_user)
    outcomes: queue.Queue[Any] = queue.Queue()
    node = service = None
    try:
        node, service = run_node(args, outcomes)
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
            service=service_record(service, report["study_instance_uid"]),
            sources=[str(path) for path in files],
            seconds=time.monotonic() - started,
        )
        return report
    finally:
        if node is not None:
            node.stop()
        if service is not None:
            service.close()
        orthanc.terminate()
        orthanc.wait(timeout=30)
        keep_logs(root, args.work / "orthanc-logs")
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    args = scenario_arguments(__doc__)
    from mammocad.logs import configure_logging

    configure_logging()
    args.report.write_text(json.dumps(scenario(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
