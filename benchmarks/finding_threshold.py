"""Detection score at which a bundle's findings make a given number of false positives per
image — how ``thresholds["finding_score"]`` and ``thresholds["findings_per_image"]`` of the
shipped bundle were chosen (docs/training.md, "0.5.2").

Two sources of detections:

* ``--model BUNDLE --data SPEC``: ``mammocad eval detector``'s path (the bundle's lesion
  classifier included), down to the config's score threshold;
* ``--results DIR`` with ``--mias DIR``, ``--phantoms DIR`` or ``--boxes CSV``: what an
  ``analyze`` run reported, matched to the truth as ``mammocad eval findings`` matches it —
  the findings users see (scores as ``result.json`` rounds them: 4 decimals, malignancy 2).
  Analyse with a copy of the bundle whose ``finding_score`` is low (0.05) and that has no
  ``findings_per_image``, so the findings reach below the threshold being chosen::

    .venv/bin/python benchmarks/finding_threshold.py --results runs/low/mias \\
        --mias ../shared/data/mini-mias --scores 0.47,0.35 --findings-per-image 3,4,5

A finding is a false positive when it hits no lesion (the FROC hit rule of
``mammocad.eval.froc``); findings of classes the truth does not annotate are left out, as in
the FROC. Prints, per FP rate, the score threshold and the lesions a finding above it hits;
``--scores`` adds the same at given thresholds, and ``--findings-per-image`` at each of them
with at most that many findings per image (the most suspicious), as ``thresholds.
findings_per_image`` reports them. Use validation data, never the held-out set.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

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
from mammocad.detect.predict import reported_mask
from mammocad.eval.froc import score_image

RATES = (0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class ScoredImage:
    """One image's findings (boxes, scores, malignancy, in descending score order) and
    lesions."""

    boxes: np.ndarray
    scores: np.ndarray
    malignancy: np.ndarray
    judged: np.ndarray  # per finding: of a class the truth annotates (else neither hit nor FP)
    truth: np.ndarray
    mass: np.ndarray  # per lesion
    malignant: np.ndarray  # per lesion

    @classmethod
    def of(
        cls,
        boxes: ArrayLike,
        scores: ArrayLike,
        malignancy: ArrayLike,
        truth: ArrayLike,
        judged: ArrayLike | None = None,
        **flags: ArrayLike,
    ) -> ScoredImage:
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        lesions = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
        none = np.zeros(len(lesions), dtype=bool)
        return cls(
            boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[order],
            scores=np.asarray(scores, dtype=np.float64)[order],
            malignancy=np.asarray(malignancy, dtype=np.float64)[order],
            judged=(
                np.ones(len(order), dtype=bool)
                if judged is None
                else np.asarray(judged, dtype=bool)[order]
            ),
            truth=lesions,
            mass=np.asarray(flags.get("mass", none), dtype=bool),
            malignant=np.asarray(flags.get("malignant", none), dtype=bool),
        )

    def reported(self, threshold: float, cap: int | None) -> np.ndarray:
        """Mask of the findings the detector would report with finding threshold
        ``threshold`` and per-image cap ``cap`` (its own rule, over every class)."""
        mask = reported_mask(
            torch.from_numpy(self.scores).float(),
            torch.from_numpy(self.malignancy).float(),
            floor=threshold,
            cap=cap,
        )
        return mask.numpy()


@dataclass
class Scored:
    images: list[ScoredImage] = field(default_factory=list)

    def false_positive_scores(self) -> np.ndarray:
        return np.concatenate(
            [score_image(i.boxes[i.judged], i.scores[i.judged], i.truth)[1] for i in self.images]
            or [np.zeros(0)]
        )

    def threshold_at(self, rate: float) -> float:
        """The lowest score that keeps the false positives at or below ``rate`` per image."""
        ranked = np.sort(self.false_positive_scores())[::-1]
        k = int(rate * len(self.images))
        # one float32 step above the first excluded score: reported_mask compares in float32,
        # where a float64 step would round back onto that score and keep it
        step = np.nextafter(np.float32(ranked[k]), np.float32(np.inf))
        return float(step) if k < len(ranked) else 0.0

    def print_row(self, head: str, threshold: float, cap: int | None = None) -> None:
        """False positives per image and lesions hit by the findings scoring ≥ ``threshold``
        (at most the ``cap`` most suspicious of each image)."""
        false_positives = 0
        hit, mass, malignant = [], [], []
        per_image: Counter[int] = Counter()
        for image in self.images:
            shown = image.reported(threshold, cap)
            per_image[int(shown.sum())] += 1
            kept = shown & image.judged  # classes the truth does not annotate: left out
            truth_scores, fps = score_image(image.boxes[kept], image.scores[kept], image.truth)
            false_positives += len(fps)
            hit.append(np.isfinite(truth_scores))
            mass.append(image.mass)
            malignant.append(image.malignant)
        found = np.concatenate(hit or [np.zeros(0, bool)])

        def share(mask: list[np.ndarray]) -> str:
            chosen = np.concatenate(mask or [np.zeros(0, bool)])
            return f"{int(found[chosen].sum())}/{int(chosen.sum())}"

        capped = "" if cap is None else f", at most {cap} per image"
        print(
            f"{head}: score >= {threshold:.3f}{capped}, "
            f"{false_positives / max(1, len(self.images)):.2f} FP/image, lesions hit "
            f"{int(found.sum())}/{len(found)}, masses {share(mass)}, malignant {share(malignant)}"
        )
        print(f"  images by number of findings: {dict(sorted(per_image.items()))}")


def from_model(model: Path, specs: Sequence[str], workers: int) -> Scored:
    run = detect_specs(model, [parse_spec(text) for text in specs], workers=workers)
    config = run.bundle.manifest.detector
    scored = Scored()
    for sample, found in run.results:
        target = sample.target
        lesion = target.labels != config.landmark_index
        labels = [config.classes[int(k)] for k in target.labels[lesion].tolist()]
        scored.images.append(
            ScoredImage.of(
                found.boxes.numpy(),
                found.scores.numpy(),
                found.malignancy.numpy(),
                target.boxes[lesion].numpy(),
                mass=[label == "mass" for label in labels],
            )
        )
    return scored


def from_results(results: Path, truth: FindingsTruth, only: set[str] | None = None) -> Scored:
    matched = match_images(results, truth)
    scored = Scored()
    for pred, image, keys in zip(matched.predictions, matched.truths, matched.keys, strict=True):
        if only is not None and not only.intersection(keys):
            continue
        judged = [truth.annotated is None or label in truth.annotated for label in pred.labels]
        flags = np.asarray([] if image.malignant is None else image.malignant).reshape(-1)
        scored.images.append(
            ScoredImage.of(
                pred.boxes,
                pred.scores,
                np.asarray(pred.malignancy, dtype=np.float64),
                image.boxes,
                judged=judged,
                mass=[label == "mass" for label in image.labels],
                malignant=flags == 1,
            )
        )
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
    parser.add_argument("--findings-per-image", default="", help="caps for --scores, e.g. 3,4,5")
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
    print(f"{len(scored.images)} images, {sum(len(i.truth) for i in scored.images)} lesions")
    for rate in RATES:
        scored.print_row(f"{rate:g} FP/image", scored.threshold_at(rate))
    caps = [None, *(int(text) for text in filter(None, args.findings_per_image.split(",")))]
    for text in filter(None, args.scores.split(",")):
        for cap in caps:
            scored.print_row("given", float(text), cap)


if __name__ == "__main__":
    main()
