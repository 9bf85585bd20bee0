"""``mammocad train fusion`` end to end on the tiny bundle and small phantoms: cache reused,
bundle copy with fusion weights, the source bundle untouched."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.fuse import load_fusion

DATA = "phantom:n=2,seed=5,size=small,malignant_rate=1.0"
VAL = "phantom:n=1,seed=6,size=small,malignant_rate=1.0"


def test_train_fusion_writes_a_bundle_copy_and_reuses_its_cache(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in tiny_bundle.iterdir()}
    args = ["train", "fusion", "--model", str(tiny_bundle), "--data", DATA, "--val", VAL]
    args += ["--out", str(tmp_path), "--epochs", "2", "--bootstrap", "5", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        first = CliRunner().invoke(app, [*args, "--candidate-score", "0.0"])
        assert first.exit_code == 0, first.output
        cached = sorted(tmp_path.glob("cache/*/study-*.npz"))
        assert len(cached) == 3
        stamps = [path.stat().st_mtime_ns for path in cached]
        again = CliRunner().invoke(app, [*args, "--candidate-score", "0.0"])
        assert again.exit_code == 0, again.output
    finally:
        torch.set_num_threads(threads)
    assert [path.stat().st_mtime_ns for path in cached] == stamps  # read, not recomputed
    assert "cached" in again.output
    loaded = load_fusion(tmp_path / "bundle")
    assert loaded is not None and loaded.candidate_score == 0.0
    report = json.loads((tmp_path / "fusion_report.json").read_text("utf-8"))
    assert report["training_data"]["train_breasts"] == 4
    assert set(report["metrics"]) == {
        "val_breast_auc/fused",
        "val_breast_auc/single_view",
        "val_breast_auc/single_view_candidates",
    }
    assert {p.name: p.read_bytes() for p in tiny_bundle.iterdir()} == before


def test_non_phantom_data_is_a_usage_error(tiny_bundle: Path, tmp_path: Path) -> None:
    args = ["train", "fusion", "--model", str(tiny_bundle), "--data", "mias:path=x"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "phantom" in result.output
