"""Review: ``benchmarks/breast_recalibration.py`` on a small ``breasts.csv``.

The documented input is ``eval breasts`` on all 242 films; the same command's fold-0 output
(``eval breasts --fold 0``: 50 breasts, 7 malignant) ended in a traceback: on a random half of
25 patients the shipped probabilities can rank malignant breasts below the rest, and
``fit_calibrator`` refuses such a half (``CalibrationError``), and a film the pipeline rejected
(``p`` empty in breasts.csv) failed ``float("")``. A refused halving is left out and counted.
"""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FIELDS = ["image_id", "patient_id", "laterality", "density", "abnormal", "malignant", "p"]


def _write(path: Path, n_patients: int, *, inverted: bool) -> None:
    """Two breasts per patient; with ``inverted`` the malignant breasts score lowest."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for patient in range(n_patients):
            for side, malignant in (("R", patient % 2 == 0), ("L", False)):
                score = rng.uniform(0.05, 0.1) if malignant == inverted else rng.uniform(0.2, 0.3)
                writer.writerow(
                    [f"mdb{2 * patient + (side == 'L') + 1:03d}", f"p{patient:03d}", side,
                     "fatty", int(malignant), int(malignant), f"{score:.6f}"]
                )  # fmt: skip
        writer.writerow(["mdb999", "p999", "R", "fatty", 0, 0, ""])  # a rejected film


def _run(monkeypatch: pytest.MonkeyPatch, csv_path: Path) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", ["breast_recalibration.py", str(csv_path), "--halvings", "3"])
    module = importlib.import_module("breast_recalibration")
    try:
        module.main()
    finally:
        sys.modules.pop("breast_recalibration", None)


def test_refused_halvings_and_rejected_films_do_not_end_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "breasts.csv"
    _write(path, 40, inverted=True)
    _run(monkeypatch, path)
    out = capsys.readouterr().out
    assert "1 rejected breasts left out" in out
    assert "malignant: every halving refused by fit_calibrator" in out


def test_a_ranking_set_reports_every_halving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "breasts.csv"
    _write(path, 40, inverted=False)
    _run(monkeypatch, path)
    out = capsys.readouterr().out
    assert "mean of 3)" in out
    assert "refused" not in out
