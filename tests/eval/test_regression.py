"""The metric regression check's logic (:mod:`mammocad.eval.regression`) without the shipped
model: comparison against fabricated baselines, the baseline file, and one run of the
benchmark code on small phantoms with the untrained tiny bundle."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mammocad.eval.regression import (
    BENCHMARK_SPEC,
    METRICS,
    STUDY_AUC,
    Baseline,
    BenchmarkResult,
    bundle_identity,
    compare,
    default_tolerances,
    make_baseline,
    read_baseline,
    run_benchmark,
    same_bundle,
    write_baseline,
)
from mammocad.pipeline import Pipeline

SENS_1FP = "froc/malignant/sens@1fp"
CHECKED_IN = Path(__file__).resolve().parents[1] / "metrics" / "baseline.json"


def _result(**metrics: float) -> BenchmarkResult:
    counts = {"studies": 16, "positives": 7, "malignant_lesions": 20, "images": 64}
    return BenchmarkResult(spec=BENCHMARK_SPEC, metrics=metrics, counts=counts)


def test_a_baseline_above_the_measurement_is_a_regression() -> None:
    measured = {STUDY_AUC: 0.70, SENS_1FP: 0.40}
    baseline = {STUDY_AUC: 0.80, SENS_1FP: 0.40}
    (regression,) = compare(measured, baseline, {STUDY_AUC: 0.02, SENS_1FP: 0.05})
    assert regression.metric == STUDY_AUC
    assert (regression.measured, regression.baseline) == (0.70, 0.80)
    assert "0.7000 < baseline 0.8000" in str(regression)


def test_a_drop_within_tolerance_passes_one_beyond_fails() -> None:
    tolerances = {SENS_1FP: 0.05}  # one lesion of 20
    assert compare({SENS_1FP: 0.35}, {SENS_1FP: 0.40}, tolerances) == []
    assert compare({SENS_1FP: 0.30}, {SENS_1FP: 0.40}, tolerances) != []
    assert compare({SENS_1FP: 0.90}, {SENS_1FP: 0.40}, tolerances) == []  # better is fine


def test_a_missing_or_undefined_metric_is_a_regression() -> None:
    baseline = {STUDY_AUC: 0.5, SENS_1FP: 0.1}
    regressions = compare({STUDY_AUC: math.nan}, baseline, default_tolerances(_result()))
    assert [r.metric for r in regressions] == [STUDY_AUC, SENS_1FP]


def test_sensitivity_tolerance_is_one_lesion() -> None:
    tolerances = default_tolerances(_result())
    assert set(tolerances) == set(METRICS)
    assert tolerances[SENS_1FP] == pytest.approx(1 / 20)
    assert tolerances[STUDY_AUC] == pytest.approx(0.02)


def test_baseline_round_trip(tmp_path: Path, tiny_bundle: Path) -> None:
    result = _result(**dict.fromkeys(METRICS, 0.5))
    path = write_baseline(make_baseline(tiny_bundle, result), tmp_path / "baseline.json")
    loaded = read_baseline(path)
    assert loaded.result == result
    assert loaded.bundle["name"] == "tiny-test"
    assert len(loaded.bundle["sha256"]) == 64
    assert loaded.tolerances == default_tolerances(result)
    assert loaded.recorded and loaded.machine


def test_a_changed_classifier_is_another_bundle(tmp_path: Path, tiny_bundle: Path) -> None:
    from mammocad.fuse.bundle import copy_bundle
    from mammocad.malignancy.bundle import save_classifier
    from mammocad.malignancy.model import ClassifierConfig, LesionClassifier

    plain = bundle_identity(tiny_bundle)
    bundle = copy_bundle(tiny_bundle, tmp_path / "with-classifier")
    save_classifier(LesionClassifier(ClassifierConfig(crop_size=32, widths=(16, 32))), bundle)
    with_classifier = bundle_identity(bundle)
    assert with_classifier["sha256"] == plain["sha256"]
    assert "malignancy_sha256" in with_classifier
    assert same_bundle(plain, dict(plain, version="9.9"))
    assert not same_bundle(with_classifier, plain)


def test_a_changed_finding_threshold_is_another_bundle(tmp_path: Path, tiny_bundle: Path) -> None:
    """The threshold decides which findings the benchmark's FROC sees: a baseline recorded
    before it changed does not hold for the bundle after."""
    from dataclasses import replace

    from mammocad.detect.bundle import read_manifest, write_manifest
    from mammocad.fuse.bundle import copy_bundle

    bundle = copy_bundle(tiny_bundle, tmp_path / "lower")
    manifest = read_manifest(bundle)
    thresholds = {**manifest.thresholds, "finding_score": 0.01}
    write_manifest(bundle, replace(manifest, thresholds=thresholds))
    assert bundle_identity(bundle)["sha256"] == bundle_identity(tiny_bundle)["sha256"]
    assert not same_bundle(bundle_identity(bundle), bundle_identity(tiny_bundle))
    # so does the score from which the risk model counts findings (risk.json unchanged)
    counted = copy_bundle(tiny_bundle, tmp_path / "counted")
    write_manifest(counted, replace(manifest, risk={"finding_score": 0.5}))
    assert not same_bundle(bundle_identity(counted), bundle_identity(tiny_bundle))


def test_checked_in_baseline_is_complete() -> None:
    baseline = Baseline.from_dict(json.loads(CHECKED_IN.read_text(encoding="utf-8")))
    assert baseline.result.spec == BENCHMARK_SPEC
    assert set(baseline.result.metrics) == set(METRICS) == set(baseline.tolerances)
    assert len(baseline.bundle["sha256"]) == 64


@pytest.fixture
def tiny_pipeline(tiny_bundle: Path) -> Iterator[Pipeline]:
    threads = torch.get_num_threads()
    yield Pipeline.from_bundle(tiny_bundle, num_threads=1)
    torch.set_num_threads(threads)  # from_bundle sets it process-wide


def test_benchmark_runs_the_pipeline_and_repeats(tiny_pipeline: Pipeline) -> None:
    spec = "phantom:n=3,seed=950000,size=small,malignant_rate=0.5"
    first = run_benchmark(tiny_pipeline, spec)
    assert first.counts["studies"] == 3
    assert first.counts["images"] == 12
    assert 0 < first.counts["positives"] < 3
    assert first.counts["malignant_lesions"] > 0
    assert set(first.metrics) == set(METRICS)
    assert all(0.0 <= value <= 1.0 for value in first.metrics.values())
    assert run_benchmark(tiny_pipeline, spec) == first


def test_benchmark_needs_both_classes(tiny_pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="malignant and benign"):
        run_benchmark(tiny_pipeline, "phantom:n=1,seed=950000,size=small,malignant_rate=0")
