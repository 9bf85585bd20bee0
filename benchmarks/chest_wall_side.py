"""Chest-wall side (preprocess step 2) on the 316 real images, as stored and degraded.

    .venv/bin/python benchmarks/chest_wall_side.py [--data DIR] [--gamma 0.8 0.6 0.5 0.4]
        [--phantoms 24] [--list]

DIR defaults to ``$MAMMOCAD_SHARED_DATA`` or ``../shared/data`` beside the project. Images and
their true side (docs/preprocessing.md, "Results"): the 242 mini-MIAS films (odd numbers are
right breasts, stored chest wall right), the 66 DDSM tissue-mask images (the side whose edge
columns hold more of the human mask) and the 8 CBIS-DDSM DICOMs (the Laterality tag). With
``--phantoms N``, N seeds × {L, R} × {CC, MLO} views of ``mammocad.synthetic`` as well.

Each image is decided as stored and in these degraded variants (the side decision only:
working grid, :func:`segment_tissue`, :func:`chest_wall_on_right`):

* ``gamma G``: the display pixels raised to the power G (G < 1 lifts dim grey: the film base
  and the painted-over label areas of mini-MIAS start to join the breast, as in the review that
  found the failure);
* ``strip nipple``: a dim grey band (30 % of the way from the background to the tissue median,
  with blurred-noise texture so it is not flat) attached to the breast's outline on the nipple
  side over the middle 60 % of the breast's rows and running to the image border there, like
  the film base of a film digitised without a margin on that side;
* ``label nipple``: a dim grey rectangle (12 % × 15 % of the image) overlapping the outline at
  the nipple, like a dim sticker;
* ``blob chest wall``: a dim grey band 8 % of the image wide lining the chest-wall side over
  the top 40 % of the breast's rows, like the painted-over label areas that join the breast at
  lower gamma. Images whose chest wall leaves no room before the image border are skipped;
* ``framed``: the breast cut as a digital detector frames it (:func:`framed`), the tissue
  running into the chest-wall edge.

Prints, per variant and data set, the wrong sides (and refusals) out of the images decided;
``--list`` names them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from _shared_data import default_data_dir

from mammocad.errors import PreprocessError
from mammocad.preprocess.grid import WorkingGrid
from mammocad.preprocess.orientation import chest_wall_on_right
from mammocad.preprocess.params import TissueParams
from mammocad.preprocess.tissue import TissueSegmentation, segment_tissue
from mammocad.structures import BoolArray, FloatArray, Laterality, ViewPosition

_DIM = 0.3  # level of the synthetic dim regions, from the background to the tissue median
_TEXTURE = 0.25  # their texture's standard deviation, of (level - background)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    group: str
    pixels: FloatArray  # display pixels in [0, 1], stored orientation
    right: bool  # true chest-wall side


@dataclass(frozen=True, slots=True)
class Decision:
    right: bool | None  # None: refused (no tissue)
    segmentation: TissueSegmentation | None
    grid: WorkingGrid


def mias_cases(data: Path) -> Iterator[Case]:
    for path in sorted((data / "mini-mias").glob("mdb*.png")):
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        pixels = grey.astype(np.float32) * np.float32(1 / 255)
        yield Case(path.stem, "mini-MIAS", pixels, int(path.stem[3:]) % 2 == 1)


def ddsm_cases(data: Path) -> Iterator[Case]:
    root = data / "tissue-masks-ddsm" / "segmentation_data"
    for path in sorted(root.glob("*/fgt_seg/*.png"), key=lambda p: p.name):
        labels = cv2.imread(str(path.parent.parent / "fgt_seg_labels" / f"{path.stem}_LI.png"), 0)
        truth = labels > 64
        grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        scale = 65535.0 if grey.dtype == np.uint16 else 255.0
        pixels = grey.astype(np.float32) * np.float32(1 / scale)
        yield Case(path.stem, "DDSM masks", pixels, truth[:, -3:].mean() > truth[:, :3].mean())


def cbis_cases(data: Path) -> Iterator[Case]:
    import pydicom

    for path in sorted((data / "cbis-ddsm-sample").glob("*/*.dcm")):
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float32)
        pixels *= np.float32(1.0 / float(pixels.max()))
        name = f"{path.parent.name}/{path.stem}"
        yield Case(name, "CBIS-DDSM", pixels, str(dataset.Laterality) == "R")


def phantom_cases(seeds: int) -> Iterator[Case]:
    from mammocad.synthetic import generate_view
    from mammocad.synthetic.truth import ChestWallSide

    for seed in range(seeds):
        for laterality in (Laterality.L, Laterality.R):
            for view in (ViewPosition.CC, ViewPosition.MLO):
                rendered = generate_view(seed=seed, laterality=laterality, view=view)
                right = rendered.truth.chest_wall_side is ChestWallSide.RIGHT
                name = f"seed{seed}-{laterality.value}{view.value}"
                yield Case(name, "phantoms", rendered.pixels, right)


def decide(pixels: FloatArray, params: TissueParams) -> Decision:
    grid = WorkingGrid.for_size(pixels.shape, params.work_size)
    try:
        segmentation = segment_tissue(grid.reduce(pixels), padding=None, params=params)
    except PreprocessError:
        return Decision(None, None, grid)
    right = chest_wall_on_right(
        segmentation.smooth, segmentation.mask, background=segmentation.background_level
    )
    return Decision(right, segmentation, grid)


def _texture(shape: tuple[int, int], seed: int) -> FloatArray:
    noise = np.random.default_rng(seed).normal(0.0, 1.0, shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), max(2.0, 0.004 * max(shape)))
    return noise / max(float(noise.std()), 1e-6)


def _paint(case: Case, stored: Decision, region: BoolArray) -> FloatArray | None:
    """The case's pixels with ``region`` (working grid, outside the breast) painted dim grey."""
    seg = stored.segmentation
    assert seg is not None
    region = region & ~seg.mask
    if not region.any():
        return None
    rows, cols = case.pixels.shape
    k = stored.grid.factor
    full = cv2.resize(region.view(np.uint8), (region.shape[1] * k, region.shape[0] * k))
    full = cv2.copyMakeBorder(
        full, 0, rows - full.shape[0], 0, cols - full.shape[1], cv2.BORDER_REPLICATE
    ).astype(bool)
    background, median = seg.background_level / 255, seg.tissue_median / 255
    level = background + _DIM * (median - background)
    dim = level + _TEXTURE * (level - background) * _texture((rows, cols), len(case.name))
    pixels = case.pixels.copy()
    pixels[full] = np.clip(dim[full], 0.0, 1.0)
    return pixels


