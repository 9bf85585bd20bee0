"""``mammocad calibrate`` end to end: analyse phantom studies with the tiny bundle, calibrate a
copy of it on their labels, analyse again with the copy and check what result.json shows.

The untrained tiny bundle scores every study about 0.93 (bunched, the seed team's problem), so
the labels are made from the scores — the two highest are "malignant" — to give the fit a
signal; phantom truth gives the patient ids. Four studies keep the test fast, so the minimum
study counts are lowered for it; the refusals with the real minimums are tested in
test_calibration.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mammocad.risk.calibration as calibration_module
from mammocad.cli import app
from mammocad.commands.eval_study import labels_from_phantoms
from mammocad.detect.bundle import read_manifest
from mammocad.report.schema import validation_errors
from mammocad.risk import CALIBRATION_FILE, SuspicionThresholds, load_calibration
from mammocad.synthetic import write_studies


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    studies: Path
    results: Path  # `mammocad analyze` output of the source bundle
    labels: Path  # CSV in the `eval study` format


def _results(folder: Path) -> dict[str, dict[str, Any]]:
    found = (json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json")))
    return {result["study_instance_uid"]: result for result in found}


def _analyze(studies: Path, out: Path, model: Path) -> None:
    result = CliRunner().invoke(
        app, ["analyze", str(studies), "--out", str(out), "--model", str(model), "--threads", "1"]
    )
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def site(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    write_studies(n_studies=4, out_dir=root / "studies", seed=11, size="small")
    _analyze(root / "studies", root / "before", tiny_bundle)
    results = _results(root / "before")
    ranked = sorted(results, key=lambda uid: results[uid]["x_malignancy_probability_unrounded"])
    patients = labels_from_phantoms(root / "studies")
    lines = ["study_instance_uid,label,patient_id"]
    lines += [
        f"{uid},{int(rank >= 2)},{patients[uid].patient_id}" for rank, uid in enumerate(ranked)
    ]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return Site(studies=root / "studies", results=root / "before", labels=root / "labels.csv")


def _calibrate(site: Site, model: Path, out: Path) -> Any:
    return CliRunner().invoke(
        app,
        ["calibrate", "--results", str(site.results), "--labels", str(site.labels),
         "--model", str(model), "--out", str(out), "--method", "platt"],
    )  # fmt: skip


def test_calibrate_then_analyze_shows_calibrated_probabilities(
    site: Site, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calibration_module, "MIN_STUDIES", 4)
    monkeypatch.setattr(calibration_module, "MIN_PER_CLASS", 2)
    source_manifest = (tiny_bundle / "manifest.json").read_text()
    new = tmp_path / "site-bundle"
    run = _calibrate(site, tiny_bundle, new)
    assert run.exit_code == 0, run.output
    output = " ".join(run.output.split())
    for text in ("4 labelled studies (2 malignant)", "AUC", "ECE", "Brier", "lost to rounding"):
        assert text in output
    assert "intermediate" in output and "high" in output

    # the source is untouched; the copy has the same weights and sha256, and its calibration
    assert (tiny_bundle / "manifest.json").read_text() == source_manifest
    assert not (tiny_bundle / CALIBRATION_FILE).exists()
    assert (new / "weights.pt").read_bytes() == (tiny_bundle / "weights.pt").read_bytes()
    manifest = read_manifest(new)
    assert manifest.sha256 == read_manifest(tiny_bundle).sha256
    assert manifest.version.startswith("0.0.1+cal.")
    thresholds = SuspicionThresholds.from_manifest(manifest.thresholds)
    assert thresholds.from_bundle
    recorded = json.loads((new / CALIBRATION_FILE).read_text())
    assert recorded["operating_points"]["high"]["threshold"] == thresholds.high
    assert recorded["fitted_on"] == {"n_studies": 4, "n_positive": 2}
    assert "## Calibration" in (new / "MODEL_CARD.md").read_text()
    calibrator = load_calibration(new)
    assert calibrator is not None
    # the bundle had no breast map: the site's map serves the study and the breasts
    assert (new / "study_calibration.json").read_bytes() == (new / CALIBRATION_FILE).read_bytes()

    _analyze(site.studies, tmp_path / "after", new)
    before, after = _results(site.results), _results(tmp_path / "after")
    assert after.keys() == before.keys()
    for uid, result in after.items():
        assert validation_errors(result) == []
        raw = result["x_malignancy_probability_uncalibrated"]
        assert raw == pytest.approx(before[uid]["x_malignancy_probability_unrounded"], abs=1e-6)
        shown = round(float(calibrator.apply(raw)), 2)
        assert result["malignancy_probability"] == shown
        category = thresholds.category(shown)
        assert category is not None and result["suspicion"] == category.value
        assert result["model"]["risk"]["calibrated"] is True
        assert result["model"]["version"] == manifest.version
        codes = {message["code"] for message in result["messages"]}
        assert "uncalibrated_probability" not in codes
        breasts = [b["malignancy_probability"] for b in result["breasts"]]
        assert max(p for p in breasts if p is not None) == shown  # calibrated like the study
    # the malignant studies now show higher probabilities than the benign ones
    labels = dict(line.split(",")[:2] for line in site.labels.read_text().splitlines()[1:])
    malignant = [after[uid]["malignancy_probability"] for uid in after if labels[uid] == "1"]
    benign = [after[uid]["malignancy_probability"] for uid in after if labels[uid] == "0"]
    assert min(malignant) > max(benign)

    # recalibrating the calibrated bundle on its own results fits the uncalibrated scores
    # again: the same map, and one version suffix
    again = Site(studies=site.studies, results=tmp_path / "after", labels=site.labels)
    run = _calibrate(again, new, tmp_path / "site-bundle-2")
    assert run.exit_code == 0, run.output
    second = load_calibration(tmp_path / "site-bundle-2")
    assert second is not None
    assert (second.slope, second.intercept) == pytest.approx(
        (calibrator.slope, calibrator.intercept)
    )
    assert read_manifest(tmp_path / "site-bundle-2").version.count("+cal.") == 1


def test_refuses_to_overwrite(site: Site, tiny_bundle: Path, tmp_path: Path) -> None:
    run = _calibrate(site, tiny_bundle, tiny_bundle)
    assert run.exit_code == 2
    assert "source bundle" in run.output
    (tmp_path / "taken").mkdir()
    assert _calibrate(site, tiny_bundle, tmp_path / "taken").exit_code == 2


def test_refuses_too_few_studies_with_the_numbers(
    site: Site, tiny_bundle: Path, tmp_path: Path
) -> None:
    run = _calibrate(site, tiny_bundle, tmp_path / "new")
    assert run.exit_code == 2
    assert "at least 20 labelled studies" in " ".join(run.output.split())
    assert not (tmp_path / "new").exists()


def test_refuses_results_of_other_weights(tiny_bundle: Path, tmp_path: Path) -> None:
    study = tmp_path / "results" / "1.2.3"
    study.mkdir(parents=True)
    result = {"study_instance_uid": "1.2.3", "malignancy_probability": 0.5,
              "x_malignancy_probability_unrounded": 0.5, "model": {"sha256": "0" * 64}}  # fmt: skip
    (study / "result.json").write_text(json.dumps(result))
    (tmp_path / "labels.csv").write_text("study_instance_uid,label\n1.2.3,1\n")
    site = Site(studies=tmp_path, results=tmp_path / "results", labels=tmp_path / "labels.csv")
    run = _calibrate(site, tiny_bundle, tmp_path / "new")
    assert run.exit_code == 2
    assert "other weights" in run.output


def test_the_site_map_replaces_the_bundles_breast_map_so_it_can_lower_the_study(
    site: Site, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Site labels are per study, and a study is never shown below its highest breast: a
    breast map kept from the source bundle (here a Platt map giving every score about 0.57
    and up, as a map fitted on studies far more often malignant than a screening site's
    does) would be a floor the site's map could not go under. The site's map serves both."""
    import shutil

    from mammocad.risk import STUDY_CALIBRATION_FILE, CalibrationMethod, Calibrator
    from mammocad.risk.calibration import save_calibration

    monkeypatch.setattr(calibration_module, "MIN_STUDIES", 4)
    monkeypatch.setattr(calibration_module, "MIN_PER_CLASS", 2)
    source = Path(shutil.copytree(tiny_bundle, tmp_path / "with-breast-map"))
    breast_map = Calibrator(method=CalibrationMethod.PLATT, slope=0.5, intercept=0.3)
    save_calibration(breast_map, source)
    run = _calibrate(site, source, tmp_path / "site-bundle")
    assert run.exit_code == 0, run.output
    new = tmp_path / "site-bundle"
    study_map = load_calibration(new, STUDY_CALIBRATION_FILE)
    assert study_map is not None and study_map.n_studies == 4
    assert (new / CALIBRATION_FILE).read_bytes() == (new / STUDY_CALIBRATION_FILE).read_bytes()

    _analyze(site.studies, tmp_path / "after", new)
    labels = dict(line.split(",")[:2] for line in site.labels.read_text().splitlines()[1:])
    for uid, result in _results(tmp_path / "after").items():
        raw = result["x_malignancy_probability_uncalibrated"]
        shown = round(float(study_map.apply(raw)), 2)
        assert result["malignancy_probability"] == shown
        if labels[uid] == "0":  # the site's benign studies go below the old floor
            assert shown < round(float(breast_map.apply(raw)), 2)
        breasts = [b["malignancy_probability"] for b in result["breasts"]]
        assert max(p for p in breasts if p is not None) == shown


