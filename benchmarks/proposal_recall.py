"""Which stage loses the lesions: the region proposals, or the second stage that scores them?

For every truth lesion (the nipple left out) of the given data, in model-input pixels, prints
the share that one of the top-k proposals of the bundle's RPN overlaps (IoU ≥ 0.5 and ≥ 0.3),
and the share that a final detection overlaps at all (score ≥ the config's cut-off) and at the
bundle's finding threshold, per class and for malignant lesions::

    .venv/bin/python benchmarks/proposal_recall.py --model models/mammocad-detector \\
        --data phantom:n=25,seed=900000,size=full [--data mias:path=...,fold=0] [--top 100,300]
        [--proposals 1000]

A lesion the proposals miss cannot be found by the second stage; one they hold but the final
detections miss is lost to scoring. Held-out data only (docs/detector.md, "Anchors and the
proposal matcher").
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from mammocad.datasets.spec import iter_samples, parse_spec
from mammocad.detect.bundle import load_bundle
from mammocad.preprocess import PreprocessParams


def best_overlap(truth: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per truth box, its highest IoU with ``boxes`` (0 without any)."""
    if not len(boxes):
        return torch.zeros(len(truth))
    return box_iou(truth, boxes).max(dim=1).values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/mammocad-detector"))
    parser.add_argument("--data", action="append", required=True, help="data spec (repeat)")
    parser.add_argument("--top", default="100,300", help="proposal counts to look at")
    parser.add_argument(
        "--proposals", type=int, help="proposals kept for the second stage (default: the bundle's)"
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bundle = load_bundle(args.model)
    model, config = bundle.model.eval(), bundle.manifest.detector
    params = PreprocessParams.from_dict(bundle.manifest.preprocessing)
    if args.proposals:  # torchvision keeps the counts per mode in these two dicts
        model.rpn._post_nms_top_n["testing"] = args.proposals
        model.rpn._pre_nms_top_n["testing"] = max(args.proposals, config.rpn_pre_nms_top_n_test)
    threshold = float(bundle.manifest.thresholds.get("finding_score", config.score_threshold))
    tops = [int(k) for k in args.top.split(",")]
    hits: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    samples = iter_samples(
        [parse_spec(text) for text in args.data],
        classes=config.classes,
        params=params,
        workers=args.workers,
    )
    for sample in samples:
        lesion = sample.target.labels != config.landmark_index
        truth = sample.target.boxes[lesion].float()
        if not len(truth):
            continue
        with torch.no_grad():
            batch = model.batch_images([sample.image.float()])  # samples are kept as fp16
            features = model.backbone(batch.tensors)
            (proposals,), _ = model.rpn(batch, features, None)
            (found,), _ = model.roi_heads(features, [proposals], batch.image_sizes, None)
        names = [config.classes[int(i)] for i in sample.target.labels[lesion]]
        malignant = (sample.target.malignant[lesion] == 1).tolist()
        measures = {f"proposals top {k}, IoU 0.5": best_overlap(truth, proposals[:k]) >= 0.5
                    for k in tops}  # fmt: skip
        measures |= {f"proposals top {k}, IoU 0.3": best_overlap(truth, proposals[:k]) >= 0.3
                     for k in tops}  # fmt: skip
        measures["detections, IoU 0.3"] = best_overlap(truth, found.boxes) >= 0.3
        shown = found.boxes[found.scores >= threshold]
        measures[f"detections >= {threshold:g}, IoU 0.3"] = best_overlap(truth, shown) >= 0.3
        for measure, hit in measures.items():
            for name, is_malignant, one in zip(names, malignant, hit.tolist(), strict=True):
                hits[measure][name].append(one)
                hits[measure]["any lesion"].append(one)
                if is_malignant:
                    hits[measure]["malignant"].append(one)
    for measure, by_class in hits.items():
        cells = [f"{name} {np.mean(v):.2f} ({len(v)})" for name, v in sorted(by_class.items())]
        print(f"{measure:32s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