def _breast_rows(mask: BoolArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.flatnonzero(mask.any(axis=1))
    band = mask[rows]
    left = band.argmax(axis=1)
    right = band.shape[1] - 1 - band[:, ::-1].argmax(axis=1)
    return rows, left, right


def strip_nipple(case: Case, stored: Decision) -> FloatArray | None:
    mask = stored.segmentation.mask if stored.segmentation else None
    assert mask is not None
    rows, left, right = _breast_rows(mask)
    region = np.zeros_like(mask)
    keep = slice(round(0.2 * rows.size), round(0.8 * rows.size))
    for row, x0, x1 in zip(rows[keep], left[keep], right[keep], strict=True):
        if case.right:  # nipple on the left: the band runs to the left border
            region[row, : x0 + 1] = True
        else:
            region[row, x1:] = True
    return _paint(case, stored, region)


def label_nipple(case: Case, stored: Decision) -> FloatArray | None:
    mask = stored.segmentation.mask if stored.segmentation else None
    assert mask is not None
    rows, left, right = _breast_rows(mask)
    height, width = mask.shape
    apex = int(np.argmin(left)) if case.right else int(np.argmax(right))
    x = int(left[apex]) if case.right else int(right[apex])
    y = int(rows[apex])
    w, h, overlap = round(0.12 * width), round(0.15 * height), round(0.02 * width)
    region = np.zeros_like(mask)
    y0 = max(0, y - h // 2)
    if case.right:
        region[y0 : y0 + h, max(0, x - w) : x + overlap] = True
    else:
        region[y0 : y0 + h, max(0, x - overlap) : x + w] = True
    return _paint(case, stored, region)


def blob_chest_wall(case: Case, stored: Decision) -> FloatArray | None:
    mask = stored.segmentation.mask if stored.segmentation else None
    assert mask is not None
    rows, left, right = _breast_rows(mask)
    width = round(0.08 * mask.shape[1])
    region = np.zeros_like(mask)
    for row, x0, x1 in zip(rows[: round(0.4 * rows.size)], left, right, strict=False):
        if case.right:
            region[row, x1 : x1 + width] = True
        else:
            region[row, max(0, x0 - width) : x0 + 1] = True
    return _paint(case, stored, region)


def framed(case: Case, stored: Decision) -> FloatArray | None:
    """The breast cut as a digital detector frames it: 2 % of the width of background on the
    three open sides, the chest-wall edge 1 % inside the tissue (as ``train quality --framed``
    cuts its copies, in shares of the image rather than mm)."""
    mask = stored.segmentation.mask if stored.segmentation else None
    assert mask is not None
    k = stored.grid.factor
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0] * k, (rows[-1] + 1) * k, cols[0] * k, (cols[-1] + 1) * k
    height, width = case.pixels.shape
    margin, inset = round(0.02 * width), round(0.01 * width)
    top, bottom = max(0, y0 - margin), min(height, y1 + margin)
    left, right = (max(0, x0 - margin), x1 - inset) if case.right else (x0 + inset, x1 + margin)
    return np.ascontiguousarray(case.pixels[top:bottom, left : min(width, right)])


Variant = Callable[[Case, Decision], FloatArray | None]


def variants(gammas: list[float]) -> dict[str, Variant]:
    def gamma(g: float) -> Variant:
        return lambda case, _: np.power(case.pixels, np.float32(g))

    found: dict[str, Variant] = {f"gamma {g:g}": gamma(g) for g in gammas}
    found["strip nipple"] = strip_nipple
    found["label nipple"] = label_nipple
    found["blob chest wall"] = blob_chest_wall
    found["framed"] = framed
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--gamma", type=float, nargs="*", default=[0.8, 0.6, 0.5, 0.4])
    parser.add_argument("--phantoms", type=int, default=0, help="phantom seeds (4 views each)")
    parser.add_argument("--list", action="store_true", help="name the wrong images")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data at {args.data}; pass --data or set MAMMOCAD_SHARED_DATA", file=sys.stderr)
        return 2
    params = TissueParams()
    kinds = {"as stored": None, **variants(args.gamma)}
    decided: dict[tuple[str, str], int] = defaultdict(int)
    wrong: dict[tuple[str, str], list[str]] = defaultdict(list)
    start = time.perf_counter()
    cases = [
        mias_cases(args.data),
        ddsm_cases(args.data),
        cbis_cases(args.data),
        phantom_cases(args.phantoms),
    ]
    groups: list[str] = []
    for source in cases:
        for case in source:
            if case.group not in groups:
                groups.append(case.group)
            stored = decide(case.pixels, params)
            for kind, make in kinds.items():
                if make is None:
                    result = stored
                else:
                    if stored.segmentation is None:
                        continue
                    pixels = make(case, stored)
                    if pixels is None:
                        continue
                    result = decide(pixels, params)
                decided[kind, case.group] += 1
                if result.right is None:
                    wrong[kind, case.group].append(f"{case.name} (refused)")
                elif result.right != case.right:
                    wrong[kind, case.group].append(case.name)
    print(f"{'variant':<16}" + "".join(f"{g:>14}" for g in groups) + f"{'all':>14}")
    for kind in kinds:
        cells = [f"{len(wrong[kind, g])}/{decided[kind, g]}" for g in groups]
        total = (
            f"{sum(len(wrong[kind, g]) for g in groups)}/{sum(decided[kind, g] for g in groups)}"
        )
        print(f"{kind:<16}" + "".join(f"{c:>14}" for c in cells) + f"{total:>14}")
    print("(wrong sides, refusals included / images decided)")
    if args.list:
        for kind in kinds:
            for group in groups:
                if wrong[kind, group]:
                    print(f"{kind} {group}: {' '.join(wrong[kind, group])}")
    print(f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