def test_calibrate_on_a_datasets_breast_labels(
    site: Site, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same four studies labelled per patient and breast, as public datasets' label files
    are (here a site's own ``patient_id,laterality,label``): a study is malignant when a
    breast is."""
    monkeypatch.setattr(calibration_module, "MIN_STUDIES", 4)
    monkeypatch.setattr(calibration_module, "MIN_PER_CLASS", 2)
    results = _results(site.results)
    malignant = {
        line.split(",")[0] for line in site.labels.read_text().splitlines()[1:] if ",1," in line
    }
    rows = ["patient_id,laterality,label"]
    for uid, result in results.items():
        rows += [f"{result['x_patient_id']},R,{int(uid in malignant)}"]
        rows += [f"{result['x_patient_id']},L,0"]
    breasts = tmp_path / "breasts.csv"
    breasts.write_text("\n".join(rows) + "\n")
    run = CliRunner().invoke(
        app,
        ["calibrate", "--results", str(site.results), "--dataset-labels", str(breasts),
         "--model", str(tiny_bundle), "--out", str(tmp_path / "new"), "--method", "platt"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "4 labelled studies (2 malignant)" in " ".join(run.output.split())
    both = CliRunner().invoke(
        app,
        ["calibrate", "--results", str(site.results), "--dataset-labels", str(breasts),
         "--labels", str(site.labels), "--model", str(tiny_bundle), "--out", str(tmp_path / "x")],
    )  # fmt: skip
    assert both.exit_code == 2 and "exactly one of --labels" in both.output


#: how the source bundle of the tests below describes its maps, as 0.5.2 does
SOURCE_MAP = "isotonic, fitted on 800 studies (150 malignant)"


def _calibrate_shipped(tiny_bundle: Path, tmp_path: Path) -> tuple[Any, Path, str]:
    """Calibrate, on eight made-up results, a copy of the tiny bundle given what a shipped
    bundle has: a risk section, thresholds, and card sections other commands wrote;
    (the outcome, the source copy, its card before)."""
    import shutil
    from dataclasses import replace

    from mammocad.commands.calibrate import run_calibrate
    from mammocad.commands.eval_study import StudyLabel
    from mammocad.detect.bundle import set_card_section, write_manifest
    from mammocad.risk import CalibrationMethod

    source = Path(shutil.copytree(tiny_bundle, tmp_path / "shipped"))
    manifest = replace(
        read_manifest(source),
        thresholds={"finding_score": 0.35, "intermediate": 0.23, "high": 0.53},
        risk={
            "model_file": "risk.json",
            "calibration": SOURCE_MAP,
            "study_calibration": SOURCE_MAP,
        },
    )
    write_manifest(source, manifest)
    card = (
        (source / "MODEL_CARD.md")
        .read_text()
        .replace(
            "- Thresholds: none recorded.",
            "- Thresholds: finding_score: 0.35 (findings); intermediate: 0.23; high: 0.53 (study).",
        )
    )
    (source / "MODEL_CARD.md").write_text(card)
    set_card_section(source, "Risk model", [f"Calibration `calibration.json`: {SOURCE_MAP}."])
    set_card_section(source, "Held-out evaluation", ["Measured on 400 studies."])
    source_card = (source / "MODEL_CARD.md").read_text()
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    results = [
        {"study_instance_uid": f"1.{k}", "malignancy_probability": round(score, 2),
         "x_malignancy_probability_unrounded": score, "model": {"sha256": manifest.sha256}}
        for k, score in enumerate(scores)
    ]  # fmt: skip
    labels = {f"1.{k}": StudyLabel(malignant=k in (3, 6, 7), patient_id=f"p{k}") for k in range(8)}
    outcome = run_calibrate(
        results_dir=tmp_path, labels=labels, model=source, out=tmp_path / "site",
        method=CalibrationMethod.PLATT, version="0.5.2+cal.20261208", results=results,
    )  # fmt: skip
    return outcome, source, source_card


def test_the_new_card_keeps_the_sources_sections(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calibrated copy's card keeps the sections other commands wrote (classifier, risk
    model, held-out evaluation), with its own version and thresholds, the site's map named
    where the card describes the calibrations, and one Calibration section."""
    monkeypatch.setattr(calibration_module, "MIN_STUDIES", 4)
    monkeypatch.setattr(calibration_module, "MIN_PER_CLASS", 2)
    outcome, source, source_card = _calibrate_shipped(tiny_bundle, tmp_path)
    assert (source / "MODEL_CARD.md").read_text() == source_card
    new_card = (tmp_path / "site" / "MODEL_CARD.md").read_text()
    site_map = outcome.calibrator.describe()
    assert new_card.startswith("# tiny-test 0.5.2+cal.20261208\n")
    for kept in ("## Held-out evaluation\n\nMeasured on 400 studies.", "## Risk model", "(study)"):
        assert kept in new_card
    assert new_card.count("## Calibration\n") == 1
    assert f"Calibration `calibration.json`: {site_map}." in new_card
    assert SOURCE_MAP not in new_card
    points = outcome.operating_points
    assert f"intermediate: {points.intermediate.threshold}; " in new_card
    assert f"high: {points.high.threshold} (study)" in new_card


def test_the_new_manifest_describes_the_site_map(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calibration.json and study_calibration.json of the copy are the site's map: the
    manifest's risk section says so, not what the source bundle's maps were fitted on."""
    monkeypatch.setattr(calibration_module, "MIN_STUDIES", 4)
    monkeypatch.setattr(calibration_module, "MIN_PER_CLASS", 2)
    outcome, source, _ = _calibrate_shipped(tiny_bundle, tmp_path)
    site_map = outcome.calibrator.describe()
    assert site_map == "platt, fitted on 8 studies (3 malignant)"
    assert read_manifest(tmp_path / "site").risk == {
        "model_file": "risk.json", "calibration": site_map, "study_calibration": site_map
    }  # fmt: skip
    assert read_manifest(source).risk["calibration"] == SOURCE_MAP  # the source untouched
