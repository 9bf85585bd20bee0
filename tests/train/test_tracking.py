"""MLflow tracking (local file store) and the progress display."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mammocad.train import TrackingConfig
from mammocad.train.progress import TrainProgress
from mammocad.train.tracking import MlflowTracker, NullTracker, open_tracker

MlflowClient = pytest.importorskip("mlflow.tracking", reason="tracking needs MLflow").MlflowClient


def test_tracker_logs_and_a_resumed_run_appends(tmp_path: Path) -> None:
    config = TrackingConfig(tracking_uri=str(tmp_path / "mlruns"), experiment="unit", run_name="r")
    tracker = open_tracker(config)
    assert isinstance(tracker, MlflowTracker) and tracker.run_id
    tracker.log_params({"detector": {"backbone": "resnet18", "sizes": [1, 2]}, "seed": 3})
    tracker.log_metrics({"train/loss": 2.0}, step=1)
    (tmp_path / "note.txt").write_text("x")
    tracker.log_artifact(tmp_path / "note.txt", artifact_path="eval")
    again = open_tracker(config, run_id=tracker.run_id)  # what a resumed training does
    again.log_metrics({"train/loss": 1.0}, step=2)
    again.finish()
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run = client.get_run(tracker.run_id)
    assert run.data.params == {
        "detector.backbone": "resnet18",
        "detector.sizes": "[1, 2]",
        "seed": "3",
    }
    history = client.get_metric_history(tracker.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0)]
    assert run.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(tracker.run_id, "eval")] == ["eval/note.txt"]


def test_disabled_tracking_does_nothing() -> None:
    tracker = open_tracker(TrackingConfig(enabled=False))
    assert isinstance(tracker, NullTracker) and tracker.run_id is None
    tracker.log_metrics({"x": 1.0}, step=1)
    tracker.finish(failed=True)


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_reports_each_epoch(enabled: bool, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="mammocad.train"),
        TrainProgress(enabled=enabled, total_epochs=2) as progress,
    ):
        progress.start_epoch(0, batches=2)
        progress.advance(1.5)
        progress.advance(1.0)
        progress.end_epoch(0, {"train/loss": 1.25, "train/lr": 0.1, "val/mass/mean_sens": 0.5})
    assert "epoch 1/2: train/loss 1.2500, val/mass/mean_sens 0.5000" in caplog.text
