"""Compute of one training step: the detector on lesion-centred windows vs backbone
pre-training on small windows (`mammocad train backbone`), so runs of the two can be compared
at equal compute (docs/training.md "Backbone pre-training").

    .venv/bin/python benchmarks/pretrain_cost.py
    .venv/bin/python benchmarks/pretrain_cost.py --crop 512 --batch 4 --patch 128 --patch-batch 64

Counts floating-point operations of one forward and backward pass with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; machine
independent) on full-size phantom views (one study, seed 8000), and times ``--repeat`` steps of
each on this machine (the fastest is the better estimate on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mammocad.datasets.spec import build_samples, parse_spec
from mammocad.detect import DetectorConfig, build_detector
from mammocad.preprocess import PreprocessParams
from mammocad.train.crops import LesionCropper
from mammocad.train.pretrain import PatchClassifier, PatchDraws, PatchSettings, masked_bce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=512, help="detector window side")
    parser.add_argument("--batch", type=int, default=4, help="detector windows per step")
    parser.add_argument("--patch", type=int, default=128, help="pre-training window side")
    parser.add_argument("--patch-batch", type=int, default=64, help="pre-training windows/step")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = DetectorConfig(roi_batch_size_per_image=128)
    samples = build_samples(
        [parse_spec("phantom:n=1,seed=8000,size=full")],
        classes=config.classes,
        params=PreprocessParams(input_size=config.input_size),
    )
    cropper = LesionCropper(
        size=(args.crop, args.crop), lesion_fraction=0.7, landmark=config.landmark_index
    )
    windows = [cropper(samples[i % len(samples)], seed=i) for i in range(args.batch)]
    detector = build_detector(config).train()

    def detector_step() -> None:
        output = detector([w.image.float() for w in windows], [w.target for w in windows])
        detector.zero_grad()
        output.total_loss().backward()

    classifier = PatchClassifier(config).train()
    draws = PatchDraws(
        samples,
        PatchSettings(size=args.patch, landmark=config.landmark_index),
        length=args.patch_batch,
        seed=0,
    )
    items = [draws[i] for i in range(len(draws))]
    patches, target, known = (torch.stack(column) for column in zip(*items, strict=True))

    def pretrain_step() -> None:
        classifier.zero_grad()
        masked_bce(classifier(patches), target, known).backward()

    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads")
    for name, step in (
        (f"detector, {args.batch} windows of {args.crop}²", detector_step),
        (f"backbone pre-training, {args.patch_batch} windows of {args.patch}²", pretrain_step),
    ):
        with FlopCounterMode(display=False) as counter:
            step()
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        print(
            f"{name}: {counter.get_total_flops() / 1e12:.2f} TFLOP per step (forward + "
            f"backward), fastest {min(times):.2f} s"
        )


if __name__ == "__main__":
    main()
