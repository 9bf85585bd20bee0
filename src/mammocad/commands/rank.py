"""``mammocad train ranker``: fit a bundle's lesion ranker on its own held-out detections.

Reads ``eval detector`` output folders (``images.json``: every image's detections and truths;
``froc.json``: which bundle made them), fits :mod:`mammocad.ranker` and writes a COPY of the
bundle with ``ranker.json``; the source bundle is never modified. With ``--test`` folders
(evaluations of the same bundle on other studies) it measures the malignant FROC with and
without the ranker on them, paired over images, and records it in the manifest and card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from mammocad.detect.bundle import (
    MODEL_CARD_FILE,
    BundleManifest,
    read_manifest,
    write_bundle_copy,
    write_manifest,
)
from mammocad.eval.froc import MALIGNANT, FrocDifference, ImagePredictions
from mammocad.eval.froc_pool import IMAGES_FILE, FrocImages, compare_froc, load_froc_images
from mammocad.ranker.bundle import save_ranker
from mammocad.ranker.model import LesionRanker, fit_ranker


@dataclass(frozen=True, kw_only=True)
class RankerOutcome:
    bundle: Path
    boxes: int
    malignant_boxes: int
    images: int
    test: FrocDifference | None  # malignant curve, with the ranker minus without


def run_train_ranker(
    *,
    evaluations: Sequence[Path],
    model: Path,
    out: Path,
    test: Sequence[Path] = (),
    version: str | None = None,
    bootstrap: int = 2000,
    console: Console | None = None,
) -> RankerOutcome:
    """Fit the ranker on ``evaluations`` of ``model`` and write ``out``, a ranked copy."""
    console = console or Console(stderr=True)
    manifest = read_manifest(model)
    if out.exists() or out.resolve() == model.resolve():
        raise ValueError(f"{out} exists: --out must be a new folder (the source is never changed)")
    training = [_evaluation_of(folder, manifest) for folder in evaluations]
    config = manifest.detector
    ranker, rows = fit_ranker(
        [e.images for e in training], classes=config.lesion_classes, input_size=config.input_size
    )
    malignant_boxes = int(rows.y.sum())
    console.print(
        f"ranker fitted on {len(rows.y)} boxes of {rows.images} images "
        f"({malignant_boxes} on a malignant lesion)"
    )
    difference = None
    metrics: dict[str, Any] = {}
    if test:
        held_out = [_evaluation_of(folder, manifest) for folder in test]
        difference = _malignant_gain([e.images for e in held_out], ranker, bootstrap=bootstrap)
        points = list(
            zip(
                difference.fp_rates,
                difference.difference,
                difference.ci_low,
                difference.ci_high,
                strict=True,
            )
        )
        metrics = {
            f"test_malignant_sens@{rate:g}fp_gain": {
                "value": round(float(value), 4),
                "ci_low": round(float(low), 4),
                "ci_high": round(float(high), 4),
            }
            for rate, value, low, high in points
        }
        metrics["test_data"] = [e.data for e in held_out]
        metrics["test_malignant_lesions"] = difference.n_truths
        console.print(
            f"held-out malignant sensitivity, with the ranker minus without "
            f"({difference.n_truths} lesions, paired 95% intervals): "
            + "  ".join(
                f"{rate:g} FP: {value:+.2f} [{low:+.2f}, {high:+.2f}]"
                for rate, value, low, high in points
            )
        )
    training_data = {
        "evaluations": [e.data for e in training],
        "images": rows.images,
        "boxes": len(rows.y),
        "malignant_boxes": malignant_boxes,
    }
    new_version = version or f"{manifest.version}+rank.{datetime.now(UTC):%Y%m%d}"
    _write_bundle(model, out, manifest, ranker, new_version, training_data, metrics)
    return RankerOutcome(
        bundle=out,
        boxes=len(rows.y),
        malignant_boxes=malignant_boxes,
        images=rows.images,
        test=difference,
    )


@dataclass(frozen=True)
class _Evaluation:
    images: FrocImages  # images.json: detections and truths per image
    data: list[Any]  # the data specifications it ran on, as froc.json records them


def _evaluation_of(folder: Path, manifest: BundleManifest) -> _Evaluation:
    """The folder's per-image detections, refused when another bundle made them."""
    summary = _froc_summary(folder)
    made_by = summary.get("model", {})
    same = (
        made_by.get("sha256") == manifest.sha256
        if "sha256" in made_by
        else (made_by.get("name"), made_by.get("version")) == (manifest.name, manifest.version)
    )
    if not same:
        raise ValueError(
            f"{folder} holds detections of {made_by.get('name')} {made_by.get('version')}, not "
            f"of {manifest.name} {manifest.version}: run `mammocad eval detector --model` with "
            "the bundle the ranker is for"
        )
    return _Evaluation(
        images=load_froc_images(folder / IMAGES_FILE), data=list(summary.get("data", []))
    )


def _froc_summary(folder: Path) -> dict[str, Any]:
    path = folder / "froc.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"cannot read {path} ({error}): give folders `mammocad eval detector --out` wrote"
        ) from error
    return dict(summary)


def _malignant_gain(
    evaluations: Sequence[FrocImages], ranker: LesionRanker, *, bootstrap: int
) -> FrocDifference:
    """Malignant FROC with the ranker minus without, over the images of ``evaluations``."""
    first = evaluations[0]
    without = FrocImages(
        classes=first.classes,
        image_ids=[f"{k}/{i}" for k, e in enumerate(evaluations) for i in e.image_ids],
        predictions=[replace(p, malignant_lesion=None) for e in evaluations for p in e.predictions],
        truths=[t for e in evaluations for t in e.truths],
    )
    ranked = replace(without, predictions=[_ranked(p, ranker) for p in without.predictions])
    return compare_froc(without, ranked, bootstrap=bootstrap)[MALIGNANT]


def _ranked(pred: ImagePredictions, ranker: LesionRanker) -> ImagePredictions:
    probabilities = ranker.probabilities(pred.boxes, pred.scores, pred.labels, pred.malignancy)
    return replace(pred, malignant_lesion=probabilities)


def _write_bundle(
    model: Path,
    out: Path,
    manifest: BundleManifest,
    ranker: LesionRanker,
    version: str,
    training_data: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    def fill(copy: Path) -> None:
        write_manifest(copy, replace(manifest, version=version))
        card = copy / MODEL_CARD_FILE
        if card.is_file():  # the title names the version
            lines = card.read_text(encoding="utf-8").split("\n")
            lines[0] = f"# {manifest.name} {version}"
            card.write_text("\n".join(lines), encoding="utf-8")
        save_ranker(ranker, copy, training_data=training_data, metrics=metrics)

    write_bundle_copy(model, out, fill)
