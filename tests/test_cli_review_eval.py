"""``eval study`` / ``calibrate`` on an output folder with a damaged or foreign result.json
(a run killed while writing, a file edited by hand): a usage error naming the file and what to
do, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammocad.cli import app


def _results(folder: Path, broken: str) -> Path:
    """Two results; the second's result.json is ``broken``."""
    for uid, probability in (("1.1", 0.2), ("1.2", 0.7)):
        (folder / uid).mkdir(parents=True)
        result = {"study_instance_uid": uid, "malignancy_probability": probability}
        (folder / uid / "result.json").write_text(json.dumps(result))
    damaged = folder / "1.2" / "result.json"
    damaged.write_text(broken)
    return damaged


@pytest.mark.parametrize(
    "broken",
    [
        '{"study_instance_uid": "1.2", "malignancy_prob',  # cut short
        "[]",  # JSON, but no result
        '{"status": "complete"}',  # an object without the result's identifiers
    ],
)
def test_eval_study_names_the_broken_result(tmp_path: Path, broken: str) -> None:
    damaged = _results(tmp_path / "results", broken)
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,label\n1.1,0\n1.2,1\n")

    outcome = CliRunner().invoke(
        app,
        ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels),
         "--out", str(tmp_path / "report"), "--bootstrap", "10"],
    )  # fmt: skip

    assert outcome.exit_code == 2, outcome.output
    assert isinstance(outcome.exception, SystemExit)  # no traceback
    assert str(damaged) in "".join(outcome.output.split())  # rich folds long paths
    assert "run mammocad analyze again" in " ".join(outcome.output.split())
