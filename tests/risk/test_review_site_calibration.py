"""Review of per-site recalibration and study evaluation as a hospital's data team uses them:
``mammocad calibrate`` and ``mammocad eval study`` on results folders given the way sites
hand them over (zipped, the service's data dir), labels keyed by the wrong identifier,
results of another bundle with the same weights, and ``--out`` folders that cannot be used.

The results are written directly (no detector run): 24 studies, every third malignant, with
raw scores that rank the malignant ones higher, made by the tiny bundle's weights.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.detect.bundle import read_manifest

N_STUDIES = 24


def _write_site(folder: Path, bundle: Path, *, version: str | None = None) -> Path:
    """``folder/results/<study>/result.json`` for :data:`N_STUDIES` studies of ``bundle``'s
    weights (made by bundle ``version`` where given) and ``folder/labels.csv``; the results
    folder."""
    sha256 = read_manifest(bundle).sha256
    results, rows = folder / "results", ["study_instance_uid,label"]
    for k in range(N_STUDIES):
        uid, malignant = f"1.2.826.0.{k}", k % 3 == 0
        raw = 0.2 + 0.02 * k + (0.3 if malignant else 0.0) - (0.25 if k % 7 == 0 else 0.0)
        model: dict[str, Any] = {"sha256": sha256}
        if version is not None:
            model["version"] = version
        result = {
            "study_instance_uid": uid,
            "accession_number": f"ACC{k}",
            "status": "complete",
            "malignancy_probability": round(raw, 2),
            "x_malignancy_probability_unrounded": raw,
            "model": {
                **model,
                "risk": {"suspicion_thresholds": {"intermediate": 0.2, "high": 0.5}},
            },
            "images": [{"status": "processed", "laterality": "R"}],
        }
        (results / f"study-{k}").mkdir(parents=True)
        (results / f"study-{k}" / "result.json").write_text(json.dumps(result))
        rows.append(f"{uid},{int(malignant)}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return results


def _calibrate(results: Path, labels: Path, model: Path, out: Path) -> Any:
    return CliRunner().invoke(
        app,
        ["calibrate", "--results", str(results), "--labels", str(labels), "--model", str(model),
         "--out", str(out), "--method", "platt"],
    )  # fmt: skip


def _eval_study(results: Path, labels: Path, out: Path) -> Any:
    return CliRunner().invoke(
        app,
        ["eval", "study", "--results", str(results), "--labels", str(labels), "--out", str(out),
         "--bootstrap", "5"],
    )  # fmt: skip


def _said(run: Any) -> str:
    return " ".join(run.output.split())


def test_a_zip_of_the_output_folder_says_to_give_the_study_folders(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    # "Send to > Compressed folder" (or zip -r out.zip out/) puts every result.json two
    # folders down: it was read as no results at all, and calibrate asked for more labelled
    # studies when 24 were there
    results = _write_site(tmp_path, tiny_bundle)
    archive = tmp_path / "site-results.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(results.rglob("result.json")):
            handle.write(path, path.relative_to(tmp_path).as_posix())
    labels = tmp_path / "labels.csv"
    for run in (
        _calibrate(archive, labels, tiny_bundle, tmp_path / "site"),
        _eval_study(archive, labels, tmp_path / "report"),
    ):
        assert run.exit_code == 2, run.output
        said = _said(run)
        assert f"{N_STUDIES} result.json files" in said and "unzip it" in said
        assert "Add labelled studies" not in said
    assert not (tmp_path / "site").exists()


def test_the_services_data_dir_names_its_studies_folder(tiny_bundle: Path, tmp_path: Path) -> None:
    # the service keeps its results under DATA_DIR/studies/<study>/result.json
    data_dir = tmp_path / "data"
    _write_site(data_dir, tiny_bundle).rename(data_dir / "studies")
    labels = data_dir / "labels.csv"
    for run in (
        _calibrate(data_dir, labels, tiny_bundle, tmp_path / "site"),
        _eval_study(data_dir, labels, tmp_path / "report"),
    ):
        assert run.exit_code == 2, run.output
        assert f"give{data_dir / 'studies'}" in "".join(run.output.split())


def test_results_its_summary_does_not_list_are_said_to_be_an_earlier_runs(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    # an analyze of nothing into the site's results folder: its summary lists no study, so
    # the folders there are an earlier run's (read_results leaves them out), not misplaced
    results = _write_site(tmp_path, tiny_bundle)
    (results / "summary.json").write_text(json.dumps({"model": {}, "studies": [], "inputs": []}))
    run = _eval_study(results, tmp_path / "labels.csv", tmp_path / "report")
    assert run.exit_code == 2, run.output
    assert f"summary.json lists none of its {N_STUDIES} result.json files" in _said(run)


def test_labels_keyed_by_accession_number_say_so(tiny_bundle: Path, tmp_path: Path) -> None:
    # the site exported its accession numbers into the study_instance_uid column: no label
    # matches, and calibrate said "got 0 ... Add labelled studies" to a site with 24
    results = _write_site(tmp_path, tiny_bundle)
    by_accession = tmp_path / "by-accession.csv"
    rows = ["study_instance_uid,label", *(f"ACC{k},{int(k % 3 == 0)}" for k in range(N_STUDIES))]
    by_accession.write_text("\n".join(rows) + "\n")
    for run in (
        _calibrate(results, by_accession, tiny_bundle, tmp_path / "site"),
        _eval_study(results, by_accession, tmp_path / "report"),
    ):
        assert run.exit_code == 2, run.output
        said = _said(run)
        assert f"none of the {N_STUDIES} results is of a study the {N_STUDIES} labels name" in said
        assert "not its accession number" in said
        assert "Add labelled studies" not in said


def test_results_of_another_version_with_the_same_weights_are_refused(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    # bundles 0.5.2 and 0.5.3 share the detector's weights (sha256 b76988b3…) but not the
    # risk model that makes the raw scores: 0.5.2's results fitted 0.5.3's map silently
    results = _write_site(tmp_path / "old", tiny_bundle, version="0.0.0")
    run = _calibrate(results, tmp_path / "old" / "labels.csv", tiny_bundle, tmp_path / "site")
    assert run.exit_code == 2, run.output
    assert "another version of the bundle than --model" in _said(run)
    assert not (tmp_path / "site").exists()
    # calibrating keeps the uncalibrated score: a calibrated copy's results (+cal.) are of
    # this version, and the same results made by it calibrate
    results = _write_site(tmp_path / "copy", tiny_bundle, version="0.0.1+cal.20261201")
    run = _calibrate(results, tmp_path / "copy" / "labels.csv", tiny_bundle, tmp_path / "site")
    assert run.exit_code == 0, run.output
    assert f"{N_STUDIES} labelled studies (8 malignant)" in _said(run)


def test_labels_below_empty_rows_are_read(tiny_bundle: Path, tmp_path: Path) -> None:
    # an Excel sheet whose table starts on row 3, exported with ";" (a European locale), a
    # byte order mark and CRLF: the empty rows above the header were taken for the header,
    # and the file was refused for lacking the columns it has
    results = _write_site(tmp_path, tiny_bundle)
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    excel = tmp_path / "excel.csv"
    text = "\r\n".join([";", "", *(row.replace(",", ";") for row in rows)]) + "\r\n"
    excel.write_bytes(b"\xef\xbb\xbf" + text.encode())
    run = _calibrate(results, excel, tiny_bundle, tmp_path / "site")
    assert run.exit_code == 0, run.output
    assert f"{N_STUDIES} labelled studies (8 malignant)" in _said(run)
    run = _eval_study(results, excel, tmp_path / "report")
    assert run.exit_code == 0, run.output
    # an error still names the row a user counts in the file
    excel.write_bytes(b"\xef\xbb\xbf" + text.replace(";1\r\n", ";yes\r\n", 1).encode())
    run = _eval_study(results, excel, tmp_path / "report")
    assert run.exit_code == 2 and "row 4: label 'yes'" in _said(run)


def test_an_out_written_as_the_source_bundle_leaves_it_alone(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    # the copy is written as OUT.partial, cleared first: with the source bundle named so it
    # was deleted, then copying it failed with a traceback
    results = _write_site(tmp_path, tiny_bundle)
    source = Path(shutil.copytree(tiny_bundle, tmp_path / "site.partial"))
    run = _calibrate(results, tmp_path / "labels.csv", source, tmp_path / "site")
    assert run.exit_code == 2, run.output
    assert "the source bundle" in _said(run)
    assert read_manifest(source).sha256 == read_manifest(tiny_bundle).sha256


def test_an_out_that_cannot_be_written_is_said_without_a_traceback(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    results = _write_site(tmp_path, tiny_bundle)
    out = tmp_path / "labels.csv" / "site"  # under a file
    run = _calibrate(results, tmp_path / "labels.csv", tiny_bundle, out)
    assert run.exit_code == 2, run.output
    assert "cannot be written there" in _said(run)
