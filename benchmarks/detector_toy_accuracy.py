"""Train each candidate backbone on the toy set and compare validation FROC and training time.

    PYTHONPATH=src python benchmarks/detector_toy_accuracy.py --size 512 416 --train 480 \
        --val 120 --epochs 8 --backbones mobilenet_v3_large,resnet18,resnet34

Meant for a GPU (CUDA with AMP) and runs with only torch, torchvision, numpy and OpenCV:
augmentation turns itself off without albumentations, tracking is off. The toy set
(:mod:`mammocad.train.toy`: blobs for masses, dot clusters for calcifications) checks that a
backbone can learn small bright structures from scratch in a fixed budget; it is not a
mammography benchmark. Prints one row per run and writes ``--json`` if asked.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import torch

from mammocad.detect import DetectorConfig
from mammocad.train import BundleSpec, TrackingConfig, TrainConfig, make_toy_samples, train_detector

KEYS = (
    "any_lesion/mean_sens",
    "calcification/mean_sens",
    "mass/mean_sens",
    "malignant/sens_at_0.25fp",
    "malignant/mean_sens",
)


def run(args: argparse.Namespace, backbone: str, stride: int, output: Path) -> dict[str, float]:
    size = (args.size[0], args.size[1])
    train = make_toy_samples(args.train, size=size, seed=1)
    val = make_toy_samples(args.val, size=size, seed=2)
    config = DetectorConfig(backbone=backbone, finest_stride=stride, input_size=size)
    settings = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=50,
        augment=importlib.util.find_spec("albumentations") is not None and not args.no_augment,
        validate_every=0,
        froc_bootstrap=0,
        progress=False,
        amp_dtype=args.amp_dtype,
        tracking=TrackingConfig(enabled=False),
    )
    start = time.perf_counter()
    result = train_detector(
        detector_config=config,
        train_config=settings,
        train_data=train,
        val_data=val,
        output_dir=output / f"{backbone}-s{stride}",
        bundle=BundleSpec(name=f"toy-{backbone}", version="0", preprocessing={}),
    )
    seconds = time.perf_counter() - start
    report = result.report
    metrics = {"seconds": seconds, "final_loss": result.history[-1]["train/loss"]}
    if report is not None:
        for curve in report.curves.values():
            metrics[f"{curve.name}/mean_sens"] = curve.mean_sensitivity
            for rate, value in zip(curve.fp_rates, curve.sensitivity_at, strict=True):
                metrics[f"{curve.name}/sens_at_{rate:g}fp"] = float(value)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenet_v3_large,resnet18,resnet34")
    parser.add_argument("--strides", default="8", help="finest FPN strides to try, e.g. 8,4")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 416))
    parser.add_argument("--train", type=int, default=480)
    parser.add_argument("--val", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--amp-dtype", default="auto", choices=("auto", "float16", "bfloat16"))
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"# {device}, torch {torch.__version__}, {args.train} train / {args.val} val images "
        f"of {args.size[0]}x{args.size[1]}, {args.epochs} epochs, batch {args.batch_size}"
    )
    print(
        f"{'backbone':<20} {'stride':>6} {'s':>7} {'loss':>6} " + " ".join(f"{k:>24}" for k in KEYS)
    )
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for backbone in args.backbones.split(","):
            for stride in (int(s) for s in args.strides.split(",")):
                metrics = run(args, backbone, stride, Path(scratch))
                results[f"{backbone}-s{stride}"] = metrics
                print(
                    f"{backbone:<20} {stride:>6} {metrics['seconds']:>7.1f} "
                    f"{metrics['final_loss']:>6.3f} "
                    + " ".join(f"{metrics.get(k, float('nan')):>24.3f}" for k in KEYS),
                    flush=True,
                )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "device": device,
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
