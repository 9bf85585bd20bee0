"""Review of ``mammocad eval study`` / ``calibrate`` inputs: label files a site writes and
results folders with a study the service failed on."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.commands.eval_study import breast_labels_from_csv, labels_from_csv, read_results

MODEL = {
    "name": "mammocad-detector",
    "version": "0.5.2",
    "sha256": "0" * 64,
    "risk": {"suspicion_thresholds": {"intermediate": 0.2, "high": 0.5}},
}


def _result(uid: str, shown: float | None, raw: float | None = None) -> dict[str, object]:
    return {
        "study_instance_uid": uid,
        "status": "rejected" if shown is None else "complete",
        "malignancy_probability": shown,
        "x_malignancy_probability_unrounded": shown if raw is None else raw,
        "model": MODEL,
        "images": [{"status": "processed", "laterality": "R"}],
        "breasts": [],
    }


def _write(folder: Path, rows: list[tuple[str, float | None]]) -> None:
    for uid, shown in rows:
        (folder / uid).mkdir(parents=True)
        (folder / uid / "result.json").write_text(json.dumps(_result(uid, shown)))


def _eval_study(results: Path, labels: Path, out: Path) -> str:
    """``mammocad eval study`` on ``results``; its printed output (it must succeed)."""
    run = CliRunner().invoke(
        app,
        ["eval", "study", "--results", str(results), "--labels", str(labels),
         "--out", str(out), "--bootstrap", "10"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    return run.output


def test_a_study_listed_twice_is_malignant_when_any_row_says_so(tmp_path: Path) -> None:
    # one row per breast (or per finding) under the study's UID: the malignant row must not be
    # overwritten by the benign row that happens to follow it
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,label\n1.1,0\n1.2,1\n1.2,0\n1.3,0\n1.3,1\n")
    read = labels_from_csv(labels)
    assert [read[uid].malignant for uid in ("1.1", "1.2", "1.3")] == [False, True, True]
    breasts = tmp_path / "breasts.csv"
    breasts.write_text("study_instance_uid,laterality,label\n1.2,L,1\n1.2,L,0\n1.2,R,0\n")
    by_breast = breast_labels_from_csv(breasts)
    assert by_breast[("1.2", "L")].malignant and not by_breast[("1.2", "R")].malignant
    # rows of one study naming two groups: the study is "mixed", as a study whose breasts'
    # dataset labels name two groups is; a row without a group does not count against one
    grouped = tmp_path / "grouped.csv"
    grouped.write_text(
        "study_instance_uid,label,group\n1.1,0,dense\n1.1,0,fatty\n1.2,1,\n1.2,0,dense\n"
    )
    assert [labels_from_csv(grouped)[uid].group for uid in ("1.1", "1.2")] == ["mixed", "dense"]


def test_studies_without_a_group_are_no_second_all_group(tmp_path: Path) -> None:
    # a site fills in the density for some studies only: the others must not become a
    # subgroup called "all", which the CSV and the report already use for the whole set
    _write(tmp_path / "results", [(f"1.{k}", (k % 10) / 10 + 0.05) for k in range(20)])
    labels = tmp_path / "labels.csv"
    rows = ["study_instance_uid,label,group"]
    rows += [f"1.{k},{int(k % 10 >= 5)},{'dense' if k < 8 else ''}" for k in range(20)]
    labels.write_text("\n".join(rows) + "\n")
    out = tmp_path / "report"
    _eval_study(tmp_path / "results", labels, out)
    with (out / "study_metrics.csv").open() as handle:
        n_rows = [row for row in csv.DictReader(handle) if row["metric"] == "n"]
    assert [(row["group"], row["value"]) for row in n_rows] == [
        ("all", "20"),
        ("dense", "8"),
        ("unknown", "12"),
    ]


def test_a_study_the_service_failed_on_is_a_technical_defect(tmp_path: Path) -> None:
    # analyze / batch write no result.json for a study they failed on (an internal error);
    # summary.json lists it as rejected. It was sent and not answered for: the calibration
    # test must count it, as it counts a rejected study
    results = tmp_path / "results"
    _write(results, [(f"1.{k}", (k % 10) / 10 + 0.05) for k in range(10)])
    failed = {
        "study_instance_uid": "1.99",
        "status": "rejected",
        "malignancy_probability": None,
        "suspicion": None,
        "result": None,
    }
    # as analyze writes it: every study of the run, those done with the path of their result
    done = [
        {"study_instance_uid": f"1.{k}", "status": "complete", "result": f"1.{k}/result.json"}
        for k in range(10)
    ]
    summary = {"model": MODEL, "studies": [*done, failed], "inputs": []}
    (results / "summary.json").write_text(json.dumps(summary))
    assert any(r["study_instance_uid"] == "1.99" for r in read_results(results))
    labels = tmp_path / "labels.csv"
    rows = ["study_instance_uid,label"] + [f"1.{k},{int(k >= 5)}" for k in range(10)]
    labels.write_text("\n".join([*rows, "1.99,1"]) + "\n")
    output = " ".join(_eval_study(results, labels, tmp_path / "report").split())
    assert "1 rejected" in output
    # 11 labelled studies sent, 6 malignant, 1 defect
    assert "calibration test: 11 studies, 54.5% positive" in output
    assert "technical defects 9.1%" in output


def test_sensitivity_and_specificity_at_the_bundles_thresholds(tmp_path: Path) -> None:
    # the report must give both of the bundle's thresholds (intermediate 0.2, high 0.5), on
    # the probabilities users see: 1.1 shows 0.20 (unrounded 0.196), so it IS intermediate
    rows = [("1.1", 0.20, 0.196, 1), ("1.2", 0.60, 0.6, 1), ("1.3", 0.10, 0.1, 0)]
    rows += [("1.4", 0.30, 0.3, 0), ("1.5", 0.05, 0.05, 0)]
    for uid, shown, raw, _ in rows:
        (tmp_path / "results" / uid).mkdir(parents=True)
        (tmp_path / "results" / uid / "result.json").write_text(
            json.dumps(_result(uid, shown, raw))
        )
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "\n".join(["study_instance_uid,label", *(f"{r[0]},{r[3]}" for r in rows)]) + "\n"
    )
    out = tmp_path / "report"
    _eval_study(tmp_path / "results", labels, out)
    with (out / "study_metrics.csv").open() as handle:
        values = {
            row["metric"]: row["value"] for row in csv.DictReader(handle) if row["group"] == "all"
        }
    assert values["sensitivity@0.2"] == "1.0000" and values["specificity@0.2"] == "0.6667"
    assert values["sensitivity@0.5"] == "0.5000" and values["specificity@0.5"] == "1.0000"
    assert "| score ≥ 0.2 |" in (out / "study_metrics.md").read_text()


def test_only_the_studies_of_the_summarys_run_are_read(tmp_path: Path) -> None:
    """An analyze run into a folder of an earlier run's leaves that run's result.json of a
    study not among its inputs (and, before the fix, of one it failed on): eval read them as
    this run's. The summary lists the studies of its run: only those are read, a failed one
    as rejected whatever result.json an earlier run left for it."""
    results = tmp_path / "results"
    _write(results, [("1.1", 0.2), ("1.2", 0.8), ("1.8", 0.9), ("1.9", 0.1)])
    studies = [
        {"study_instance_uid": uid, "status": "complete", "result": f"{uid}/result.json"}
        for uid in ("1.1", "1.2")
    ]
    studies.append({"study_instance_uid": "1.8", "status": "rejected", "result": None})
    summary = {"model": MODEL, "studies": studies, "inputs": []}
    (results / "summary.json").write_text(json.dumps(summary))
    archive = tmp_path / "results.zip"  # a batch archive is read the same way
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(results.rglob("*.json")):
            handle.write(path, path.relative_to(results).as_posix())
    for source in (results, archive):
        read = {r["study_instance_uid"]: r["malignancy_probability"] for r in read_results(source)}
        assert read == {"1.1": 0.2, "1.2": 0.8, "1.8": None}
