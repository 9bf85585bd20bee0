"""Where the detector puts the nipple, as a share of the breast's depth from its chest wall.

    .venv/bin/python benchmarks/nipple_depth.py [--data DIR] [--model BUNDLE] [--list N]

DIR defaults to ``$MAMMOCAD_SHARED_DATA`` or ``../shared/data`` beside the project. Runs the
pipeline on the 242 mini-MIAS films, the 8 CBIS-DDSM DICOMs and the WG04 MG1 MLO, and for each
image where the detector reports a nipple prints its depth (:func:`mammocad.pipeline.nipple_depth`:
0 at the breast box's chest-wall side, 1 at its front edge) beside the outline estimate's. A
nipple lies at the front of the breast: the pipeline keeps the detector's only at
``NIPPLE_MIN_DEPTH`` or more. ``--list N`` names the N shallowest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _shared_data import PROJECT_ROOT, default_data_dir

import mammocad.pipeline as pipeline_module
from mammocad.io import iter_studies
from mammocad.pipeline import NIPPLE_MIN_DEPTH, Pipeline, nipple_depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models/mammocad-detector")
    parser.add_argument("--list", type=int, default=8)
    args = parser.parse_args()
    inputs = [
        args.data / "mini-mias",
        args.data / "cbis-ddsm-sample",
        args.data / "dicom-samples" / "wg04-mg1",
    ]
    rows: list[tuple[float, float | None, str]] = []
    keep = pipeline_module._prefer_detected_nipples

    def record(preprocessed, predictions):  # type: ignore[no-untyped-def]
        for key, prediction in predictions.items():
            prepared = preprocessed.get(key)
            if prediction.nipple is None or prepared is None:
                continue
            estimate = prepared.nipple
            rows.append(
                (
                    nipple_depth(prepared, prediction.nipple),
                    None if estimate is None else nipple_depth(prepared, estimate),
                    Path(str(prepared.image.source)).name,
                )
            )
        keep(preprocessed, predictions)

    pipeline_module._prefer_detected_nipples = record
    pipeline = Pipeline.from_bundle(args.model, num_threads=2)
    for study in iter_studies([path for path in inputs if path.exists()]):
        pipeline.analyze(study)
    depths = np.array([depth for depth, _, _ in rows])
    below = int((depths < NIPPLE_MIN_DEPTH).sum())
    kept = depths[depths >= NIPPLE_MIN_DEPTH]
    print(
        f"{len(rows)} images with a detected nipple; depth percentiles 1/5/50: "
        f"{np.percentile(depths, [1, 5, 50]).round(2).tolist()}; below {NIPPLE_MIN_DEPTH}: "
        f"{below}; the shallowest kept: {kept.min():.2f}"
    )
    for depth, estimate, name in sorted(rows)[: args.list]:
        shown = "none" if estimate is None else f"{estimate:.2f}"
        print(f"  {name}: detector {depth:.2f}, outline estimate {shown}")


if __name__ == "__main__":
    main()
