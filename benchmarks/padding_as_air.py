"""Padding that stands in for the air (background suppression, e.g. GE Senographe FOR
PRESENTATION with Pixel Padding Value 0): every mini-MIAS film with the air outside its tissue
mask set to ``--fill`` and marked as padding, preprocessed again and compared with the film as
stored (docs/preprocessing.md, "Steps").

    .venv/bin/python benchmarks/padding_as_air.py [--data ../shared/data/mini-mias] [--fill 0 1]

Prints, per fill value, the films preprocessing refused, the films whose chest-wall side
changed, and the smallest and mean tissue IoU with the unpadded result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mammocad.errors import PreprocessError
from mammocad.io import read_raster
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import ViewPosition

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared/data/mini-mias")
    parser.add_argument("--fill", type=float, nargs="+", default=[0.0, 1.0])
    args = parser.parse_args()
    params = PreprocessParams()
    paths = sorted(args.data.glob("mdb*.png"))
    for fill in args.fill:
        refused, wrong_side, overlaps = [], [], []
        for path in paths:
            plain = preprocess_image(read_raster(path, view=ViewPosition.MLO), params)
            image = read_raster(path, view=ViewPosition.MLO)
            assert image.pixels is not None
            image.pixels[~plain.tissue_mask] = fill
            image.padding_mask = ~plain.tissue_mask
            try:
                padded = preprocess_image(image, params)
            except PreprocessError:
                refused.append(path.stem)
                continue
            if padded.chest_wall_on_right != plain.chest_wall_on_right:
                wrong_side.append(path.stem)
            both = np.count_nonzero(padded.tissue_mask & plain.tissue_mask)
            overlaps.append(both / max(np.count_nonzero(padded.tissue_mask | plain.tissue_mask), 1))
        iou = f"IoU min {min(overlaps):.3f} mean {np.mean(overlaps):.3f}" if overlaps else ""
        print(
            f"air as padding stored at {fill:g}: {len(paths)} films, {len(refused)} refused, "
            f"{len(wrong_side)} on the wrong side; {iou}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
