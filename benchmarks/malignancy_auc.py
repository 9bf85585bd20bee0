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
from torchvision.ops import box_iou

from mammocad.commands.evaluate import detect_specs
from mammocad.datasets.spec import parse_spec
from mammocad.eval.study_metrics import roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", action="append", required=True, help="data spec (repeatable)")
    parser.add_argument("--head", action="store_true", help="ignore the lesion classifier")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    run = detect_specs(
        args.model,
        [parse_spec(text) for text in args.data],
        workers=args.workers,
        score_threshold=0.001,
        detections_per_image=100,
        use_classifier=not args.head,
    )
    config, results = run.bundle.manifest.detector, run.results
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
    source = "detector head" if run.classifier is None else "lesion classifier"
    print(f"{len(y)} hit lesions ({int(y.sum())} malignant), malignancy from the {source}")
    if 0 < y.sum() < len(y):
        print(f"AUC {roc_auc(p, y):.3f}; mean malignant {p[y == 1].mean():.3f}, "
              f"benign {p[y == 0].mean():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
