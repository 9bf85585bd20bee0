"""Audit the phantom truth in the detector's own input: placement, visibility, labels, crops.

Every study of a ``phantom:n=N,seed=S,size=full`` data spec is rendered exactly as
:mod:`mammocad.datasets.phantoms` renders it (same per-study seeds and rates, defective views
left out), preprocessed with the shipped bundle's :class:`PreprocessParams`, and its truth
mapped into model-input pixels by :func:`mammocad.datasets.samples.target_for`, the training
and evaluation target. Each view is rendered a second time without its lesions, and once per
lesion with that lesion alone when the view shows several (lesions draw from their own random
streams, so the anatomy and noise are identical): the difference image is each lesion's own
rendered signal. Mapped through the same :class:`Transform` and tissue mask as the model
input, it gives

1. geometry: offset between the truth box centre and the centre of the lesion's signal
   (support = input pixels at >= 25 % of the lesion's peak, the generator's own rule), the
   IoU of the box with that support's bounding box, the share of the signal inside the box;
2. visibility: contrast-to-noise ratio = mean signal over the core (>= 50 % of peak) /
   standard deviation of the lesion-free input around the box (a ring one box-size wide,
   tissue only), plus where the signal ends up (outside the tissue mask, in the pectoral
   muscle, cut by the crop);
3. labels: class and malignancy against the catalog, CC/MLO consistency, nipple distance;
4. training windows: how often :class:`LesionCropper` drops a lesion whose signal is still
   largely inside the window (the fragment is then taught as background), and whether the
   geometric augmentation keeps boxes on their lesions.

    .venv/bin/python benchmarks/phantom_truth_audit.py --n 25 --seed 900000

Research software, not for clinical use.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mammocad.datasets.phantoms import (
    ANNOTATED_LABELS,
    PhantomSpec,
    study_seed,
    view_image,
    view_lesions,
)
from mammocad.datasets.samples import target_for
from mammocad.detect.containers import DetectionTarget
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.preprocess.geometry import to_input
from mammocad.structures import FindingLabel, Laterality, PreprocessedImage
from mammocad.synthetic import lesions as catalog
from mammocad.synthetic.anatomy import rasterize
from mammocad.synthetic.enum import ChestWallSide
from mammocad.synthetic.geometry import view_geometry
from mammocad.synthetic.plan import LesionRequest, StudyPlan, ViewPlan, plan_study
from mammocad.synthetic.study import chest_wall_side, render_view
from mammocad.synthetic.truth import BreastLesion
from mammocad.train.augment import Augmenter
from mammocad.train.crops import MIN_VISIBILITY, LesionCropper
from mammocad.train.data import DetectionSample

MANIFEST = Path("models/mammocad-detector/manifest.json")
SUPPORT = 0.25  # the generator's box rule: >= 25 % of the lesion's peak
CORE = 0.5


@dataclass(kw_only=True)
class Row:
    """One lesion in one view, measured in model-input pixels."""

    study: int
    lesion_id: str
    label: str
    subtype: str
    malignant: bool
    view: str
    laterality: str
    stored_right: bool  # stored with the chest wall on the right (mirrored by preprocessing)
    in_target: bool  # present in the training / evaluation target
    box_w: float = math.nan
    box_h: float = math.nan
    dx: float = math.nan  # box centre − signal-support centre, input pixels
    dy: float = math.nan
    cx_w: float = math.nan  # box centre − signal centroid (weighted), input pixels
    cy_w: float = math.nan
    iou: float = math.nan  # box vs bounding box of the signal support
    inside: float = math.nan  # share of the (positive) signal inside the box
    scale_w: float = math.nan  # box width / support width
    scale_h: float = math.nan
    cnr: float = math.nan
    peak_cnr: float = math.nan
    peak: float = math.nan
    bg_std: float = math.nan
    visible_share: float = math.nan  # signal kept by the model input (tissue mask and crop)
    pectoral_share: float = math.nan  # signal inside the true pectoral muscle
    box_in_content: float = math.nan  # share of the unclipped input box inside the content
    depth_err_mm: float = math.nan  # |nipple x − signal centre x| − depth_mm
    nipple_distance_ok: bool = True
    label_ok: bool = True
    flip_ok: bool = True  # preprocessing mirrored exactly the views stored chest wall right
    box_mm: float = math.nan  # geometric mean side of the stored box, mm
    forced: bool = False  # from the --per-type studies


def params_of(manifest: Path) -> tuple[PreprocessParams, list[str]]:
    data = json.loads(manifest.read_text(encoding="utf-8"))
    pre = data["preprocessing"]
    return PreprocessParams.from_dict(pre), list(data["classes"])


def _without(plan: StudyPlan, view_plan: ViewPlan, keep: Sequence[BreastLesion]) -> StudyPlan:
    breasts = dict(plan.breasts)
    side = view_plan.laterality
    breasts[side] = replace(breasts[side], lesions=tuple(keep))
    return replace(plan, breasts=breasts)


def _pectoral(plan: StudyPlan, view_plan: ViewPlan) -> np.ndarray | None:
    grid = plan.variant.grid
    geom = view_geometry(
        plan.breasts[view_plan.laterality].shape, grid, view_plan.view, cut_off=view_plan.cut_off
    )
    if geom.pectoral is None:
        return None
    mask = rasterize(geom.pectoral, grid.rows, grid.columns, grid.spacing_mm) > 0.5
    if chest_wall_side(plan.variant, view_plan.laterality) is ChestWallSide.RIGHT:
        mask = mask[:, ::-1]
    return mask


def _ring_std(background: np.ndarray, inside: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 4.0), max(y2 - y1, 4.0)
    rows, cols = background.shape
    ox1, oy1 = max(int(x1 - w), 0), max(int(y1 - h), 0)
    ox2, oy2 = min(math.ceil(x2 + w), cols), min(math.ceil(y2 + h), rows)
    ring = np.zeros_like(inside)
    ring[oy1:oy2, ox1:ox2] = True
    ring[max(int(y1), 0) : math.ceil(y2), max(int(x1), 0) : math.ceil(x2)] = False
    ring &= inside
    values = background[ring]
    return float(values.std()) if values.size >= 16 else math.nan


def _support_box(signal: np.ndarray, level: float) -> np.ndarray | None:
    rows, cols = np.nonzero(signal >= level)
    if len(rows) == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box_sum(signal: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = (round(v) for v in box)
    return float(signal[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)].sum())


def _input_inside(prepared: PreprocessedImage) -> np.ndarray:
    """The model input's tissue pixels (channel 0 is set to exactly 0 elsewhere)."""
    mask = to_input(prepared.tissue_mask.astype(np.float32), prepared.transform) > 0.5
    return np.asarray(mask)


