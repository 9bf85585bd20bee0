"""The shipped bundle's study AUC and malignant FROC on the fixed phantom benchmark must not
fall below the recorded baseline (``baseline.json`` here) minus its tolerances.

The whole pipeline runs, DICOM reading to aggregation (:mod:`mammocad.eval.regression`), so a
change anywhere in it that costs accuracy fails here. About 2–3 minutes on two CPU cores: in
the default suite; ``pytest -m metrics`` runs it alone. A new bundle comes with its baseline::

    .venv/bin/python benchmarks/metric_baseline.py --record
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mammocad.commands.analyze import DEFAULT_MODEL_DIR
from mammocad.eval.regression import (
    Baseline,
    bundle_identity,
    compare,
    read_baseline,
    run_benchmark,
    same_bundle,
)
from mammocad.pipeline import Pipeline

pytestmark = pytest.mark.metrics

BASELINE = Path(__file__).with_name("baseline.json")
RECORD = "nice -n 10 .venv/bin/python benchmarks/metric_baseline.py --record"
#: what the benchmark's seed fixes; the metrics are comparable only while these stay the same
BENCHMARK_COUNTS = ("studies", "positives", "malignant_lesions", "images")


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    return read_baseline(BASELINE)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    threads = torch.get_num_threads()
    # one thread: the numbers repeat exactly (and two threads on two busy cores are slower)
    yield Pipeline.from_bundle(DEFAULT_MODEL_DIR, num_threads=1)
    torch.set_num_threads(threads)  # from_bundle sets it process-wide


def _require_baseline_bundle(shipped: dict[str, str], baseline: Baseline) -> None:
    if not same_bundle(shipped, baseline.bundle):
        pytest.fail(
            f"{DEFAULT_MODEL_DIR} ({shipped['name']} {shipped['version']}, sha256 "
            f"{shipped['sha256'][:12]}…) is not the bundle {BASELINE} was recorded for "
            f"({baseline.bundle['version']}, {baseline.bundle['sha256'][:12]}…). A new bundle "
            f"comes with its baseline: run `{RECORD}` and commit {BASELINE.name} with the bundle.",
            pytrace=False,
        )


def test_baseline_is_for_the_shipped_bundle(baseline: Baseline) -> None:
    _require_baseline_bundle(bundle_identity(DEFAULT_MODEL_DIR), baseline)


def test_shipped_bundle_holds_its_baseline(baseline: Baseline, pipeline: Pipeline) -> None:
    _require_baseline_bundle(bundle_identity(DEFAULT_MODEL_DIR), baseline)
    result = run_benchmark(pipeline, baseline.result.spec)
    expected = {key: baseline.result.counts[key] for key in BENCHMARK_COUNTS}
    counts = {key: result.counts[key] for key in BENCHMARK_COUNTS}
    assert counts == expected, (
        f"the phantom benchmark {result.spec} is no longer the one recorded (did mammocad."
        f"synthetic change?): metrics are not comparable; check, then run `{RECORD}`"
    )
    # calibration is reported beside the metrics (not held to the baseline)
    shown = result.calibration
    assert shown["share_malignant"] == pytest.approx(counts["positives"] / counts["studies"])
    assert 0.0 <= shown["study_ece"] <= 1.0 and 0.0 < shown["mean_probability"] < 1.0
    regressions = compare(result.metrics, baseline.result.metrics, baseline.tolerances)
    assert not regressions, "metric regression on the phantom benchmark:\n" + "\n".join(
        map(str, regressions)
    )
