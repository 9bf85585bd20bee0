"""Breast-level mini-MIAS evaluation (``mammocad eval breasts``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.datasets.mias import load_mias
from mammocad.eval.mias_breasts import BreastRow, evaluate_breasts, select_fold

#: three patients: a benign pair (two masses on mdb005), a malignant mass (mdb023) beside a
#: normal film, a normal film beside a malignant calcification listed without coordinates
SUBSET = ("mdb005", "mdb006", "mdb023", "mdb024", "mdb215", "mdb216")


def _row(image_id: str, patient: str, *, abnormal: bool, malignant: bool, p: float | None):
    return BreastRow(
        image_id=image_id,
        patient_id=patient,
        laterality="R",
        density="fatty",
        abnormal=abnormal,
        malignant=malignant,
        probability=p,
    )


def test_both_tasks_rank_the_breast_probability() -> None:
    rows = [
        _row("a", "p1", abnormal=True, malignant=True, p=0.9),
        _row("b", "p1", abnormal=True, malignant=False, p=0.6),
        _row("c", "p2", abnormal=False, malignant=False, p=0.7),
        _row("d", "p3", abnormal=False, malignant=False, p=0.1),
        _row("e", "p3", abnormal=True, malignant=True, p=None),  # rejected: left out
    ]
    tasks = evaluate_breasts(rows, n_bootstrap=50)
    abnormal = tasks["abnormal_vs_normal"].metrics
    malignant = tasks["malignant_vs_rest"].metrics
    assert (abnormal.n, abnormal.n_positive, abnormal.n_patients) == (4, 2, 3)
    assert abnormal.auc.auc == pytest.approx(0.75)  # 0.6 is below the normal 0.7
    assert malignant.n_positive == 1
    assert malignant.auc.auc == pytest.approx(1.0)


def test_nothing_scored_is_an_error() -> None:
    rows = [_row("a", "p1", abnormal=True, malignant=True, p=None)]
    with pytest.raises(ValueError, match="rejected"):
        evaluate_breasts(rows)


def test_folds_partition_patients(shared_data: Path) -> None:
    records = load_mias(shared_data / "mini-mias")
    seen: dict[str, int] = {}
    total = 0
    for fold in range(5):
        chosen = select_fold(records, fold=fold)
        total += len(chosen)
        for record in chosen:
            assert seen.setdefault(record.patient_id, fold) == fold
    assert total == len(records)
    with pytest.raises(ValueError, match="fold"):
        select_fold(records, fold=5)


def test_cli_writes_labelled_breast_rows(
    shared_data: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    source = shared_data / "mini-mias"
    subset = tmp_path / "mias"
    subset.mkdir()
    rows = [
        line
        for line in (source / "Info.txt").read_text(encoding="ascii").splitlines()
        if line.split()[:1] and line.split()[0] in SUBSET
    ]
    (subset / "Info.txt").write_text("\n".join(rows) + "\n", encoding="ascii")
    for ref in SUBSET:  # links, not copies: the licence keeps the films where the user has them
        (subset / f"{ref}.png").symlink_to(source / f"{ref}.png")
    out = tmp_path / "out"

    result = CliRunner().invoke(
        app,
        ["eval", "breasts", "--model", str(tiny_bundle), "--mias", str(subset),
         "--out", str(out), "--bootstrap", "20", "--threads", "1"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    with (out / "breasts.csv").open(newline="") as handle:
        table = {row["image_id"]: row for row in csv.DictReader(handle)}
    assert set(table) == set(SUBSET)
    assert table["mdb005"]["patient_id"] == table["mdb006"]["patient_id"]
    assert (table["mdb005"]["abnormal"], table["mdb005"]["malignant"]) == ("1", "0")
    assert (table["mdb023"]["abnormal"], table["mdb023"]["malignant"]) == ("1", "1")
    assert (table["mdb216"]["abnormal"], table["mdb216"]["malignant"]) == ("1", "1")
    assert (table["mdb024"]["abnormal"], table["mdb215"]["abnormal"]) == ("0", "0")
    assert (table["mdb005"]["laterality"], table["mdb006"]["laterality"]) == ("R", "L")
    for row in table.values():
        assert row["p"] == "" or 0.0 <= float(row["p"]) <= 1.0
    report = (out / "malignant_vs_rest.md").read_text()
    assert "mini-MIAS breast level" in report
    assert (out / "abnormal_vs_normal.csv").is_file()


def test_an_auc_without_its_interval_is_printed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --bootstrap 0: the interval is [nan, nan], which Rich took for a style tag and dropped
    # from the printed line without a word (eval study prints it since its own fix)
    import mammocad.eval.mias_breasts as mias_breasts
    from mammocad.eval.mias_breasts import MiasBreastEvaluation
    from mammocad.pipeline import Pipeline

    rows = [
        _row("a", "p1", abnormal=True, malignant=True, p=0.9),
        _row("b", "p2", abnormal=False, malignant=False, p=0.2),
        _row("c", "p3", abnormal=True, malignant=False, p=0.6),
        _row("d", "p4", abnormal=False, malignant=False, p=0.1),
    ]
    evaluation = MiasBreastEvaluation(rows=rows, tasks=evaluate_breasts(rows, n_bootstrap=0))
    monkeypatch.setattr(Pipeline, "from_bundle", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(mias_breasts, "evaluate_mias_breasts", lambda *a, **k: evaluation)
    result = CliRunner().invoke(
        app,
        ["eval", "breasts", "--model", str(tmp_path), "--mias", str(tmp_path),
         "--out", str(tmp_path / "out"), "--bootstrap", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "AUC 1.000 [nan, nan] (2 positive of 4)" in " ".join(result.output.split())
