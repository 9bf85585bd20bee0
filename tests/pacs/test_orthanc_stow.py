"""Integration with a real PACS through DICOMweb only: Orthanc STOW-RS → ``mammocad serve`` →
analysis job → STOW-RS of the SR and Secondary Captures back into the same study in Orthanc.

The scenario (orthanc_stow_scenario.py) runs in a private network namespace (conftest.py).
~20–30 s on two busy cores; kept in the default suite because this is how a DICOMweb-only site
(no DIMSE) connects mammocad.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

Report = tuple[dict[str, Any], str]


@pytest.fixture(scope="module")
def stow_round_trip(
    run_scenario: Any, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Report:
    from mammocad.synthetic import write_studies

    work = tmp_path_factory.mktemp("orthanc-stow")
    (study,) = write_studies(n_studies=1, out_dir=work / "phantom", seed=29, size="small")
    report: Report = run_scenario(
        "orthanc_stow_scenario.py", work, "--bundle", str(tiny_bundle), "--study", str(study)
    )
    return report


def by_modality(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {series["tags"]["Modality"]: series for series in report["series"]}


def test_stow_rs_in_and_out_of_orthanc(stow_round_trip: Report) -> None:
    report, log = stow_round_trip
    assert report["job"]["status"] == "done", report["job"]
    assert not report["job"].get("error"), report["job"]["error"]
    # Orthanc's own account of its STOW-RS request to us (plugin 1.7: a count as text)
    assert int(report["stowed"]["InstancesCount"]) == 4, report["stowed"]
    # the results joined the source study in Orthanc
    assert len(report["orthanc_studies"]) == 1
    series = by_modality(report)
    # SR, one SC per image (OT) and one presentation state per image (PR), all by STOW-RS
    assert sorted(series) == ["MG", "OT", "PR", "SR"], log[-4000:]
    uid = dcmread(report["sources"][0]).StudyInstanceUID
    assert report["study_instance_uid"] == uid
    for entry in report["series"]:
        assert {item["StudyInstanceUID"] for item in entry["instances"]} == {uid}


def test_what_orthanc_holds_is_what_the_service_wrote(stow_round_trip: Report) -> None:
    report, _ = stow_round_trip
    series = by_modality(report)
    processed = {
        image["sop_instance_uid"]
        for image in report["result"]["images"]
        if image["status"] == "processed"
    }
    assert processed
    written = Path(report["service_dicom"]).glob("studies/*/dicom")
    (folder,) = list(written)
    (sr_item,) = series["SR"]["instances"]
    assert sr_item["SOPClassUID"] == ComprehensiveSRStorage
    assert dcmread(sr_item["file"]) == dcmread(folder / "sr.dcm")
    scs = [dcmread(item["file"]) for item in series["OT"]["instances"]]
    assert {sc.SOPClassUID for sc in scs} == {SecondaryCaptureImageStorage}
    assert {sc.SourceImageSequence[0].ReferencedSOPInstanceUID for sc in scs} == processed
    ours = {ds.SOPInstanceUID: ds for ds in map(dcmread, sorted((folder / "sc").glob("*.dcm")))}
    for sc in scs:
        assert sc.PixelData == ours[sc.SOPInstanceUID].PixelData


def test_qido_rs_finds_the_results(stow_round_trip: Report) -> None:
    report, _ = stow_round_trip
    found = {
        entry["0020000E"]["Value"][0]: entry["00080060"]["Value"][0]
        for entry in report["qido_series"]
    }
    # the presentation states form one series per breast (series Laterality, PS3.3 C.7.3.1)
    assert sorted(found.values()) == ["MG", "OT", "PR", "PR", "SR"]
