"""``mammocad eval detector``: FROC of a model bundle on data specs (phantoms, mini-MIAS).

The samples are prepared with the BUNDLE's preprocessing, as at inference. Writes
``froc.csv``, ``froc.png`` and ``froc.json`` (the bundle's metrics format) into the output
folder, and ``images.json``, every image's truths and detections, which ``mammocad eval
pool`` combines across cross-validation folds (:mod:`mammocad.eval.froc_pool`). The hit rule
is documented in :mod:`mammocad.eval.froc`.

``score_threshold`` / ``detections_per_image`` override the bundle's (0.05 and 20 by default)
for the evaluation only: a FROC curve wants every candidate, and with the bundle's cut-off the
curve stops where the candidates run out (it flattens at 2–4 FP per image). Lowering them only
adds candidates ranked below the ones already kept — non-maximum suppression visits boxes in
score order — so the sensitivities at the FP rates the bundle did reach do not change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from mammocad.commands.froc_table import froc_table
from mammocad.datasets.spec import DataSpec, build_samples, refuse_repeat
from mammocad.detect.bundle import LoadedBundle, load_bundle
from mammocad.detect.containers import Detections
from mammocad.eval.froc import FrocReport, evaluate_froc, plot_froc, write_froc_csv
from mammocad.eval.froc_pool import (
    BY_PRODUCT,
    BY_RANKER,
    IMAGES_FILE,
    load_froc_images,
    malignant_ranking_of,
    pool_froc,
    save_froc_images,
)
from mammocad.malignancy.bundle import LoadedClassifier, load_classifier
from mammocad.preprocess import PreprocessParams
from mammocad.ranker.bundle import load_ranker
from mammocad.train.data import DetectionSample
from mammocad.train.validate import detect_dataset, froc_images


@dataclass(frozen=True, kw_only=True)
class DetectorEvaluation:
    report: FrocReport
    n_images: int
    csv: Path
    png: Path | None
    json: Path


@dataclass(frozen=True, kw_only=True)
class SpecDetections:
    """A bundle's detections on every sample of some data specifications."""

    bundle: LoadedBundle
    samples: Sequence[DetectionSample]
    results: list[tuple[DetectionSample, Detections]]
    classifier: LoadedClassifier | None  # the bundle's lesion classifier, when it was used


def detect_specs(
    model: Path,
    data: Sequence[DataSpec],
    *,
    workers: int = 1,
    device: str = "cpu",
    score_threshold: float | None = None,
    detections_per_image: int | None = None,
    use_classifier: bool = True,
    mirror_average: bool = False,
) -> SpecDetections:
    """Run the bundle at ``model`` (with its lesion classifier, unless ``use_classifier`` is
    False) over the samples of ``data``, prepared with the bundle's preprocessing; the RoI
    heads' score cut-off and per-image cap can be overridden (see the module docstring)."""
    refuse_repeat(data, "evaluation")
    bundle = load_bundle(model)
    heads = bundle.model.roi_heads
    if score_threshold is not None:
        heads.score_thresh = score_threshold
    if detections_per_image is not None:
        heads.detections_per_img = detections_per_image
    params = PreprocessParams.from_dict(bundle.manifest.preprocessing)
    config = bundle.manifest.detector
    samples = build_samples(data, classes=config.classes, params=params, workers=workers)
    if not samples:
        raise ValueError("the data specifications produced no images to evaluate on")
    target = torch.device(device)
    classifier = load_classifier(model, bundle.manifest) if use_classifier else None
    results = detect_dataset(
        bundle.model.to(target),
        samples,
        device=target,
        classifier=None if classifier is None else classifier.model.to(target),
        mirror_average=mirror_average,
    )
    return SpecDetections(bundle=bundle, samples=samples, results=results, classifier=classifier)


def write_froc_files(
    report: FrocReport, out_dir: Path, *, title: str, console: Console | None = None
) -> tuple[Path, Path | None]:
    """``froc.csv`` and, where matplotlib is installed, ``froc.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_froc_csv(report, out_dir / "froc.csv")
    try:
        return csv_path, plot_froc(report, out_dir / "froc.png", title=title)
    except ImportError as error:  # matplotlib missing on a bare GPU node: the CSV still counts
        (console or Console(stderr=True)).print(f"[yellow]FROC plot skipped: {error}[/yellow]")
        return csv_path, None


def run_eval_pool(
    *, runs: Sequence[Path], out_dir: Path, bootstrap: int = 1000, console: Console | None = None
) -> FrocReport:
    """One FROC over the images of several ``eval detector`` output folders (the folds of a
    cross-validation); prints the table and writes ``froc.csv``/``.png``/``.json``."""
    console = console or Console(stderr=True)
    evaluations = [load_froc_images(Path(run) / IMAGES_FILE) for run in runs]
    report = pool_froc(evaluations, bootstrap=bootstrap, names=[str(run) for run in runs])
    write_froc_files(report, out_dir, title="pooled FROC", console=console)
    summary = {
        "pooled": [str(run) for run in runs],
        "images": sum(len(e.image_ids) for e in evaluations),
        "malignant_ranking": malignant_ranking_of(evaluations[0]),  # the same in every fold
        "metrics": report.to_metrics(),
        "all_candidates": report.all_candidates(),
    }
    (out_dir / "froc.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(froc_table(report))
    return report


def run_eval_detector(
    *,
    model: Path,
    data: Sequence[DataSpec],
    out_dir: Path,
    bootstrap: int = 1000,
    workers: int = 1,
    device: str = "cpu",
    score_threshold: float | None = None,
    detections_per_image: int | None = None,
    mirror_average: bool = False,
    use_ranker: bool = True,
    console: Console | None = None,
) -> DetectorEvaluation:
    """Evaluate ``model`` on ``data``; print the table and write CSV, PNG and JSON."""
    console = console or Console(stderr=True)
    run = detect_specs(
        model,
        data,
        workers=workers,
        device=device,
        score_threshold=score_threshold,
        detections_per_image=detections_per_image,
        mirror_average=mirror_average,
    )
    bundle, samples, results, classifier = run.bundle, run.samples, run.results, run.classifier
    heads = bundle.model.roi_heads
    config = bundle.manifest.detector
    ranker = load_ranker(model, bundle.manifest) if use_ranker else None
    images = froc_images(results, config, ranker)
    report = evaluate_froc(
        images.predictions, images.truths, classes=images.classes, bootstrap=bootstrap
    )
    save_froc_images(images, out_dir / IMAGES_FILE)
    csv_path, png_path = write_froc_files(
        report, out_dir, title=f"{model.name}: FROC", console=console
    )
    json_path = out_dir / "froc.json"
    summary = {
        "model": {
            "name": bundle.manifest.name,
            "version": bundle.manifest.version,
            "sha256": bundle.manifest.sha256,
        },
        "data": [spec.describe() for spec in data],
        "images": len(samples),
        "malignancy": "classifier" if classifier is not None else "detector head",
        "malignant_ranking": BY_RANKER if ranker is not None else BY_PRODUCT,
        "candidates": {
            "score_threshold": float(heads.score_thresh),
            "detections_per_image": int(heads.detections_per_img),
        },
        "metrics": report.to_metrics(),
        "all_candidates": report.all_candidates(),
    }
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(froc_table(report))
    return DetectorEvaluation(
        report=report, n_images=len(samples), csv=csv_path, png=png_path, json=json_path
    )
