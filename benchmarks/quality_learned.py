"""Heuristics alone vs heuristics + learned model (mammocad.quality), on held-out data.

    python benchmarks/quality_learned.py [--n 50] [--extra-good 250] [--n-full 4] [--seed 0]
        [--data DIR] [--no-real] [--no-real-degraded] [--model FILE] [--framed MM]

* phantoms (``size="small"``, seeds ``seed .. seed+n-1``; the shipped model was trained on
  10000-10099): per seed a good view, one view per generator defect and one degraded copy of
  the good view per degradation of :mod:`mammocad.quality.degrade`; then ``--extra-good``
  more good views (the next seeds) and ``--n-full`` good views at ``size="full"``. A defect
  is *caught* when the image is refused (not acceptable, or rejected by preprocessing);
  *code* is the share whose expected issue code fired. A good view is *refused* when it is
  not acceptable.
* real images in DIR (``$MAMMOCAD_SHARED_DATA`` or ``../shared/data``): mini-MIAS, CBIS-DDSM
  sample, DDSM tissue-mask images read as ``benchmarks/quality.py`` reads them, and mini-MIAS
  again as bare files (no view, no pixel spacing: as ``mammocad analyze`` reads a PNG): the share
  refused; with degraded copies (one per degradation), the share of those caught; with
  ``--framed MM``, each real image also cut to its breast with MM of background and none at
  the chest wall, as a digital detector frames it (``train_quality.framed``), the share refused.

Each image is preprocessed once and gated twice (``model=None``, then the model).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from _shared_data import default_data_dir

from mammocad.commands.train_quality import DEFECT_CODES, framed, phantom, shrink
from mammocad.errors import PreprocessError
from mammocad.io import read_image, read_raster
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality
from mammocad.quality.degrade import DEGRADATIONS
from mammocad.quality.learned import QualityModel, shipped_model
from mammocad.structures import Image, ViewPosition

MODES = ("heuristics", "combined")


@dataclass(slots=True)
class Tally:
    """Counts per mode: images refused, and defects whose expected code fired."""

    n: int = 0
    refused: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    code: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def rate(self, counts: defaultdict[str, int], mode: str) -> str:
        return f"{counts[mode] / max(self.n, 1):.1%}"


def judge(image: Image, model: QualityModel) -> dict[str, set[str] | None]:
    """Per mode the issue codes of a refused image, an empty set when acceptable, None when
    preprocessing rejected it (refused in both modes)."""
    try:
        prepared = preprocess_image(image, PreprocessParams())
    except PreprocessError:
        return dict.fromkeys(MODES)
    verdicts: dict[str, set[str] | None] = {}
    for mode in MODES:
        quality = assess_quality(
            image, prepared, QualityParams(), model=model if mode == "combined" else None
        )
        verdicts[mode] = set() if quality.acceptable else {i.code for i in quality.issues}
    return verdicts


def count(tally: Tally, verdicts: dict[str, set[str] | None], expected: str | None) -> None:
    tally.n += 1
    for mode, codes in verdicts.items():
        refused = codes is None or bool(codes)
        tally.refused[mode] += refused
        tally.code[mode] += codes is None or (expected is not None and expected in codes)


def degraded_copies(image: Image, rng: np.random.Generator) -> Iterator[tuple[str, Image, str]]:
    try:
        tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    except PreprocessError:
        return
    pixels = np.asarray(image.pixels, dtype=np.float32)
    spacing = image.spacing_or_assumed_mm[0]
    for name, (degrade, code) in sorted(DEGRADATIONS.items()):
        copy = replace(image, pixels=degrade(pixels, tissue, rng, spacing), messages=[])
        yield name, copy, code


def run_phantoms(args: argparse.Namespace, model: QualityModel) -> None:
    n, seed = args.n, args.seed
    tallies: dict[str, Tally] = defaultdict(Tally)
    rng = np.random.default_rng(seed)
    for s in range(seed + n, seed + n + args.extra_good):
        count(tallies["good"], judge(phantom(s), model), None)
    for s in range(seed, seed + args.n_full):
        count(tallies["good (full size)"], judge(phantom(s, size="full"), model), None)
    for s in range(seed, seed + n):
        good = phantom(s)
        count(tallies["good"], judge(good, model), None)
        for defect, code in DEFECT_CODES.items():
            count(tallies[defect.value], judge(phantom(s, (defect,)), model), code)
        for name, copy, code in degraded_copies(good, rng):
            count(tallies[f"degraded {name}"], judge(copy, model), code)
    last, full = seed + n + args.extra_good - 1, seed + args.n_full - 1
    print(f"held-out phantoms, seeds {seed}-{last} (size small; good at size full: {seed}-{full})")
    print(f"{'':<24} {'n':>4}  {'heuristics':>20}  {'heuristics + model':>20}")
    print(f"{'':<24} {'':>4}  {'refused':>10}{'code':>10}  {'refused':>10}{'code':>10}")
    caught = dict.fromkeys(MODES, 0)
    total = 0
    for name, tally in tallies.items():
        cells = "  ".join(
            f"{tally.rate(tally.refused, m):>10}"
            + (f"{tally.rate(tally.code, m):>10}" if "good" not in name else f"{'-':>10}")
            for m in MODES
        )
        print(f"{name:<24} {tally.n:>4}  {cells}")
        if "good" not in name:
            total += tally.n
            for mode in MODES:
                caught[mode] += tally.refused[mode]
    for mode in MODES:
        print(f"{mode}: defects caught {caught[mode]}/{total} = {caught[mode] / total:.1%}")
    print()


def real_images(data: Path) -> Iterator[tuple[str, Image]]:
    for path in sorted((data / "mini-mias").glob("mdb*.png")):
        yield "mini-MIAS", read_raster(path, view=ViewPosition.MLO, pixel_spacing_mm=0.2)
    for path in sorted((data / "mini-mias").glob("mdb*.png")):
        # as `mammocad analyze` reads the files: no view, no pixel spacing
        yield "mini-MIAS, bare files", read_raster(path)
    for path in sorted((data / "cbis-ddsm-sample").glob("*/*.dcm")):
        yield "CBIS-DDSM", read_image(path)
    root = data / "tissue-masks-ddsm" / "segmentation_data"
    for path in sorted(root.glob("*/fgt_seg/*.png"), key=lambda p: p.name):
        # the shipped model trained on train_valid: test is the held-out real source
        yield f"DDSM {path.parts[-3]}", read_raster(path, view=ViewPosition.MLO)


def run_real(data: Path, model: QualityModel, degrade: bool, framing_mm: float | None) -> None:
    good: dict[str, Tally] = defaultdict(Tally)
    bad: dict[str, Tally] = defaultdict(Tally)
    refused: list[str] = []
    rng = np.random.default_rng(0)
    for name, image in real_images(data):
        if not image.is_processed:
            continue
        verdicts = judge(image, model)
        count(good[name], verdicts, None)
        for mode, codes in verdicts.items():
            if codes is None or codes:
                refused.append(f"{mode}: {image.source} {sorted(codes or ['rejected'])}")
        tight = framed(image, framing_mm) if framing_mm is not None else None
        if tight is not None:
            verdicts = judge(tight, model)
            count(good[f"{name}, framed"], verdicts, None)
            for mode, codes in verdicts.items():
                if codes is None or codes:
                    refused.append(f"{mode}: {image.source} framed {sorted(codes or ['rejected'])}")
        if degrade:
            for _, copy, code in degraded_copies(shrink(image), rng):
                count(bad[name], judge(copy, model), code)
    print(f"{'real images':<30} {'n':>4} {'refused (heur.)':>16} {'refused (+model)':>17}", end="")
    print(f" {'degraded n':>11} {'caught (heur.)':>15} {'caught (+model)':>16}" if degrade else "")
    for name, tally in good.items():
        line = f"{name:<30} {tally.n:>4} {tally.rate(tally.refused, 'heuristics'):>16}"
        line += f" {tally.rate(tally.refused, 'combined'):>17}"
        if degrade:
            worse = bad[name]
            line += f" {worse.n:>11} {worse.rate(worse.refused, 'heuristics'):>15}"
            line += f" {worse.rate(worse.refused, 'combined'):>16}"
        print(line)
    for line in refused:
        print(f"  refused {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="held-out phantom seeds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra-good", type=int, default=250, help="more good-only seeds")
    parser.add_argument("--n-full", type=int, default=4, help="good views at size full")
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-real-degraded", action="store_true")
    parser.add_argument("--framed", type=float, metavar="MM", help="also real images framed so")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    model = QualityModel.load(args.model) if args.model else shipped_model()
    start = time.perf_counter()
    run_phantoms(args, model)
    if not args.no_real:
        if not args.data.is_dir():
            print(f"no data at {args.data}; pass --data or --no-real", file=sys.stderr)
            return 2
        run_real(args.data, model, degrade=not args.no_real_degraded, framing_mm=args.framed)
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
