"""Two detectors on the same images: sensitivity of B minus A at each FP rate, with a paired
bootstrap interval over images (``mammocad.eval.froc_pool.compare_froc``); then the image-level
AUC of each model's strongest detection, images with a lesion against images without
(``strongest_detection``), and of its highest probability of a malignant lesion, images with
a malignant lesion against the rest (``strongest_malignant``), with B minus A and paired
intervals.

    .venv/bin/python benchmarks/froc_paired.py runs/eval-A runs/eval-B [--bootstrap 2000]
        [--mias ../shared/data/mini-mias]

The image-level intervals resample images unless ``--mias`` names the mini-MIAS folder the
images come from: then a woman's two films are drawn together (her films are related, and
resampling them apart gives intervals about 1/√2 as wide). Figures published before
2026-12-07 were by image. The strongest detection counts every class the model reports,
also classes the truth does not annotate (on mini-MIAS: lymph nodes, skin thickening), as a
breast score does; the FROC leaves those out.

Each argument is a folder ``mammocad eval detector --out`` wrote (it holds ``images.json``),
both over the same data. Each model is judged against its own truths, which are in the input
frame of its bundle (bundles of different input sizes put a lesion at other pixels); they must
be the same images and lesions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mammocad.datasets.mias import load_mias
from mammocad.eval.froc_pool import (
    IMAGES_FILE,
    compare_froc,
    load_froc_images,
    strongest_detection,
    strongest_malignant,
)
from mammocad.eval.study_metrics import paired_auc_difference, roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="evaluation folder of model A (the reference)")
    parser.add_argument("b", type=Path, help="evaluation folder of model B")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--mias", type=Path, help="mini-MIAS folder: resample patients, not films")
    args = parser.parse_args()
    a = load_froc_images(args.a / IMAGES_FILE)
    b = load_froc_images(args.b / IMAGES_FILE)
    differences = compare_froc(a, b, bootstrap=args.bootstrap)
    clusters = list(a.image_ids)
    if args.mias is not None:
        patients = {record.image_id: record.patient_id for record in load_mias(args.mias)}
        clusters = [patients.get(image_id, image_id) for image_id in a.image_ids]
    print(f"B − A: {args.b} − {args.a}, {len(a.image_ids)} images, paired 95% intervals")
    for diff in differences.values():
        cells = [
            f"{r:g}: {d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            for r, d, lo, hi in zip(
                diff.fp_rates, diff.difference, diff.ci_low, diff.ci_high, strict=True
            )
        ]
        print(f"{diff.name} ({diff.n_truths} truths)  " + "  ".join(cells))
    for name, strongest, what in (
        ("strongest detection", strongest_detection, "a lesion"),
        ("highest P(malignant lesion)", strongest_malignant, "a malignant lesion"),
    ):
        score_a, positive = strongest(a)
        by_id = dict(zip(b.image_ids, strongest(b)[0], strict=True))
        score_b = [by_id[image_id] for image_id in a.image_ids]
        if positive.all() or not positive.any():
            print(f"image level, {name}: no AUC (every image or none has {what})")
            continue
        delta, low, high = paired_auc_difference(
            score_b, score_a, positive, clusters, n_bootstrap=args.bootstrap
        )
        print(
            f"image level, {name}, {int(positive.sum())} images with {what} of "
            f"{len(positive)}: AUC A {roc_auc(score_a, positive):.3f}, "
            f"B {roc_auc(score_b, positive):.3f}, B − A {delta:+.3f} [{low:+.3f}, {high:+.3f}]"
            + (" (patients resampled)" if args.mias is not None else " (images resampled)")
        )


if __name__ == "__main__":
    main()
