"""How many anchors the region-proposal network learns each lesion from, per ``rpn_fg_iou``.

The RPN labels an anchor positive when it overlaps a truth box by at least ``rpn_fg_iou``, and
torchvision's matcher adds each truth's best anchor when none does. With anchors only 2–4× their
level's stride (torchvision's defaults are 8×), few anchors reach 0.7: most lesions are then
learnt from that one forced anchor. Prints, for the truth boxes of phantom studies (and
mini-MIAS films) in model-input pixels, the positive anchors per image and per truth::

    .venv/bin/python benchmarks/rpn_positives.py --model models/mammocad-detector \\
        --data phantom:n=40,seed=3000,size=full [--data mias:path=../shared/data/mini-mias] \\
        [--fg 0.7,0.6,0.5]

The anchors, sizes and matcher are the bundle's (``DetectorConfig``, ``MammoDetector``); only
``rpn_fg_iou`` changes. Counting only, no training (docs/detector.md, "Anchors and the
proposal matcher").
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from mammocad.datasets.spec import iter_samples, parse_spec
from mammocad.detect import DetectorConfig, MammoDetector
from mammocad.detect.bundle import load_bundle
from mammocad.preprocess import PreprocessParams


def anchors_of(model: MammoDetector) -> torch.Tensor:
    """Every anchor of the model input, ``[N, 4]``, as the bundle's RPN generates them."""
    config = model.config
    rows, cols = config.input_size
    features = [torch.zeros(1, 1, rows // s, cols // s) for s in config.feature_strides]
    image = ImageList(torch.zeros(1, config.in_channels, rows, cols), [(rows, cols)])
    return model.rpn.anchor_generator(image, features)[0]


def positives_per_truth(
    truths: list[tuple[list[str], torch.Tensor]], anchors: torch.Tensor, config: DetectorConfig
) -> tuple[list[int], dict[str, list[int]]]:
    """Positive anchors of each image and, per class, of each truth box."""
    matcher = det_utils.Matcher(
        config.rpn_fg_iou, config.rpn_bg_iou, allow_low_quality_matches=True
    )
    per_image: list[int] = []
    per_class: dict[str, list[int]] = defaultdict(list)
    for labels, boxes in truths:
        if not len(boxes):
            continue
        matched = matcher(box_iou(boxes, anchors))
        per_image.append(int((matched >= 0).sum()))
        for index, label in enumerate(labels):
            per_class[label].append(int((matched == index).sum()))
    return per_image, per_class


def print_sizes(truths: list[tuple[list[str], torch.Tensor]], anchors: torch.Tensor) -> None:
    """Per class the truth size √(w·h) in input pixels (5th / 50th / 95th percentile), and the
    median IoU of each truth with its best anchor."""
    sizes: dict[str, list[float]] = defaultdict(list)
    best: list[float] = []
    for labels, boxes in truths:
        if not len(boxes):
            continue
        side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
        for label, value in zip(labels, side.tolist(), strict=True):
            sizes[label].append(value)
        best += box_iou(boxes, anchors).max(dim=1).values.tolist()
    for label, values in sorted(sizes.items()):
        low, mid, high = np.percentile(values, [5, 50, 95])
        print(f"  {label:26s} size {low:.0f} / {mid:.0f} / {high:.0f} px (5th / 50th / 95th)")
    print(f"  median best-anchor IoU {np.median(best):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/mammocad-detector"))
    parser.add_argument("--data", action="append", required=True, help="data spec (repeat)")
    parser.add_argument("--fg", default="0.7,0.6,0.5", help="rpn_fg_iou values to compare")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    config = bundle.manifest.detector
    params = PreprocessParams.from_dict(bundle.manifest.preprocessing)
    truths = []
    for sample in iter_samples(
        [parse_spec(text) for text in args.data],
        classes=config.classes,
        params=params,
        workers=args.workers,
    ):
        labels = [config.classes[int(i)] for i in sample.target.labels]
        truths.append((labels, sample.target.boxes.to(torch.float32)))
    anchors = anchors_of(bundle.model)
    n_boxes = sum(len(boxes) for _, boxes in truths)
    print(f"{len(truths)} images, {n_boxes} truth boxes, {len(anchors)} anchors per image")
    print_sizes(truths, anchors)
    for fg in (float(value) for value in args.fg.split(",")):
        tried = replace(config, rpn_fg_iou=fg, rpn_bg_iou=min(config.rpn_bg_iou, fg))
        per_image, per_class = positives_per_truth(truths, anchors, tried)
        print(
            f"rpn_fg_iou {fg:g}: positive anchors per image with a truth: mean "
            f"{np.mean(per_image):.1f}, median {np.median(per_image):g} "
            f"(of {tried.rpn_batch_size_per_image} sampled)"
        )
        for label, counts in sorted(per_class.items()):
            values = np.asarray(counts)
            print(
                f"  {label:26s} {len(values):4d} truths: anchors per truth mean "
                f"{values.mean():.2f}, median {np.median(values):g}, exactly one "
                f"{np.mean(values == 1):.0%}"
            )


if __name__ == "__main__":
    main()
