"""Images `mammocad analyze` refused, against the defects the phantoms' truth records.

    mammocad synth --studies 400 --seed 970000 --size full --defect-rate 0.05 \\
        --out runs/caltest/studies
    mammocad analyze runs/caltest/studies --out runs/caltest/analyze
    .venv/bin/python benchmarks/refusals.py runs/caltest/studies runs/caltest/analyze

Prints how many defective views there are (and in how many studies), how many of them were
refused, and which good views were refused, by rejection code, gate code and view
(docs/study-metrics.md "Every unfit view left out", docs/quality.md).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mammocad.synthetic import read_truth


def refused_sources(analysis: Path) -> dict[Path, str]:
    """Each refused input file of ``analyze``'s summary.json, with its rejection and the gate's
    codes (``unacceptable_quality (motion_blur)``)."""
    summary = json.loads((analysis / "summary.json").read_text(encoding="utf-8"))
    refused = {}
    for entry in summary["inputs"]:
        if entry["status"] == "rejected" and entry["source"]:
            text, code = entry["text"] or "", entry["rejection_code"]
            gate = text.split("(", 1)[1].split(")", 1)[0] if code == "unacceptable_quality" else ""
            refused[Path(entry["source"]).resolve()] = f"{code} ({gate})" if gate else code
    return refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", type=Path, help="folder `mammocad synth` wrote")
    parser.add_argument("analysis", type=Path, help="folder `mammocad analyze` wrote")
    args = parser.parse_args()
    refused = refused_sources(args.analysis)
    defective = caught = good = studies_with_defect = 0
    good_refused: Counter[str] = Counter()
    for truth_file in sorted(args.studies.glob("*/truth.json")):
        truth = read_truth(truth_file)
        views = truth.views
        studies_with_defect += any(view.defects for view in views)
        for view in views:
            source = (truth_file.parent / str(view.file_name)).resolve()
            if view.defects:
                defective += 1
                caught += source in refused
            else:
                good += 1
                if source in refused:
                    good_refused[f"{refused[source]}, {view.view.value}"] += 1
    print(f"defective views {defective} in {studies_with_defect} studies: {caught} refused")
    print(f"good views {good}: {sum(good_refused.values())} refused")
    for reason, count in good_refused.most_common():
        print(f"  {count:4d}  {reason}")


if __name__ == "__main__":
    main()
