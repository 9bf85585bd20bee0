"""Integration with a real PACS: Orthanc (Debian package) ↔ ``mammocad dicom-node``.

The scenario (orthanc_scenario.py) runs in a private network namespace with only loopback:
Orthanc 1.10 listens for DICOM on all interfaces and has no bind-address option, and the
namespace keeps that port off the machine's network. Everything that has to talk to Orthanc
(Orthanc itself, our node, the REST client) runs in that one subprocess, so nothing has to
enter the namespace afterwards; ``unshare -n`` as root (Orthanc then drops to the ``orthanc``
user), else ``unshare -rn`` (a user namespace: Orthanc runs as the caller).

Skipped when Orthanc or a usable ``unshare`` is missing (CI installs Orthanc: .ci/run).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

SCENARIO = Path(__file__).with_name("orthanc_scenario.py")


def orthanc_binary() -> str:
    found = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.skip("Orthanc is not installed (Debian: apt-get install orthanc orthanc-dicomweb)")
    return found


def namespace_command() -> tuple[list[str], str | None]:
    """``unshare`` arguments that work here, and the user Orthanc should run as."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip (util-linux, iproute2) not available")
    for command, user in ((["unshare", "-n"], "orthanc"), (["unshare", "-rn"], None)):
        probe = subprocess.run([*command, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            if user is not None and (os.geteuid() != 0 or not _user_exists(user)):
                user = None
            return command, user
    pytest.skip("no private network namespace allowed here (unshare -n / -rn failed)")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# ~20–30 s on two busy cores (importing torch and analysing in the subprocess dominate); kept in
# the default suite because the PACS round trip is what the node is for


@pytest.fixture(scope="module")
def round_trip(
    tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], str]:
    orthanc = orthanc_binary()
    unshare, user = namespace_command()
    from mammocad.synthetic import write_studies

    work = tmp_path_factory.mktemp("orthanc")
    (study,) = write_studies(n_studies=1, out_dir=work / "phantom", seed=23, size="small")
    report = work / "report.json"
    python = [sys.executable, str(SCENARIO), "--bundle", str(tiny_bundle), "--study", str(study)]
    python += ["--work", str(work), "--report", str(report), "--orthanc", orthanc]
    python += ["--orthanc-user", user] if user else []
    inner = "ip link set lo up && exec " + " ".join(f"'{arg}'" for arg in python)
    # own process group: on a timeout, Orthanc (a grandchild) goes down with the scenario
    process = subprocess.Popen(
        [*unshare, "sh", "-c", inner],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log = process.communicate(timeout=600)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        log = process.communicate()[0]
        pytest.fail(f"the Orthanc scenario ran over 600 s:\n{log[-6000:]}")
    assert process.returncode == 0, log[-6000:]
    return json.loads(report.read_text()), log


def series_by_modality(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {series["tags"]["Modality"]: series for series in report["series"]}


def written(report: dict[str, Any], pattern: str) -> list[Dataset]:
    """What our node wrote (kept under the spool's done/ folder)."""
    folder = Path(report["node_folder"]) / "results"
    return [dcmread(path) for path in sorted(folder.glob(f"*/dicom/{pattern}"))]


def test_results_come_back_into_the_same_study(round_trip: tuple[dict[str, Any], str]) -> None:
    report, log = round_trip
    assert report["node_ok"], report["node_error"]
    assert report["pushed"]["FailedInstancesCount"] == 0
    assert report["pushed"]["InstancesCount"] == 4
    # one study in Orthanc: the results joined the source study instead of making a new one
    assert len(report["orthanc_studies"]) == 1
    series = series_by_modality(report)
    assert sorted(series) == ["MG", "OT", "SR"]
    uid = dcmread(report["sources"][0]).StudyInstanceUID
    assert report["study_instance_uid"] == uid
    for entry in report["series"]:
        assert {item["StudyInstanceUID"] for item in entry["instances"]} == {uid}
    assert {i["SOPClassUID"] for i in series["SR"]["instances"]} == {ComprehensiveSRStorage}
    assert {i["SOPClassUID"] for i in series["OT"]["instances"]} == {SecondaryCaptureImageStorage}
    # the node logged Orthanc's association and the study
    assert "association ORTHANC from 127.0.0.1:" in log
    assert "4 instances stored, 0 refused" in log


def test_sr_and_sc_content_in_orthanc(round_trip: tuple[dict[str, Any], str]) -> None:
    report, _ = round_trip
    series = series_by_modality(report)
    sources = {dcmread(path).SOPInstanceUID for path in report["sources"]}
    assert {item["SOPInstanceUID"] for item in series["MG"]["instances"]} == sources
    result = json.loads(next(Path(report["node_folder"]).glob("results/*/result.json")).read_text())
    processed = {
        image["sop_instance_uid"] for image in result["images"] if image["status"] == "processed"
    }
    assert processed and processed <= sources

    (sr_item,) = series["SR"]["instances"]
    sr = dcmread(sr_item["file"])
    (ours,) = written(report, "sr.dcm")
    assert sr == ours  # stored by Orthanc exactly as our node sent it
    evidence = {
        ref.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for ref_series in study.ReferencedSeriesSequence
        for ref in ref_series.ReferencedSOPSequence
    }
    assert evidence == processed  # the SR document refers to the source images

    scs = [dcmread(item["file"]) for item in series["OT"]["instances"]]
    assert len(scs) == len(processed)  # one Secondary Capture per processed image
    assert {sc.SourceImageSequence[0].ReferencedSOPInstanceUID for sc in scs} == processed
    ours_by_uid = {ds.SOPInstanceUID: ds for ds in written(report, "sc/*.dcm")}
    for sc in scs:
        assert sc.PixelData == ours_by_uid[sc.SOPInstanceUID].PixelData
        assert sc.BurnedInAnnotation == "YES"


def test_qido_rs_lists_the_result_series(round_trip: tuple[dict[str, Any], str]) -> None:
    report, _ = round_trip
    if "qido_series" not in report:
        pytest.skip("Orthanc's DICOMweb plugin is not installed (Debian: orthanc-dicomweb)")
    # QIDO-RS JSON (PS3.18 F.2): tag → {"vr", "Value"}
    found = {
        entry["0020000E"]["Value"][0]: entry["00080060"]["Value"][0]
        for entry in report["qido_series"]
    }
    series = series_by_modality(report)
    assert found[series["SR"]["tags"]["SeriesInstanceUID"]] == "SR"
    assert found[series["OT"]["tags"]["SeriesInstanceUID"]] == "OT"
    assert found[series["MG"]["tags"]["SeriesInstanceUID"]] == "MG"
