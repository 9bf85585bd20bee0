"""Detection score at which a bundle makes a given number of false positives per image on a
validation set — how ``thresholds["finding_score"]`` of the shipped bundle was chosen
(docs/training.md, "Finding threshold").

    .venv/bin/python benchmarks/finding_threshold.py --model models/mammocad-detector \\
        --data phantom:n=12,seed=777000,size=full

Detections come from ``mammocad eval detector``'s path (the bundle's lesion classifier
included), down to the config's score threshold; a detection is a false positive when it hits
no lesion (the FROC hit rule of ``mammocad.eval.froc``). Prints, per FP rate, the score
threshold and how many lesions keep a hit above it. Use validation data, never the held-out set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mammocad.commands.evaluate import detect_specs
from mammocad.datasets.spec import parse_spec
from mammocad.eval.froc import score_image

RATES = (0.25, 0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", action="append", required=True, help="data spec (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    run = detect_specs(args.model, [parse_spec(text) for text in args.data], workers=args.workers)
    config, results = run.bundle.manifest.detector, run.results
    false_positives: list[float] = []
    hits: list[float] = []
    for sample, found in results:
        lesion = sample.target.labels != config.landmark_index
        truth_scores, fp_scores = score_image(
            found.boxes.numpy(), found.scores.numpy(), sample.target.boxes[lesion].numpy()
        )
        false_positives.extend(fp_scores.tolist())
        hits.extend(truth_scores[np.isfinite(truth_scores)].tolist())
    ranked = np.sort(np.asarray(false_positives))[::-1]
    count = len(results)
    print(f"{count} images, {len(ranked) / count:.1f} false positives per image above "
          f"{config.score_threshold}, {len(hits)} lesions hit")  # fmt: skip
    for rate in RATES:
        k = int(rate * count)
        threshold = float(ranked[k]) if k < len(ranked) else config.score_threshold
        kept = sum(score > threshold for score in hits)
        print(f"{rate:g} FP/image: score > {threshold:.3f} keeps {kept} of {len(hits)} hit lesions")


if __name__ == "__main__":
    main()
