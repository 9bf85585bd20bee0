"""Detection score at which a bundle's findings make a given number of false positives per
image — how ``thresholds["finding_score"]`` of the shipped bundle was chosen (docs/training.md,
"Finding threshold").

Two sources of detections:

* ``--model BUNDLE --data SPEC``: ``mammocad eval detector``'s path (the bundle's lesion
  classifier included), down to the config's score threshold;
* ``--results DIR`` with ``--mias DIR``, ``--phantoms DIR`` or ``--boxes CSV``: what an
  ``analyze`` run reported, matched to the truth as ``mammocad eval findings`` matches it —
  the findings users see. Analyse with a copy of the bundle whose ``finding_score`` is low
  (0.05) so the findings reach below the threshold being chosen::

    .venv/bin/python benchmarks/finding_threshold.py --results runs/low/mias \\
        --mias ../shared/data/mini-mias --scores 0.47,0.35

A finding is a false positive when it hits no lesion (the FROC hit rule of
``mammocad.eval.froc``); findings of classes the truth does not annotate are left out, as in
the FROC. Prints, per FP rate, the score threshold and the lesions a finding above it hits;
``--scores`` adds the same at given thresholds. Use validation data, never the held-out set.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mammocad.commands.eval_findings import (
    FindingsTruth,
    match_images,
    truth_from_boxes,
    truth_from_mias,
    truth_from_phantoms,
)
from mammocad.commands.evaluate import detect_specs
from mammocad.datasets.mias import load_mias, patient_folds
from mammocad.datasets.spec import parse_spec
from mammocad.eval.froc import score_image

RATES = (0.25, 0.5, 1.0, 2.0)


@dataclass
class Scored:
    """Per image pooled: the score of each false positive, the best hitting score of each
    lesion (``-inf`` missed) and which lesions are masses / malignant."""

    images: int = 0
    false_positives: list[float] = field(default_factory=list)
    lesions: list[float] = field(default_factory=list)
    mass: list[bool] = field(default_factory=list)
    malignant: list[bool] = field(default_factory=list)

    def add(self, boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray) -> None:
        hit, fp = score_image(boxes, scores, truth)
        self.images += 1
        self.false_positives.extend(fp.tolist())
        self.lesions.extend(hit.tolist())

    def print_row(self, head: str, threshold: float) -> None:
        """False positives per image and lesions hit by a finding scoring ≥ ``threshold``."""
        fps = np.asarray(self.false_positives)
        hits = np.asarray(self.lesions) >= threshold

        def share(mask: Sequence[bool]) -> str:
            chosen = np.asarray(mask, dtype=bool)
            return f"{hits[chosen].sum()}/{chosen.sum()}" if len(chosen) else "-"

        print(
            f"{head}: score >= {threshold:.3f}, {(fps >= threshold).sum() / self.images:.2f} "
            f"FP/image, lesions hit {share([True] * len(hits))}, masses {share(self.mass)}, "
            f"malignant {share(self.malignant)}"
        )

    def threshold_at(self, rate: float) -> float:
        """The lowest score that keeps the false positives at or below ``rate`` per image."""
        ranked = np.sort(np.asarray(self.false_positives))[::-1]
        k = int(rate * self.images)
        return float(np.nextafter(ranked[k], np.inf)) if k < len(ranked) else 0.0


def from_model(model: Path, specs: Sequence[str], workers: int) -> Scored:
    run = detect_specs(model, [parse_spec(text) for text in specs], workers=workers)
    landmark = run.bundle.manifest.detector.landmark_index
    scored = Scored()
    for sample, found in run.results:
        lesion = sample.target.labels != landmark
        scored.add(found.boxes.numpy(), found.scores.numpy(), sample.target.boxes[lesion].numpy())
    return scored


def from_results(results: Path, truth: FindingsTruth, only: set[str] | None = None) -> Scored:
    matched = match_images(results, truth)
    scored = Scored()
    for pred, image, keys in zip(matched.predictions, matched.truths, matched.keys, strict=True):
        if only is not None and not only.intersection(keys):
            continue
        judged = [truth.annotated is None or label in truth.annotated for label in pred.labels]
        boxes = np.asarray(pred.boxes, dtype=np.float64).reshape(-1, 4)[judged]
        scored.add(boxes, np.asarray(pred.scores)[judged], np.asarray(image.boxes).reshape(-1, 4))
        scored.mass.extend(label == "mass" for label in image.labels)
        flags = np.asarray([] if image.malignant is None else image.malignant).reshape(-1)
        scored.malignant.extend(bool(flag == 1) for flag in flags)
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="bundle (with --data)")
    parser.add_argument("--data", action="append", default=[], help="data spec (repeatable)")
    parser.add_argument("--results", type=Path, help="analyze output (with a truth option)")
    truth = parser.add_mutually_exclusive_group()
    truth.add_argument("--mias", type=Path, help="mini-MIAS folder (Info.txt)")
    truth.add_argument("--phantoms", type=Path, help="phantom studies (truth.json)")
    truth.add_argument("--boxes", type=Path, help="lesion boxes CSV (as eval findings reads)")
    parser.add_argument("--mias-fold", type=int, help="only this patient-level fold of 5")
    parser.add_argument("--scores", default="", help="also print these thresholds, e.g. 0.47,0.35")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.results is not None:
        if args.mias:
            truth_of = truth_from_mias(args.mias)
        elif args.phantoms:
            truth_of = truth_from_phantoms(args.phantoms)
        elif args.boxes:
            truth_of = truth_from_boxes(args.boxes)
        else:
            parser.error("--results needs --mias, --phantoms or --boxes")
        only = None
        if args.mias_fold is not None:
            if not args.mias:
                parser.error("--mias-fold needs --mias")
            records = load_mias(args.mias)
            folds = patient_folds(records, folds=5)
            only = {r.image_id for r, k in zip(records, folds, strict=True) if k == args.mias_fold}
        scored = from_results(args.results, truth_of, only)
    elif args.model is not None and args.data:
        scored = from_model(args.model, args.data, args.workers)
    else:
        parser.error("give --model with --data, or --results with a truth option")
    print(f"{scored.images} images, {len(scored.lesions)} lesions")
    for rate in RATES:
        scored.print_row(f"{rate:g} FP/image", scored.threshold_at(rate))
    for text in filter(None, args.scores.split(",")):
        scored.print_row("given", float(text))


if __name__ == "__main__":
    main()
