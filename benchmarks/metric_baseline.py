"""Study AUC and malignant FROC of a bundle on the fixed phantom benchmark, against the baseline
that ``tests/metrics/test_metric_regression.py`` holds the shipped bundle to.

    .venv/bin/python benchmarks/metric_baseline.py           # measure; print beside the baseline
    .venv/bin/python benchmarks/metric_baseline.py --record  # write tests/metrics/baseline.json
    .venv/bin/python benchmarks/metric_baseline.py --model runs/x/mammocad-detector
    .venv/bin/python benchmarks/metric_baseline.py --spec phantom:n=25,seed=900000,size=full
        # the same measures on another phantom set (never with --record)

Record whenever models/mammocad-detector changes (the test fails on a bundle whose sha256
differs from the baseline's) or the benchmark itself changes; commit the baseline with the
bundle. About 2–3 minutes on two CPU cores (docs/study-metrics.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mammocad.commands.analyze import DEFAULT_MODEL_DIR
from mammocad.eval.regression import (
    BENCHMARK_SPEC,
    compare,
    format_rows,
    make_baseline,
    read_baseline,
    run_benchmark,
    write_baseline,
)
from mammocad.pipeline import Pipeline

BASELINE = Path(__file__).resolve().parents[1] / "tests" / "metrics" / "baseline.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="bundle folder")
    parser.add_argument("--record", action="store_true", help=f"write {BASELINE.name}")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="baseline file")
    parser.add_argument("--spec", default=BENCHMARK_SPEC, help="phantom spec to measure on")
    args = parser.parse_args(argv)
    if args.record and args.spec != BENCHMARK_SPEC:
        parser.error(f"--record is for the benchmark itself ({BENCHMARK_SPEC})")
    start = time.perf_counter()
    # one thread: the same sums in the same order every run, hence the same numbers
    result = run_benchmark(Pipeline.from_bundle(args.model, num_threads=1), args.spec)
    baseline = read_baseline(args.baseline) if args.baseline.is_file() else None
    print(f"{result.spec}: {result.counts} in {time.perf_counter() - start:.0f} s")
    print("\n".join(format_rows(result, baseline)))
    if args.record:
        recorded = make_baseline(args.model, result)
        write_baseline(recorded, args.baseline)
        print(f"recorded {args.baseline} for sha256 {recorded.bundle['sha256']}")
        return 0
    if baseline is None:
        print(f"no baseline at {args.baseline}: run with --record")
        return 1
    regressions = compare(result.metrics, baseline.result.metrics, baseline.tolerances)
    for regression in regressions:
        print(f"REGRESSION {regression}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
