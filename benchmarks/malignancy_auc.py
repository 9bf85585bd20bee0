"""How well a bundle's malignancy separates malignant from benign lesions that it found: for each
lesion with known pathology, the malignancy of the best-overlapping detection (IoU ≥ 0.3),
then the ROC-AUC over those lesions. The figure behind docs/malignancy.md's "AUC 0.46 of the
detector head" (bundle 0.2.0, ``--head``) and the classifier's effect.

    .venv/bin/python benchmarks/malignancy_auc.py --model models/mammocad-detector \\
        --data phantom:n=10,seed=900000,size=full [--head]

``--head`` ignores the bundle's lesion classifier (the detector head's own malignancy).
Detections down to score 0.001, 100 per image, so a lesion counts when any candidate hits it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from mammocad.datasets.spec import build_samples, parse_spec
from mammocad.detect.bundle import load_bundle
from mammocad.eval.study_metrics import roc_auc
from mammocad.malignancy.bundle import load_classifier
from mammocad.preprocess import PreprocessParams
from mammocad.train.validate import detect_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", action="append", required=True, help="data spec (repeatable)")
    parser.add_argument("--head", action="store_true", help="ignore the lesion classifier")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    config = bundle.manifest.detector
    bundle.model.roi_heads.score_thresh = 0.001
    bundle.model.roi_heads.detections_per_img = 100
    classifier = None if args.head else load_classifier(args.model, bundle.manifest)
    samples = build_samples(
        [parse_spec(text) for text in args.data],
        classes=config.classes,
        params=PreprocessParams.from_dict(bundle.manifest.preprocessing),
        workers=args.workers,
    )
    results = detect_dataset(
        bundle.model,
        samples,
        device=torch.device("cpu"),
        classifier=None if classifier is None else classifier.model,
    )
    labels: list[int] = []
    malignancy: list[float] = []
    for sample, found in results:
        target = sample.target
        known = (target.labels != config.landmark_index) & (target.malignant >= 0)
        if not bool(known.any()) or len(found) == 0:
            continue
        overlap = box_iou(target.boxes[known], found.boxes)
        best, index = overlap.max(dim=1)
        for hit, k, label in zip(best, index, target.malignant[known], strict=True):
            if float(hit) >= 0.3:
                labels.append(int(label))
                malignancy.append(float(found.malignancy[k]))
    y, p = np.array(labels), np.array(malignancy)
    source = "detector head" if classifier is None else "lesion classifier"
    print(f"{len(y)} hit lesions ({int(y.sum())} malignant), malignancy from the {source}")
    if 0 < y.sum() < len(y):
        print(f"AUC {roc_auc(p, y):.3f}; mean malignant {p[y == 1].mean():.3f}, "
              f"benign {p[y == 0].mean():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
