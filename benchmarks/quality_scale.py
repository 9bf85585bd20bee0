"""How the motion-blur check of the quality gate depends on the scale a file without pixel
spacing is taken at: for each film, whether ``mammocad.quality.checks.motion_blur`` fires
("smeared") when the image is taken to cover each field height, and the lowest neighbour
correlation of its fine residual (``smear_across``).

    python benchmarks/quality_scale.py ../shared/data/mini-mias/mdb{023,099,129,191,225}.png

mini-MIAS films are 1024 rows of 0.2 mm: a 204.8 mm field (docs/quality.md, "Files that do not
say their view or pixel spacing").
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from mammocad.io import read_raster
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality.checks import motion_blur
from mammocad.quality.measure import measure
from mammocad.quality.params import QualityParams

FIELDS_MM = (180.0, 190.0, 200.0, 204.8, 215.0, 235.0, 260.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("films", nargs="+", type=Path)
    args = parser.parse_args()
    params = QualityParams()
    print("film    " + " ".join(f"{field:>12g}" for field in FIELDS_MM) + "  (field height, mm)")
    for path in args.films:
        prepared = preprocess_image(read_raster(path), PreprocessParams())
        cells = []
        for field in FIELDS_MM:
            m = measure(prepared, replace(params, assumed_field_mm=field))
            fired = motion_blur(m, prepared, params) is not None
            cells.append(f"{'smeared' if fired else '-':>7} {m.smear_across:+.2f}")
        print(f"{path.stem:<7} " + " ".join(f"{cell:>12}" for cell in cells))


if __name__ == "__main__":
    main()
