"""Integration with a real PACS: Orthanc (Debian package) ↔ ``mammocad dicom-node``.

The scenario (orthanc_node_scenario.py) runs in a private network namespace with only
loopback (conftest.py); skipped when Orthanc or a usable ``unshare`` is missing (CI installs
Orthanc: .ci/run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

Report = tuple[dict[str, Any], str]


# ~20–40 s on two busy cores (importing torch and analysing in the subprocess dominate); kept in
# the default suite because the PACS round trip is what the node is for
@pytest.fixture(scope="module")
def round_trip(
    run_scenario: Any, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Report:
    from mammocad.synthetic import write_studies

    work = tmp_path_factory.mktemp("orthanc")
    (study,) = write_studies(n_studies=1, out_dir=work / "phantom", seed=23, size="small")
    report: Report = run_scenario(
        "orthanc_node_scenario.py", work, "--bundle", str(tiny_bundle), "--study", str(study)
    )
    return report


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
    # the study went through the service's job queue into its database
    assert report["service"] == {
        "state": "done", "images": 4, "jobs": 1, "job_status": "done", "result_status":
        report["service"]["result_status"],
    }  # fmt: skip
    assert report["service"]["result_status"] in ("complete", "partial")
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
