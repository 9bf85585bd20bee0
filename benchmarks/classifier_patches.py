"""A bundle's lesion classifier on a patch file cut by ``mammocad train malignancy`` (its
``OUT/patches/<key>.pt``): the validation AUCs that run reports, for any classifier — how
docs/malignancy.md compares the 0.3.0 and 0.4.0 classifiers on the same hard-negative patches.

    .venv/bin/python benchmarks/classifier_patches.py --model models/mammocad-detector \
        --patches runs/malignancy-hard/patches/<validation key>.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mammocad.detect.bundle import read_manifest
from mammocad.malignancy.bundle import load_classifier
from mammocad.malignancy.patches import load_patches
from mammocad.malignancy.train import validation_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle with a classifier")
    parser.add_argument("--patches", type=Path, required=True, help="patch file (.pt)")
    args = parser.parse_args()
    classifier = load_classifier(args.model, read_manifest(args.model))
    if classifier is None:
        raise SystemExit(f"{args.model} has no lesion classifier")
    metrics = validation_metrics(classifier.model, load_patches(str(args.patches)))
    for name, value in metrics.items():
        print(f"{name:24s} {value:.3f}")


if __name__ == "__main__":
    main()
