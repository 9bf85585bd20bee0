"""Scanner lines vs motion smear: the statistics behind the motion_blur check's fourth
condition (docs/quality.md, "Why motion blur needs four conditions").

    python benchmarks/quality_lines.py [--data DIR] [--windows 8 12 16 24 40]

Every image that meets the first three conditions (sharpness, smear along, anisotropy and no
anti-correlation): good ones — mini-MIAS with its spacing and as bare files, uncut and framed
as ``benchmarks/quality_learned.py --framed 4`` frames them — and motion-blurred ones — the
benchmark phantoms (seeds 0-49 small, 0-2 full), the degraded phantom copies and degraded real
copies drawn as ``quality_learned.py`` draws them. For the good ones: the residual's
correlation along the smear at 1, 2, 4 and 6 working pixels and in the background beside the
breast (the same, far along, for the weakest phantom smears); for both, the smear left once
lines are taken out over each window (mm): good images must stay below ``min_smear_along``,
blurred ones above.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from _shared_data import default_data_dir

from mammocad.commands.train_quality import framed, phantom, shrink
from mammocad.datasets.phantoms import view_image
from mammocad.errors import PreprocessError
from mammocad.io import read_image, read_raster
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, measure
from mammocad.quality.degrade import DEGRADATIONS
from mammocad.quality.measure import Measurements, working_copy
from mammocad.structures import Image, Laterality, PreprocessedImage, ViewPosition
from mammocad.synthetic import Defect, generate_view

DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # as quality.measure: 0, 90, 45, 135 degrees


def three_conditions(m: Measurements, p: QualityParams) -> bool:
    return (
        m.sharpness < p.max_blur_sharpness
        and m.smear_along >= p.min_smear_along
        and m.smear_along - m.smear_across >= p.min_smear_anisotropy
        and m.smear_across >= p.min_smear_across
    )


def lag(image: np.ndarray, mask: np.ndarray, dy: int, dx: int) -> float:
    """Correlation of ``image`` with itself shifted by (dy, dx) over ``mask`` (dy >= 0)."""
    rows, cols = image.shape
    x0, x1 = max(0, -dx), cols - max(0, dx)
    a, b = image[: rows - dy, x0:x1], image[dy:, x0 + dx : x1 + dx]
    both = mask[: rows - dy, x0:x1] & mask[dy:, x0 + dx : x1 + dx]
    if np.count_nonzero(both) < 64:
        return 0.0
    return float(np.corrcoef(a[both], b[both])[0, 1])


def residual_lags(
    prepared: PreprocessedImage, params: QualityParams
) -> tuple[int, list[float], float, float]:
    """The residual's strongest direction (index into DIRECTIONS) and its correlation along it
    at 1, 2, 4, 6 pixels inside the tissue; in the background beside the breast, its
    correlation along the rows and the lowest across them."""
    small, tissue, _ = working_copy(prepared, params)
    size = max(3, round(params.erosion_mm / params.work_spacing_mm)) | 1
    inner = cv2.erode(tissue.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    residual = small - cv2.GaussianBlur(small, (0, 0), 1.0)
    first = [lag(residual, inner, dy, dx) for dy, dx in DIRECTIONS]
    direction = int(np.argmax(first))
    dy, dx = DIRECTIONS[direction]
    along = [lag(residual, inner, dy * k, dx * k) for k in (1, 2, 4, 6)]
    near = cv2.dilate(tissue.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    background = ~near & (small > 0.01)  # exposed film, not the black padding
    rows = [lag(residual, background, y, x) for y, x in DIRECTIONS]
    return direction, along, rows[0], min(rows[1:])


def good_images(data: Path) -> Iterator[tuple[str, Image]]:
    for path in sorted((data / "mini-mias").glob("mdb*.png")):
        for name, image in (
            ("mini-MIAS", read_raster(path, view=ViewPosition.MLO, pixel_spacing_mm=0.2)),
            ("mini-MIAS bare", read_raster(path)),
        ):
            if not image.is_processed:
                continue
            yield name, image
            tight = framed(image, 4.0)
            if tight is not None:
                yield f"{name} framed", tight


def real_images(data: Path) -> Iterator[Image]:
    """As ``quality_learned.py`` reads them, in its order (its degradation draws follow it)."""
    mias = sorted((data / "mini-mias").glob("mdb*.png"))
    for path in mias:
        yield read_raster(path, view=ViewPosition.MLO, pixel_spacing_mm=0.2)
    for path in mias:
        yield read_raster(path)
    for path in sorted((data / "cbis-ddsm-sample").glob("*/*.dcm")):
        yield read_image(path)
    root = data / "tissue-masks-ddsm" / "segmentation_data"
    for path in sorted(root.glob("*/fgt_seg/*.png"), key=lambda p: p.name):
        yield read_raster(path, view=ViewPosition.MLO)


def smeared(image: Image, rng: np.random.Generator) -> Image | None:
    """The motion-blur copy ``quality_learned.py`` makes (every degradation drawn in turn)."""
    try:
        tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    except PreprocessError:
        return None
    pixels = np.asarray(image.pixels, dtype=np.float32)
    spacing = image.spacing_or_assumed_mm[0]
    copy = None
    for name, (degrade, _) in sorted(DEGRADATIONS.items()):
        out = degrade(pixels, tissue, rng, spacing)
        if name == "motion_blur":
            copy = replace(image, pixels=out, messages=[])
    return copy


def blurred_images(data: Path) -> Iterator[tuple[str, Image]]:
    for size, n in (("small", 50), ("full", 3)):
        for i in range(n):
            # as benchmarks/quality.py: CC/MLO alternate, and L/R every second seed
            view = ViewPosition.CC if i % 2 == 0 else ViewPosition.MLO
            side = Laterality.L if (i // 2) % 2 == 0 else Laterality.R
            made = generate_view(
                seed=i, laterality=side, view=view, size=size, defects=(Defect.MOTION_BLUR,)
            )
            yield "phantom", view_image(made, source=f"phantom_{i}.dcm")
    rng = np.random.default_rng(0)
    for seed in range(50):
        copy = smeared(phantom(seed), rng)
        if copy is not None:
            yield "phantom copy", copy
    rng = np.random.default_rng(0)
    for image in real_images(data):
        if image.is_processed:
            copy = smeared(shrink(image), rng)
            if copy is not None:
                yield "real copy", copy


def left_after(prepared: PreprocessedImage, windows: list[float]) -> list[float]:
    return [
        measure(prepared, QualityParams(scanner_line_mm=mm)).smear_along_no_lines for mm in windows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--windows", type=float, nargs="+", default=[8, 12, 16, 24, 40])
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    params = QualityParams()
    windows = args.windows
    print(
        "good images meeting the first three conditions; smear left after lines out over", windows
    )
    worst_good = [-1.0] * len(windows)
    for name, image in good_images(args.data):
        prepared = preprocess_image(image, PreprocessParams())
        m = measure(prepared, params)
        if not three_conditions(m, params):
            continue
        left = left_after(prepared, windows)
        worst_good = [max(a, b) for a, b in zip(worst_good, left, strict=True)]
        direction, along, bg_rows, bg_across = residual_lags(prepared, params)
        print(
            f"  {name:<22} {Path(image.source or '').stem:<8} sharpness {m.sharpness:.3f} "
            f"along {direction} at 1/2/4/6 px {' '.join(f'{v:+.2f}' for v in along)} "
            f"background rows {bg_rows:+.2f} across {bg_across:+.2f} "
            f"left {' '.join(f'{v:.3f}' for v in left)}"
        )
    lowest = [2.0] * len(windows)
    lost = [0] * len(windows)
    caught = 0
    short: list[list[float]] = []  # phantom smears as weak as the films' lines at one pixel
    for name, image in blurred_images(args.data):
        prepared = preprocess_image(image, PreprocessParams())
        m = measure(prepared, params)
        if not three_conditions(m, params):
            continue
        caught += 1
        if name.startswith("phantom") and m.smear_along < 0.7:
            short.append(residual_lags(prepared, params)[1])
        left = left_after(prepared, windows)
        lowest = [min(a, b) for a, b in zip(lowest, left, strict=True)]
        lost = [k + (v < params.min_smear_along) for k, v in zip(lost, left, strict=True)]
    print(f"blurred images meeting the first three conditions: {caught}")
    if short:
        far = np.asarray(short)[:, 2:]
        print(
            f"  {len(short)} phantom smears with < 0.70 at 1 px: {far.min():+.2f} .. "
            f"{far.max():+.2f} at 4 and 6 px"
        )
    for mm, good, bad, k in zip(windows, worst_good, lowest, lost, strict=True):
        print(f"  window {mm:g} mm: good at most {good:.3f}, blurred at least {bad:.3f}, lost {k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
