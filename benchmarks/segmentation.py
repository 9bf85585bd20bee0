"""Breast, pectoral-muscle and chest-wall-side accuracy of mammocad.preprocess, and its speed.

    python benchmarks/segmentation.py [--data DIR] [--overlays DIR] [--no-speed]

DIR defaults to ``$MAMMOCAD_SHARED_DATA`` or ``../shared/data`` beside the project. Parts:

* ``tissue-masks-ddsm``: 66 DDSM film MLO images with human masks (64 background, 128 adipose,
  192 fibroglandular, 255 pectoral muscle). Per image: tissue IoU (mask > 64), pectoral IoU
  (mask == 255), whether the chest-wall side is right, and the time of ``preprocess_image``.
  The true side comes from the human mask (the side whose edge columns hold more tissue):
  every file is named RIGHT, but the A_ and D_ cases are stored with the chest wall on the
  LEFT (mirrored) and the B_ cases on the right, so the name cannot be the truth.
* ``mini-mias``: chest-wall side against the dataset's rule (odd numbers are right breasts,
  stored chest wall right), and how many images find no breast.
* ``cbis-ddsm-sample``: chest-wall side against the Laterality tag (CBIS-DDSM stores right
  breasts chest wall right).
* speed: ``preprocess_image`` on a real CBIS-DDSM MLO mammogram resized to 3328×2560 and
  4096×3328 (wall and CPU time, median of repeated runs).

``--overlays DIR`` writes PNGs with the tissue outline (green), pectoral outline (red), nipple
(blue dot) and breast box for looking at.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from _shared_data import default_data_dir

from mammocad.errors import PreprocessError
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Image, Laterality, PreprocessedImage, ViewPosition


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskResult:
    name: str
    tissue_iou: float
    pectoral_iou: float
    side_correct: bool
    seconds: float


def ddsm_pairs(data: Path) -> Iterator[tuple[Path, Path]]:
    """(image, human mask) pairs of the DDSM tissue-mask set, sorted by name."""
    root = data / "tissue-masks-ddsm" / "segmentation_data"
    for image_path in sorted(root.glob("*/fgt_seg/*.png"), key=lambda p: p.name):
        label_dir = image_path.parent.parent / "fgt_seg_labels"
        yield image_path, label_dir / f"{image_path.stem}_LI.png"


def image_from_png(
    path: Path, *, view: ViewPosition | None, laterality: Laterality | None
) -> Image:
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if grey is None or grey.ndim != 2:
        raise SystemExit(f"cannot read {path} as a grey PNG")
    full_scale = 65535.0 if grey.dtype == np.uint16 else 255.0
    pixels = np.asarray(grey, dtype=np.float32) * np.float32(1.0 / full_scale)
    return Image(
        source=str(path),
        laterality=laterality,
        view=view,
        rows=pixels.shape[0],
        columns=pixels.shape[1],
        pixels=pixels,
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 1.0


def measure_ddsm_pair(image_path: Path, label_path: Path, params: PreprocessParams) -> MaskResult:
    labels = cv2.imread(str(label_path), cv2.IMREAD_GRAYSCALE)
    if labels is None:
        raise SystemExit(f"cannot read the human mask {label_path}")
    truth_tissue = np.asarray(labels > 64)
    truth_pectoral = np.asarray(labels == 255)
    truth_right = truth_tissue[:, -3:].mean() > truth_tissue[:, :3].mean()
    image = image_from_png(image_path, view=ViewPosition.MLO, laterality=Laterality.R)
    start = time.perf_counter()
    result = preprocess_image(image, params)
    seconds = time.perf_counter() - start
    pectoral = result.pectoral_mask
    if pectoral is None:
        raise SystemExit("an MLO image came back without a pectoral mask")
    return MaskResult(
        name=image_path.stem,
        tissue_iou=iou(result.tissue_mask, truth_tissue),
        pectoral_iou=iou(pectoral, truth_pectoral),
        side_correct=result.chest_wall_on_right == truth_right,
        seconds=seconds,
    )


def run_ddsm(data: Path, params: PreprocessParams, overlays: Path | None) -> list[MaskResult]:
    results = []
    print(f"{'image':<26} {'tissue IoU':>10} {'pect IoU':>9} {'side':>5} {'ms':>6}")
    for image_path, label_path in ddsm_pairs(data):
        row = measure_ddsm_pair(image_path, label_path, params)
        results.append(row)
        side = "ok" if row.side_correct else "WRONG"
        print(
            f"{row.name:<26} {row.tissue_iou:>10.3f} {row.pectoral_iou:>9.3f} {side:>5} "
            f"{row.seconds * 1000:>6.1f}"
        )
        if overlays is not None:
            image = image_from_png(image_path, view=ViewPosition.MLO, laterality=Laterality.R)
            write_overlay(preprocess_image(image, params), overlays / f"ddsm_{row.name}.png")
    if not results:
        return results
    for split in ("train_valid", "test", ""):
        subset = [r for r, (p, _) in zip(results, ddsm_pairs(data), strict=True) if split in str(p)]
        label = split or "all"
        print(
            f"mean ({label}, n={len(subset)}): tissue IoU "
            f"{statistics.fmean(r.tissue_iou for r in subset):.4f}, pectoral IoU "
            f"{statistics.fmean(r.pectoral_iou for r in subset):.4f}, chest-wall side "
            f"{sum(r.side_correct for r in subset)}/{len(subset)}, "
            f"{statistics.fmean(r.seconds for r in subset) * 1000:.1f} ms/image"
        )
    return results


def run_mias(data: Path, params: PreprocessParams, overlays: Path | None) -> None:
    paths = sorted((data / "mini-mias").glob("mdb*.png"))
    if not paths:
        return
    correct = no_tissue = pectoral = 0
    times = []
    for index, path in enumerate(paths):
        number = int(path.stem[3:])
        image = image_from_png(path, view=ViewPosition.MLO, laterality=None)
        start = time.perf_counter()
        try:
            result = preprocess_image(image, params)
        except PreprocessError:
            no_tissue += 1
            continue
        times.append(time.perf_counter() - start)
        correct += result.chest_wall_on_right == (number % 2 == 1)
        pectoral += result.pectoral_mask is not None and bool(result.pectoral_mask.any())
        if overlays is not None and index % 20 == 0:
            write_overlay(result, overlays / f"mias_{path.stem}.png")
    print(
        f"mini-MIAS: chest-wall side {correct}/{len(paths) - no_tissue} correct (odd = right), "
        f"{no_tissue} without tissue, pectoral muscle found on {pectoral}, "
        f"{statistics.fmean(times) * 1000:.1f} ms/image"
    )


def load_cbis(data: Path) -> list[tuple[Path, np.ndarray, Laterality, ViewPosition]]:
    import pydicom

    loaded = []
    for path in sorted((data / "cbis-ddsm-sample").glob("*/*.dcm")):
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float32)
        pixels *= np.float32(1.0 / float(pixels.max()))
        view = ViewPosition.MLO if str(dataset.PatientID).endswith("MLO") else ViewPosition.CC
        loaded.append((path, pixels, Laterality(str(dataset.Laterality)), view))
    return loaded


def run_cbis(
    cases: list[tuple[Path, np.ndarray, Laterality, ViewPosition]],
    params: PreprocessParams,
    overlays: Path | None,
) -> None:
    correct = 0
    for path, pixels, laterality, view in cases:
        image = Image(source=str(path), view=view, pixels=pixels)
        result = preprocess_image(image, params)
        correct += result.chest_wall_on_right == (laterality is Laterality.R)
        issues = ", ".join(issue.code for issue in result.quality.issues) or "none"
        print(
            f"CBIS-DDSM {path.parent.name}/{path.name} {laterality.value}{view.value}: side "
            f"{'right' if result.chest_wall_on_right else 'left'}, nipple {result.nipple}, "
            f"issues {issues}"
        )
        if overlays is not None:
            write_overlay(result, overlays / f"cbis_{path.parent.name}_{path.stem}.png")
    if cases:
        print(f"CBIS-DDSM: chest-wall side {correct}/{len(cases)} correct (Laterality tag)")


def run_speed(pixels: np.ndarray, params: PreprocessParams, repeats: int = 25) -> None:
    for rows, cols in ((3328, 2560), (4096, 3328)):
        resized = np.asarray(
            cv2.resize(pixels, (cols, rows), interpolation=cv2.INTER_AREA), dtype=np.float32
        )
        image = Image(source="speed.png", view=ViewPosition.MLO, pixels=resized)
        preprocess_image(image, params)  # warm-up: first OpenCV calls allocate
        times, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            preprocess_image(image, params)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        times.sort()
        print(
            f"speed {rows}x{cols}: wall median {statistics.median(times) * 1000:.1f} ms "
            f"(min {times[0] * 1000:.1f}, max {times[-1] * 1000:.1f}), CPU median "
            f"{statistics.median(cpu) * 1000:.1f} ms, {repeats} runs"
        )


def write_overlay(result: PreprocessedImage, path: Path) -> None:
    pixels = result.image.pixels
    if pixels is None:
        return
    scale = 1024 / max(pixels.shape)
    size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
    grey = cv2.resize(cv2.convertScaleAbs(pixels, alpha=255), size, interpolation=cv2.INTER_AREA)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    for mask, colour in ((result.tissue_mask, (0, 255, 0)), (result.pectoral_mask, (0, 0, 255))):
        if mask is None:
            continue
        small = cv2.resize(mask.view(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 127
        contours, _ = cv2.findContours(
            small.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(canvas, contours, -1, colour, 2)
    x1, y1, x2, y2 = (round(v * scale) for v in result.breast_box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), (255, 255, 0), 1)
    if result.nipple is not None:
        centre = (round(result.nipple[0] * scale), round(result.nipple[1] * scale))
        cv2.circle(canvas, centre, 8, (255, 0, 0), -1)
    # the two input channels side by side, each framed, right of the annotated original
    channels = []
    for plane in result.input:
        plane_u8 = (plane * 255).astype(np.uint8)
        channels.append(cv2.copyMakeBorder(plane_u8, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=128))
    model_input = np.hstack(channels)
    height = size[1]
    width = round(model_input.shape[1] * height / model_input.shape[0])
    model_input = cv2.resize(model_input, (width, height), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.hstack([canvas, cv2.cvtColor(model_input, cv2.COLOR_GRAY2BGR)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--overlays", type=Path, default=None)
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data at {args.data}; pass --data or set MAMMOCAD_SHARED_DATA", file=sys.stderr)
        return 2
    cv2.setNumThreads(max(1, os.cpu_count() or 1))
    params = PreprocessParams()
    run_ddsm(args.data, params, args.overlays)
    run_mias(args.data, params, args.overlays)
    cases = load_cbis(args.data) if (args.data / "cbis-ddsm-sample").is_dir() else []
    run_cbis(cases, params, args.overlays)
    mlo = [pixels for _, pixels, _, view in cases if view is ViewPosition.MLO]
    if not args.no_speed and mlo:
        run_speed(mlo[0], params)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
