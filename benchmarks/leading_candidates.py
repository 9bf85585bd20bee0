"""How often a breast's probability is driven by a box below the finding threshold, and what
that box is: counts of the breasts' ``x_leading_candidate`` in ``mammocad analyze`` results of
phantom studies, against the phantoms' truth (docs/risk.md "Leading candidate").

    .venv/bin/python benchmarks/leading_candidates.py runs/caltest/analyze \
        --phantoms runs/caltest/studies

A candidate is on a lesion by the FROC hit rule (IoU ≥ 0.3 or its centre inside the truth
box, :func:`mammocad.eval.froc.hit_matrix`) on the same image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mammocad.eval.froc import hit_matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="analyze output: */result.json")
    parser.add_argument("--phantoms", type=Path, required=True, help="synth output: */truth.json")
    args = parser.parse_args()
    truths = {}
    for path in args.phantoms.glob("*/truth.json"):
        truth = json.loads(path.read_text(encoding="utf-8"))
        truths[truth["study_instance_uid"]] = truth
    names = ("breasts", "raised", "high", "leading", "in_malignant_breast", "on_lesion")
    counts = dict.fromkeys((*names, "on_malignant"), 0)
    for path in sorted(args.results.glob("*/result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        truth = truths[result["study_instance_uid"]]
        malignant = {b["laterality"]: b["malignant"] for b in truth["breasts"]}
        thresholds = result["model"]["risk"]["suspicion_thresholds"]
        for breast in result["breasts"]:
            probability = breast["malignancy_probability"]
            if probability is None:
                continue
            counts["breasts"] += 1
            counts["raised"] += probability >= thresholds["intermediate"]
            candidate = breast.get("x_leading_candidate")
            if candidate is None:
                continue
            counts["leading"] += 1
            counts["high"] += probability >= thresholds["high"]
            counts["in_malignant_breast"] += malignant[breast["laterality"]]
            lesions = truth["images"][candidate["sop_instance_uid"]]["lesions"]
            hits = hit_matrix([candidate["box"]], [lesion["box"] for lesion in lesions])
            found = [lesion for lesion, hit in zip(lesions, hits[0], strict=True) if hit]
            counts["on_lesion"] += bool(found)
            counts["on_malignant"] += any(lesion["malignant"] for lesion in found)
    print(
        f"{counts['breasts']} breasts, {counts['raised']} intermediate or high; "
        f"{counts['leading']} with a leading candidate below the finding threshold "
        f"({counts['high']} of them high), {counts['in_malignant_breast']} in malignant breasts; "
        f"the box is on a lesion {counts['on_lesion']} times, on a malignant one "
        f"{counts['on_malignant']} times"
    )


if __name__ == "__main__":
    main()
