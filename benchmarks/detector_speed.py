"""CPU inference time per view of candidate detector backbones (untrained weights), or of a
shipped bundle's whole detection stage.

    .venv/bin/python benchmarks/detector_speed.py                 # the default candidate table
    .venv/bin/python benchmarks/detector_speed.py --threads 2 --repeat 5 --channels-last
    .venv/bin/python benchmarks/detector_speed.py --bundle models/mammocad-detector --repeat 3

``--bundle`` times what a view costs with that bundle's trained weights on full-size phantom
views (seed 0, four views): preprocessing, detection as the pipeline runs it (detector, lesion
classifier on every candidate down to the risk model's candidate score) and the whole
``Pipeline.analyze`` of the study divided by its views.

Times one view at a time (batching views was slower on this kind of machine, see
shared/NOTES.md) under ``torch.inference_mode`` after one warm-up call, and reports the fastest
and the median of ``--repeat`` calls: on a shared machine the fastest is the better estimate of
what the code costs. Untrained weights give about the same work as trained ones because the RoI
stage always sees ``rpn_post_nms_top_n_test`` proposals.

Unless ``--keep-malloc`` is given the script re-runs itself with ``MALLOC_MMAP_MAX_=0`` and a
large ``MALLOC_TRIM_THRESHOLD_``: glibc otherwise returns large activation buffers to the kernel
after every layer and spends much of the time in page faults (NOTES.md: 1.6–2× at large inputs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from mammocad.detect import DetectorConfig, build_detector

_MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 34)}


@dataclass(frozen=True, kw_only=True)
class Case:
    backbone: str
    finest_stride: int
    size: tuple[int, int]


DEFAULT_CASES = (
    Case(backbone="mobilenet_v3_large", finest_stride=8, size=(1024, 832)),
    Case(backbone="resnet18", finest_stride=8, size=(1024, 832)),
    Case(backbone="resnet34", finest_stride=8, size=(1024, 832)),
    Case(backbone="resnet50", finest_stride=8, size=(1024, 832)),
    Case(backbone="resnet18", finest_stride=4, size=(1024, 832)),
    Case(backbone="resnet18", finest_stride=8, size=(2048, 1664)),
)


def measure(case: Case, *, repeat: int, channels_last: bool) -> tuple[float, float, float]:
    """(fastest s, median s, GFLOP) for one view of ``case``."""
    config = DetectorConfig(
        backbone=case.backbone, finest_stride=case.finest_stride, input_size=case.size
    )
    model = build_detector(config).eval()
    image = torch.rand(2, *case.size, generator=torch.Generator().manual_seed(0))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model([image])
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            model([image])
            times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), counter.get_total_flops() / 1e9


def measure_bundle(bundle: str, *, repeat: int, threads: int) -> None:
    """Per-view seconds (best, median over ``repeat`` passes) of the bundle's stages."""
    from mammocad.datasets.phantoms import view_image
    from mammocad.pipeline import Pipeline
    from mammocad.preprocess import preprocess_image
    from mammocad.structures import Study
    from mammocad.synthetic import generate_study

    pipeline = Pipeline.from_bundle(bundle, num_threads=threads)
    phantom = generate_study(seed=0, size="full")

    def study() -> Study:
        images = [view_image(view, source=f"view-{k}") for k, view in enumerate(phantom.views)]
        return Study(study_instance_uid=phantom.truth.study_instance_uid, images=images)

    items = [preprocess_image(image, pipeline.preprocessing) for image in study().images]
    pipeline.analyze(study())  # warm-up
    stages: dict[str, list[float]] = {"preprocess": [], "detect": [], "analyze": []}
    for _ in range(repeat):
        for image in study().images:
            start = time.perf_counter()
            preprocess_image(image, pipeline.preprocessing)
            stages["preprocess"].append(time.perf_counter() - start)
        for item in items:
            start = time.perf_counter()
            pipeline.detector.predict([item])
            stages["detect"].append(time.perf_counter() - start)
        start = time.perf_counter()
        pipeline.analyze(study())
        stages["analyze"].append((time.perf_counter() - start) / len(items))
    manifest = pipeline.detector.manifest
    print(
        f"# {manifest.name} {manifest.version}, candidates down to "
        f"{pipeline.detector.candidate_threshold}, {threads} threads, {len(items)} full-size "
        f"phantom views, {repeat} passes"
    )
    print(f"{'stage':<12} {'best s/view':>12} {'median s/view':>14}")
    for name, times in stages.items():
        print(f"{name:<12} {min(times):>12.2f} {statistics.median(times):>14.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--keep-malloc", action="store_true", help="do not tune glibc malloc")
    parser.add_argument("--only", help="comma-separated backbones to run (default: all)")
    parser.add_argument("--bundle", help="time this model bundle's stages instead")
    args = parser.parse_args()
    if not args.keep_malloc and any(os.environ.get(k) != v for k, v in _MALLOC_ENV.items()):
        # malloc reads these at process start, so they only work on a fresh process
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC_ENV})
    torch.set_num_threads(args.threads)
    if args.bundle:
        measure_bundle(args.bundle, repeat=args.repeat, threads=args.threads)
        return
    cases = DEFAULT_CASES
    if args.only:
        names = set(args.only.split(","))
        cases = tuple(case for case in cases if case.backbone in names)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {args.threads} threads, channels_last={args.channels_last}, "
        f"malloc tuned={not args.keep_malloc}"
    )
    print(
        f"{'backbone':<20} {'stride':>6} {'input':>11} {'GFLOP':>7} {'best s':>7} {'median s':>9}"
    )
    for case in cases:
        best, median, gflop = measure(case, repeat=args.repeat, channels_last=args.channels_last)
        size = f"{case.size[0]}x{case.size[1]}"
        print(
            f"{case.backbone:<20} {case.finest_stride:>6} {size:>11} {gflop:>7.1f} "
            f"{best:>7.2f} {median:>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
