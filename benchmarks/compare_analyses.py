"""Two ``analyze`` (or ``batch``) outputs of the same inputs compared: how many studies and
breasts got another probability, and how many findings and leading candidates each shows —
how a change of reporting rules (bundle 0.5.2, docs/training.md "0.5.2") was checked to leave
every probability as it was::

    .venv/bin/python benchmarks/compare_analyses.py runs/b051/mias runs/b052/mias

Probabilities are compared unrounded (``x_malignancy_probability_unrounded``) and as shown.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from mammocad.commands.eval_study import read_results


def _by_study(folder: Path) -> dict[str, dict[str, Any]]:
    return {result["study_instance_uid"]: result for result in read_results(folder)}


def _probabilities(result: dict[str, Any]) -> tuple[object, ...]:
    breasts = tuple(b.get("malignancy_probability") for b in result.get("breasts") or [])
    return (result.get("x_malignancy_probability_unrounded"), *breasts)


def _describe(name: str, results: dict[str, dict[str, Any]]) -> None:
    images = [image for result in results.values() for image in result.get("images") or []]
    per_image = Counter(len(image.get("findings") or []) for image in images)
    findings = sum(count * n for count, n in per_image.items())
    leading = sum(
        "x_leading_candidate" in breast
        for result in results.values()
        for breast in result.get("breasts") or []
    )
    print(
        f"{name}: {len(results)} studies, {len(images)} images, {findings} findings "
        f"({findings / max(1, len(images)):.2f} per image), {leading} leading candidates; "
        f"images by number of findings {dict(sorted(per_image.items()))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = _by_study(args.before), _by_study(args.after)
    shared = before.keys() & after.keys()
    changed = [uid for uid in shared if _probabilities(before[uid]) != _probabilities(after[uid])]
    print(
        f"{len(shared)} studies in both ({len(before.keys() ^ after.keys())} in one only); "
        f"{len(changed)} with another study or breast probability"
    )
    _describe("before", before)
    _describe("after", after)


if __name__ == "__main__":
    main()