def measure_view(
    *,
    study: int,
    plan: StudyPlan,
    view_plan: ViewPlan,
    params: PreprocessParams,
    classes: list[str],
    crops: list[dict[str, Any]],
    augmented: list[dict[str, Any]],
    crop_seeds: int,
) -> list[Row]:
    view = render_view(plan, view_plan)
    if view.truth.defects or not view.truth.lesions:
        return []
    lesions = {lesion.lesion_id: lesion for lesion in plan.breasts[view_plan.laterality].lesions}
    prepared = preprocess_image(view_image(view, source="audit"), params)
    transform = prepared.transform
    annotations = view_lesions(view)
    target = target_for(
        prepared,
        lesions=annotations,
        nipple=view.truth.nipple,
        annotated=ANNOTATED_LABELS,
        classes=classes,
    )
    target_boxes = [
        b
        for b, lab in zip(target.boxes.numpy(), target.labels.numpy(), strict=True)
        if classes[int(lab)] != "nipple"
    ]
    blank = render_view(_without(plan, view_plan, ()), view_plan).pixels
    background = to_input(blank, transform)
    inside = _input_inside(prepared)
    pectoral = _pectoral(plan, view_plan)
    crop_x0, crop_y0, crop_x1, crop_y1 = transform.crop_box
    if transform.flipped:
        cols = transform.original_size[1]
        crop_x0, crop_x1 = cols - crop_x1, cols - crop_x0
    spacing = view.truth.pixel_spacing_mm
    several = len(view.truth.lesions) > 1
    rows: list[Row] = []
    signals: list[np.ndarray] = []
    target_index = 0
    for truth in view.truth.lesions:
        lesion = lesions[truth.lesion_id]
        if several:
            alone = render_view(_without(plan, view_plan, (lesion,)), view_plan).pixels
            diff = alone - blank
        else:
            diff = view.pixels - blank
        positive = np.clip(diff, 0.0, None)
        signal = to_input(positive, transform) * inside
        signals.append(signal)
        kind = catalog.lesion_types(lesion.label, lesion.malignant, lesion.subtype)
        row = Row(
            study=study,
            lesion_id=truth.lesion_id,
            label=truth.label.value,
            subtype=lesion.subtype,
            malignant=truth.malignant,
            view=view_plan.view.value,
            laterality=view_plan.laterality.value,
            stored_right=view.truth.chest_wall_side is ChestWallSide.RIGHT,
            in_target=False,
            label_ok=(
                truth.label is lesion.label
                and truth.malignant == lesion.malignant
                and len(kind) == 1
                and kind[0].malignant == truth.malignant
            ),
            nipple_distance_ok=abs(truth.nipple_distance_mm - lesion.depth_mm) < 1e-6,
            flip_ok=transform.flipped == (view.truth.chest_wall_side is ChestWallSide.RIGHT),
            box_mm=math.sqrt((truth.box[2] - truth.box[0]) * (truth.box[3] - truth.box[1]))
            * spacing,
        )
        total = float(positive.sum())
        content = np.zeros_like(positive, dtype=bool)
        content[crop_y0:crop_y1, crop_x0:crop_x1] = True
        row.visible_share = float((positive * (prepared.tissue_mask & content)).sum()) / max(
            total, 1e-12
        )
        if pectoral is not None:
            row.pectoral_share = float((positive * pectoral).sum()) / max(total, 1e-12)
        else:
            row.pectoral_share = 0.0
        # the truth's box in input pixels, and whether target_for kept it
        raw = transform.boxes_to_input(np.array([truth.box]))[0]
        clipped = transform.clip_to_content(raw[None])[0]
        raw_area = (raw[2] - raw[0]) * (raw[3] - raw[1])
        row.box_in_content = float(
            (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / max(raw_area, 1e-9)
        )
        kept = (clipped[2] - clipped[0]) >= 2.0 and (clipped[3] - clipped[1]) >= 2.0
        if truth.label.value in classes and kept and target_index < len(target_boxes):
            box = np.asarray(target_boxes[target_index], dtype=np.float64)
            target_index += 1
            row.in_target = bool(np.allclose(box, clipped, atol=1e-2))
        else:
            box = clipped
        row.box_w, row.box_h = box[2] - box[0], box[3] - box[1]
        peak = float(signal.max())
        row.peak = peak
        if peak > 0:
            support = _support_box(signal, SUPPORT * peak)
            assert support is not None
            row.dx = (box[0] + box[2]) / 2 - (support[0] + support[2]) / 2
            row.dy = (box[1] + box[3]) / 2 - (support[1] + support[3]) / 2
            ys, xs = np.mgrid[: signal.shape[0], : signal.shape[1]]
            weight = float(signal.sum())
            row.cx_w = (box[0] + box[2]) / 2 - float((signal * (xs + 0.5)).sum()) / weight
            row.cy_w = (box[1] + box[3]) / 2 - float((signal * (ys + 0.5)).sum()) / weight
            row.iou = _iou(box, support)
            row.inside = _box_sum(signal, box) / weight
            row.scale_w = row.box_w / max(support[2] - support[0], 1e-9)
            row.scale_h = row.box_h / max(support[3] - support[1], 1e-9)
            core = signal >= CORE * peak
            row.bg_std = _ring_std(background, inside, box)
            row.cnr = float(signal[core].mean()) / row.bg_std
            row.peak_cnr = peak / row.bg_std
            # depth: the signal's centroid in stored pixels against the truth nipple
            weight_o = float(positive.sum())
            xo = float((positive.sum(axis=0) * (np.arange(positive.shape[1]) + 0.5)).sum())
            xo /= weight_o
            if view.truth.nipple is not None and lesion.label is not FindingLabel.SKIN_THICKENING:
                row.depth_err_mm = abs(view.truth.nipple[0] - xo) * spacing - lesion.depth_mm
        else:
            row.inside = 0.0
        rows.append(row)
    crops.extend(_crop_audit(target, signals, rows, classes, crop_seeds, prepared))
    augmented.extend(_augment_audit(target, signals, rows, classes, crop_seeds, prepared))
    return rows


class _GeometryOnly(Augmenter):
    """The training augmentation without its photometric part (which would alter the
    signal channel riding along)."""

    def _photometric(self, A: Any) -> list[Any]:
        return []


def _augment_audit(
    target: DetectionTarget,
    signals: list[np.ndarray],
    rows: list[Row],
    classes: list[str],
    seeds: int,
    prepared: PreprocessedImage,
) -> Iterable[dict[str, Any]]:
    """Each lesion's signal rides along as a third channel through the geometric
    augmentation; per (lesion, seed): kept or dropped, and the kept box against the moved
    signal's support."""
    nipple = classes.index("nipple")
    labels = target.labels.numpy()
    lesion_rows = [r for r in rows if r.in_target]
    lesion_signals = [s for s, r in zip(signals, rows, strict=True) if r.in_target]
    order = np.flatnonzero(labels != nipple)
    augmenter = _GeometryOnly()
    for row, signal, index in zip(lesion_rows, lesion_signals, order, strict=True):
        peak = float(signal.max())
        if peak <= 0:
            continue
        image = np.concatenate([prepared.input, (signal / peak)[None]]).astype(np.float32)
        one = DetectionTarget(
            boxes=target.boxes[index : index + 1],
            labels=target.labels[index : index + 1],
            malignant=target.malignant[index : index + 1],
            annotated=target.annotated,
        )
        sample = DetectionSample(image_id="audit", image=torch.from_numpy(image), target=one)
        total = float(signal.sum()) / peak
        for seed in range(seeds):
            moved = augmenter(sample, seed=seed)
            moved_signal = moved.image[2].numpy()
            share = float(moved_signal.sum()) / total
            if len(moved.target.boxes) == 0:
                yield {"label": row.label, "kept": 0.0, "share": share, "iou": math.nan}
                continue
            box = moved.target.boxes[0].numpy().astype(np.float64)
            support = _support_box(moved_signal, SUPPORT * float(moved_signal.max()))
            iou = _iou(box, support) if support is not None else 0.0
            yield {"label": row.label, "kept": 1.0, "share": share, "iou": iou}


def _crop_audit(
    target: DetectionTarget,
    signals: list[np.ndarray],
    rows: list[Row],
    classes: list[str],
    seeds: int,
    prepared: PreprocessedImage,
) -> Iterable[dict[str, Any]]:
    """Per (lesion, window) that the window touches: kept or dropped, and its signal share."""
    sample = DetectionSample(
        image_id="audit",
        image=torch.from_numpy(np.ascontiguousarray(prepared.input)),
        target=target,
    )
    cropper = LesionCropper(size=(512, 512), lesion_fraction=0.7, landmark=classes.index("nipple"))
    lesion_rows = [r for r in rows if r.in_target]
    lesion_signals = [s for s, r in zip(signals, rows, strict=True) if r.in_target]
    labels = sample.target.labels.numpy()
    boxes = sample.target.boxes.numpy()[labels != classes.index("nipple")]
    for seed in range(seeds):
        window = cropper(sample, seed=seed)
        # recover the window origin from the image itself
        top, left = _origin(sample.image[0].numpy(), window.image[0].numpy())
        kept = window.target.boxes.numpy() + np.array([left, top, left, top])
        for row, signal, box in zip(lesion_rows, lesion_signals, boxes, strict=True):
            total = float(signal.sum())
            part = float(signal[top : top + 512, left : left + 512].sum())
            if part <= 0.0 or total <= 0.0:
                continue
            found = any(
                np.allclose(np.maximum(box[:2], [left, top]), k[:2], atol=1e-3)
                and np.allclose(np.minimum(box[2:], [left + 512, top + 512]), k[2:], atol=1e-3)
                for k in kept
            )
            yield {
                "label": row.label,
                "kept": float(found),
                "share": part / total,
            }


def _origin(full: np.ndarray, window: np.ndarray) -> tuple[int, int]:
    result = cv2.matchTemplate(full.astype(np.float32), window.astype(np.float32), cv2.TM_SQDIFF)
    _, _, location, _ = cv2.minMaxLoc(result)
    return int(location[1]), int(location[0])


def _fmt(values: Sequence[float], digits: int = 2) -> str:
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return "–"
    return f"{np.median(array):.{digits}f}"


def _mean_sd(values: Sequence[float]) -> str:
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return "–"
    return f"{array.mean():+.1f} ± {array.std():.1f}"


def print_tables(
    rows: list[Row], crops: list[dict[str, Any]], augmented: list[dict[str, Any]]
) -> None:
    print("\n## 1. Geometry (model-input pixels; box = training/evaluation target)\n")
    print(
        "| group | n | box−support centre dx | dy | box−centroid dx | dy | IoU median (min) "
        "| signal inside box median (min) | box/support w, h |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.in_target:
            groups[r.label].append(r)
            side = "stored chest wall right" if r.stored_right else "stored chest wall left"
            groups[f"{r.view} {r.laterality} ({side})"].append(r)
    for name in sorted(groups):
        g = groups[name]
        ious = [r.iou for r in g]
        print(
            f"| {name} | {len(g)} | {_mean_sd([r.dx for r in g])} | {_mean_sd([r.dy for r in g])}"
            f" | {_mean_sd([r.cx_w for r in g])} | {_mean_sd([r.cy_w for r in g])}"
            f" | {_fmt(ious)} ({np.nanmin(ious):.2f}) | {_fmt([r.inside for r in g])}"
            f" ({np.nanmin([r.inside for r in g]):.2f}) | {_fmt([r.scale_w for r in g])},"
            f" {_fmt([r.scale_h for r in g])} |"
        )

    print("\n## 2. Visibility (CNR = core mean signal / std of lesion-free input in a ring)\n")
    print(
        "| class | malignant | n | CNR median | CNR < 1 | CNR < 0.5 | peak CNR median "
        "| peak (display) median | ring std median |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    by: dict[tuple[str, bool], list[Row]] = defaultdict(list)
    for r in rows:
        if r.in_target:
            by[(r.label, r.malignant)].append(r)
            by[("any", r.malignant)].append(r)
    for (label, malignant), g in sorted(by.items()):
        cnr = np.array([r.cnr for r in g])
        print(
            f"| {label} | {'yes' if malignant else 'no'} | {len(g)} | {_fmt(list(cnr))}"
            f" | {np.mean(cnr < 1):.2f} | {np.mean(cnr < 0.5):.2f}"
            f" | {_fmt([r.peak_cnr for r in g])} | {_fmt([r.peak for r in g], 3)}"
            f" | {_fmt([r.bg_std for r in g], 3)} |"
        )
    print("\n| subtype | n | CNR median | CNR < 1 |")
    print("|---|---|---|---|")
    sub: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.in_target:
            sub[f"{r.label}/{r.subtype}"].append(r)
    for name, g in sorted(sub.items()):
        cnr = np.array([r.cnr for r in g])
        print(f"| {name} | {len(g)} | {_fmt(list(cnr))} | {np.mean(cnr < 1):.2f} |")

    print("\n## 2b. Where the signal goes\n")
    n_all = len(rows)
    print(
        f"- truths in views without defects: {n_all}; in the target: "
        f"{sum(r.in_target for r in rows)}"
    )
    lost = [r for r in rows if r.visible_share < 0.5]
    print(
        f"- signal share kept by the model input (tissue mask, crop): median "
        f"{_fmt([r.visible_share for r in rows])}, min {min(r.visible_share for r in rows):.2f};"
        f" < 0.5 for {len(lost)} truths {[(r.study, r.lesion_id, r.view) for r in lost]}"
    )
    pect = [r for r in rows if r.pectoral_share > 0.1]
    print(
        f"- > 10 % of the signal in the pectoral muscle: {len(pect)} "
        f"{[(r.study, r.lesion_id, r.label, round(r.pectoral_share, 2)) for r in pect]}"
    )
    print(
        f"- preprocessing mirrored a view stored chest wall left, or missed one stored "
        f"right: {sum(not r.flip_ok for r in rows)}"
    )
    pad = [r for r in rows if r.box_in_content < 0.999]
    print(f"- truth boxes reaching into the zero padding: {len(pad)}")
    print(
        f"- truths left out of the target (< 2 px, class not detected): "
        f"{sum(not r.in_target for r in rows)}"
    )

    print("\n## 3. Labels and cross-view consistency\n")
    print(f"- class/malignancy disagreeing with the catalog: {sum(not r.label_ok for r in rows)}")
    print(f"- nipple_distance_mm != depth_mm: {sum(not r.nipple_distance_ok for r in rows)}")
    for view in ("CC", "MLO"):
        errs = [r.depth_err_mm for r in rows if r.view == view and not math.isnan(r.depth_err_mm)]
        print(
            f"- {view}: |nipple x − signal centroid x| − depth_mm: {_mean_sd(errs)} mm "
            f"(n={len(errs)}, max |err| {max(abs(e) for e in errs):.1f} mm)"
        )

    print("\n## 4. Training windows (LesionCropper 512×512, lesion fraction 0.7)\n")
    print(
        "| class | (lesion, window) pairs touched | kept | dropped with ≥ 50 % of signal "
        "in window | dropped with ≥ 25 % | kept with < 25 % |"
    )
    print("|---|---|---|---|---|---|")
    labels = sorted({c["label"] for c in crops})
    for name in [*labels, "any"]:
        cg = [c for c in crops if name in ("any", c["label"])]
        if not cg:
            continue
        kept = [c for c in cg if c["kept"]]
        dropped = [c for c in cg if not c["kept"]]
        print(
            f"| {name} | {len(cg)} | {len(kept)} | {sum(c['share'] >= 0.5 for c in dropped)}"
            f" | {sum(c['share'] >= 0.25 for c in dropped)}"
            f" | {sum(c['share'] < 0.25 for c in kept)} |"
        )
    print(f"\n(MIN_VISIBILITY = {MIN_VISIBILITY}: a box cut below half its area is dropped)")
    print("\n## 4b. Geometric augmentation (flip, scale, shift; the signal rides along)\n")
    print(
        "| class | (lesion, draw) | kept | kept: IoU box vs moved support median (min) "
        "| dropped with ≥ 50 % of signal left |"
    )
    print("|---|---|---|---|---|")
    for name in [*sorted({a["label"] for a in augmented}), "any"]:
        cg = [a for a in augmented if name in ("any", a["label"])]
        if not cg:
            continue
        kept = [a for a in cg if a["kept"]]
        ious = [a["iou"] for a in kept]
        low = f"{np.nanmin(ious):.2f}" if kept else "–"
        print(
            f"| {name} | {len(cg)} | {len(kept)} | {_fmt(ious)} ({low})"
            f" | {sum(a['share'] >= 0.5 for a in cg if not a['kept'])} |"
        )


def print_per_type(rows: list[Row]) -> None:
    print("\n## 5. Every catalog lesion type (forced studies, one lesion each)\n")
    print(
        "| type | n | IoU median (min) | inside min | dx, dy mean ± sd | box mm CC / MLO "
        "| CNR median | CNR < 1 | kept signal min | pectoral > 10 % | labels ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[f"{'malignant' if r.malignant else 'benign'} {r.label}/{r.subtype}"].append(r)
    for name, g in sorted(groups.items()):
        cnr = np.array([r.cnr for r in g])
        ious = [r.iou for r in g]
        cc = [r.box_mm for r in g if r.view == "CC"]
        mlo = [r.box_mm for r in g if r.view == "MLO"]
        print(
            f"| {name} | {len(g)} | {_fmt(ious)} ({np.nanmin(ious):.2f})"
            f" | {np.nanmin([r.inside for r in g]):.2f}"
            f" | {_mean_sd([r.dx for r in g])}, {_mean_sd([r.dy for r in g])}"
            f" | {_fmt(cc, 1)} / {_fmt(mlo, 1)} | {_fmt(list(cnr))} | {np.mean(cnr < 1):.2f}"
            f" | {min(r.visible_share for r in g):.2f}"
            f" | {sum(r.pectoral_share > 0.1 for r in g)}"
            f" | {all(r.label_ok and r.nipple_distance_ok for r in g)} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=25, help="studies (default 25)")
    parser.add_argument("--seed", type=int, default=900000, help="phantom set seed")
    parser.add_argument("--size", default="full", choices=["small", "full"])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--crop-seeds", type=int, default=8, help="windows per view")
    parser.add_argument(
        "--per-type",
        type=int,
        default=0,
        help="also K studies per catalog lesion type with that lesion forced (covers the rare "
        "types: distortion, skin thickening, fine linear calcifications…)",
    )
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args(argv)

    params, classes = params_of(args.manifest)
    spec = PhantomSpec(n_studies=args.n, seed=args.seed, size=args.size)
    rows: list[Row] = []
    crops: list[dict[str, Any]] = []
    augmented: list[dict[str, Any]] = []
    start = time.perf_counter()
    plans = [
        plan_study(
            seed=study_seed(spec.seed, index),
            size=spec.size,
            malignant_rate=spec.malignant_rate,
            benign_rate=spec.benign_rate,
            one_view_rate=spec.one_view_rate,
        )
        for index in range(spec.n_studies)
    ]
    for k, kind in enumerate(catalog.CATALOG.values()):
        for j in range(args.per_type):
            request = LesionRequest(
                label=kind.label, malignant=kind.malignant, subtype=kind.subtype
            )
            side = Laterality.R if j % 2 == 0 else Laterality.L
            seed = study_seed(spec.seed + 1, 1000 * k + j)
            plans.append(plan_study(seed=seed, size=spec.size, lesions={side: [request]}))
    for index, plan in enumerate(plans):
        for view_plan in plan.views:
            if view_plan.defects:
                continue
            if not any(
                view_plan.view in lesion.views
                for lesion in plan.breasts[view_plan.laterality].lesions
            ):
                continue
            rows.extend(
                measure_view(
                    study=index,
                    plan=plan,
                    view_plan=view_plan,
                    params=params,
                    classes=classes,
                    crops=crops,
                    augmented=augmented,
                    crop_seeds=args.crop_seeds,
                )
            )
    heldout = [r for r in rows if r.study < spec.n_studies]
    forced = [r for r in rows if r.study >= spec.n_studies]
    for r in forced:
        r.forced = True
    print(
        f"phantom:n={args.n},seed={args.seed},size={args.size}: {len(heldout)} truths; "
        f"{args.per_type} forced studies per lesion type: {len(forced)} truths; "
        f"{time.perf_counter() - start:.0f} s"
    )
    print_tables(heldout, crops, augmented)
    if forced:
        print_per_type(forced)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
