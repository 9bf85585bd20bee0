"""Catch and refusal rates of the heuristic quality gate (mammocad.quality).

    python benchmarks/quality.py [--n 50] [--n-full 3] [--seed 0] [--data DIR] [--no-real]

* phantoms: ``--n`` views at ``size="small"`` and ``--n-full`` at ``size="full"`` for each
  synthetic defect (noise, blank, burned_out, cut_off, motion_blur) and as many good ones,
  alternating CC/MLO and R/L, seeds ``seed .. seed+n-1``. Each goes through
  ``preprocess_image`` and ``assess_quality``. A defect is *caught* when its issue code fires
  or preprocessing rejects the image (``no_tissue``); a good image is *refused* when it is not
  acceptable or preprocessing rejects it. ``noise_in_breast`` (expected ``no_anatomy``): a good
  phantom whose breast pixels are replaced by white noise of the same mean, which
  preprocessing takes for tissue — the synthetic ``noise`` defect never gets that far.
* real films in DIR (``$MAMMOCAD_SHARED_DATA`` or ``../shared/data``): mini-MIAS (MLO,
  0.2 mm), CBIS-DDSM sample DICOMs (tags as read), DDSM tissue-mask PNGs (MLO, no spacing).
  Reports the share refused and how often each issue fires.

Prints tables; docs/quality.md holds the numbers of a recorded run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from _shared_data import default_data_dir

from mammocad.datasets.phantoms import view_image
from mammocad.errors import PreprocessError
from mammocad.io import read_image, read_raster
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality
from mammocad.structures import Image, ImageQuality, Laterality, ViewPosition
from mammocad.synthetic import Defect, generate_view

EXPECTED = {
    Defect.NOISE: "no_anatomy",
    Defect.BLANK: "blank",
    Defect.BURNED_OUT: "overexposed",
    Defect.CUT_OFF: "breast_cut_off",
    Defect.MOTION_BLUR: "motion_blur",
}


@dataclass(slots=True)
class Tally:
    """Counts for one group of images; ``codes`` counts each issue code once per image."""

    n: int = 0
    caught: int = 0
    refused: int = 0
    rejected: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def gate(image: Image, pre: PreprocessParams, params: QualityParams) -> ImageQuality | None:
    """None when preprocessing rejects the image (no tissue)."""
    try:
        prepared = preprocess_image(image, pre)
    except PreprocessError:
        return None
    return assess_quality(image, prepared, params)


def count(tally: Tally, quality: ImageQuality | None, expected: str | None) -> None:
    tally.n += 1
    if quality is None:
        tally.rejected += 1
        tally.refused += 1
        tally.caught += 1
        return
    codes = {issue.code for issue in quality.issues}
    tally.codes.update(codes)
    tally.refused += not quality.acceptable
    tally.caught += expected in codes


def phantom_images(defect: Defect | None, n: int, size: str, seed: int) -> Iterator[Image]:
    for i in range(n):
        view = ViewPosition.CC if i % 2 == 0 else ViewPosition.MLO
        side = Laterality.L if (i // 2) % 2 == 0 else Laterality.R
        made = generate_view(
            seed=seed + i,
            laterality=side,
            view=view,
            size=size,
            defects=() if defect is None else (defect,),
        )
        yield view_image(made, source=f"phantom_{seed + i}.dcm")


def noise_in_breast(image: Image, pre: PreprocessParams, seed: int) -> Image:
    """The breast (as preprocessing finds it) filled with white noise of the same mean."""
    pixels = np.asarray(image.pixels, dtype=np.float32)
    tissue = preprocess_image(image, pre).tissue_mask
    noise = np.random.default_rng(seed).normal(float(pixels[tissue].mean()), 0.15, pixels.shape)
    image.pixels = np.where(tissue, np.clip(noise, 0.0, 1.0), pixels).astype(np.float32)
    return image


def run_noise_in_breast(
    args: argparse.Namespace, pre: PreprocessParams, params: QualityParams, total: Tally
) -> None:
    for size, n in (("small", args.n), ("full", args.n_full)):
        tally = Tally()
        for i, image in enumerate(phantom_images(None, n, size, args.seed)):
            noisy = noise_in_breast(image, pre, args.seed + i)
            count(tally, gate(noisy, pre, params), "no_anatomy")
        total.n += tally.n
        total.caught += tally.caught
        print(
            f"{'noise_in_breast':<15} {size:<6} {tally.n:>4} "
            f"{tally.caught / max(tally.n, 1):>8.1%} {tally.refused / max(tally.n, 1):>8.1%}  "
            f"{_codes(tally)}"
        )


def run_phantoms(args: argparse.Namespace, pre: PreprocessParams, params: QualityParams) -> None:
    print(f"{'phantoms':<15} {'size':<6} {'n':>4} {'caught':>8} {'refused':>8}  issues fired")
    total = Tally()
    for defect in (None, *Defect):
        for size, n in (("small", args.n), ("full", args.n_full)):
            tally = Tally()
            start = time.perf_counter()
            for image in phantom_images(defect, n, size, args.seed):
                count(tally, gate(image, pre, params), None if defect is None else EXPECTED[defect])
            tally.seconds = time.perf_counter() - start
            if defect is not None:
                total.n += tally.n
                total.caught += tally.caught
            name = "good" if defect is None else defect.value
            caught = "-" if defect is None else f"{tally.caught / max(tally.n, 1):.1%}"
            print(
                f"{name:<15} {size:<6} {tally.n:>4} {caught:>8} "
                f"{tally.refused / max(tally.n, 1):>8.1%}  {_codes(tally)}"
            )
    run_noise_in_breast(args, pre, params, total)
    print(f"all defects caught: {total.caught}/{total.n} = {total.caught / total.n:.1%}\n")


def real_images(data: Path) -> Iterator[tuple[str, Image]]:
    for path in sorted((data / "mini-mias").glob("mdb*.png")):
        yield "mini-MIAS", read_raster(path, view=ViewPosition.MLO, pixel_spacing_mm=0.2)
    for path in sorted((data / "cbis-ddsm-sample").glob("*/*.dcm")):
        yield "CBIS-DDSM", read_image(path)
    root = data / "tissue-masks-ddsm" / "segmentation_data"
    for path in sorted(root.glob("*/fgt_seg/*.png"), key=lambda p: p.name):
        yield "DDSM masks", read_raster(path, view=ViewPosition.MLO)


def run_real(data: Path, pre: PreprocessParams, params: QualityParams) -> None:
    tallies: dict[str, Tally] = {}
    refused: list[str] = []
    for name, image in real_images(data):
        tally = tallies.setdefault(name, Tally())
        quality = gate(image, pre, params) if image.is_processed else None
        count(tally, quality, None)
        if quality is None or not quality.acceptable:
            codes = [] if quality is None else [i.code for i in quality.issues]
            refused.append(
                f"{Path(image.source or image.key).name}: {', '.join(codes) or 'rejected'}"
            )
    print(f"{'real':<14} {'n':>4} {'refused':>8}  issues fired")
    for name, tally in tallies.items():
        print(f"{name:<14} {tally.n:>4} {tally.refused / max(tally.n, 1):>8.1%}  {_codes(tally)}")
    for line in refused:
        print(f"  refused {line}")


def _codes(tally: Tally) -> str:
    return ", ".join(f"{code} {k}" for code, k in tally.codes.most_common()) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="small phantoms per defect")
    parser.add_argument("--n-full", type=int, default=3, help="full-size phantoms per defect")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    pre, params = PreprocessParams(), QualityParams()
    start = time.perf_counter()
    run_phantoms(args, pre, params)
    if not args.no_real:
        if not args.data.is_dir():
            print(f"no data at {args.data}; pass --data or --no-real", file=sys.stderr)
            return 2
        run_real(args.data, pre, params)
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
