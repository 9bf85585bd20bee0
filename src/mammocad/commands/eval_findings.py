"""``mammocad eval findings``: how well the findings an ``analyze`` / ``batch`` run reported
localise the lesions of labelled images, from its ``result.json`` files alone.

``mammocad eval detector`` measures a bundle on data it prepares itself, down to every
candidate. This command measures what users get — the reported findings, boxes in original
pixels, on any images a site or a public dataset has lesion boxes for — with the FROC hit rule
of :mod:`mammocad.eval.froc` (IoU ≥ 0.3 or the finding's centre inside the truth box). The
curves end at the bundle's finding threshold, so their last point is the operating point
users see: lesion sensitivity at that many false positives per image (with a per-image cap,
the earlier points are the reported findings above stricter scores).

Truth: a CSV ``sop_instance_uid,x1,y1,x2,y2,label[,malignant]`` (original pixel columns and
rows; label one of mammocad's lesion classes; malignant 1 / 0, empty = unknown; an ``image``
column, the file name without extension, may stand for the UID), VinDr-Mammo's
``finding_annotations.csv`` as distributed, CBIS-DDSM's ROI masks, INbreast's ROI files
(``AllXML``), mini-MIAS's ``Info.txt``, or phantom folders (``truth.json``). An image of
the results without truth rows is lesion-free, except where the truth lists every image of
its dataset (VinDr-Mammo, mini-MIAS, CBIS-DDSM): there it is counted and left out; truth that
names none of the analysed images is refused. A CSV of rows annotates only the classes it
names (predictions of other classes are neither hits nor false positives there), VinDr-Mammo
and phantoms all of them. A rejected image keeps its truths, all missed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mammocad.commands.eval_study import image_keys, read_results
from mammocad.commands.froc_table import froc_table
from mammocad.datasets import cbis_ddsm, inbreast, vindr
from mammocad.datasets.breast_labels import outcome_of, read_table
from mammocad.datasets.mias import ANNOTATED_LABELS as MIAS_LABELS
from mammocad.datasets.mias import film_lesions
from mammocad.datasets.records import LesionAnnotation
from mammocad.detect.config import LESION_CLASSES
from mammocad.eval.froc import (
    FrocReport,
    ImagePredictions,
    ImageTruth,
    evaluate_froc,
    plot_froc,
    write_froc_csv,
)
from mammocad.structures import FindingLabel
from mammocad.synthetic import read_truth

Box = tuple[float, float, float, float]
_COLUMNS = ("x1", "y1", "x2", "y2", "label")


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingsTruth:
    """Lesion boxes by image (SOP Instance UID, or file name without extension), and the
    classes the source annotates (``None``: all)."""

    boxes: dict[str, list[LesionAnnotation]]
    annotated: frozenset[str] | None
    #: images left out: an abnormality the source could not localise (mini-MIAS rows
    #: without coordinates, a CBIS-DDSM ROI mask missing), so their findings can be neither
    #: hits nor false positives
    skip: frozenset[str] = frozenset()
    #: the source lists every image of its dataset (VinDr-Mammo, mini-MIAS, CBIS-DDSM), so an
    #: analysed image it does not name is not its (or its label file was not given): left
    #: out, not lesion-free
    lists_every_image: bool = False
    #: what the reader of the results must know of the truth (printed with them)
    notes: tuple[str, ...] = ()


def truth_from_boxes(path: Path) -> FindingsTruth:
    """Lesion boxes from a CSV: VinDr-Mammo's ``finding_annotations.csv`` as distributed
    (:mod:`mammocad.datasets.vindr`, keyed by ``image_id``, every class annotated), or
    ``sop_instance_uid`` (or ``image``, the file name without extension)
    ``,x1,y1,x2,y2,label[,malignant]`` rows, which annotate the classes they name.

    Raises:
        ValueError: a missing column, a box that is not four numbers with x1 < x2 and y1 < y2,
            or a label that is no lesion class (its row is named).
    """
    table = read_table(path)
    if table.columns >= vindr.COLUMNS:
        return FindingsTruth(
            boxes=vindr.lesion_boxes(table),
            annotated=frozenset(LESION_CLASSES),
            lists_every_image=True,
        )
    key = next((name for name in ("sop_instance_uid", "image") if name in table.columns), None)
    if key is None or not table.columns >= set(_COLUMNS):
        raise ValueError(
            f"{path}: lesion boxes need the columns sop_instance_uid (or image), "
            f"{', '.join(_COLUMNS)} (or VinDr-Mammo's finding_annotations.csv)"
        )
    boxes: dict[str, list[LesionAnnotation]] = defaultdict(list)
    for index, row in enumerate(table.rows):
        where = table.where(index)
        label = row["label"].lower().replace(" ", "_")
        if label not in LESION_CLASSES:
            raise ValueError(
                f"{where}: label {row['label']!r} is none of {', '.join(LESION_CLASSES)}"
            )
        # empty: unknown pathology, neither hit nor miss of the malignant curve
        malignant = outcome_of(table, index, "malignant") if row.get("malignant") else None
        boxes[row[key]].append(
            LesionAnnotation(label=FindingLabel(label), box=_box(row, where), malignant=malignant)
        )
    annotated = frozenset(box.label.value for rows in boxes.values() for box in rows)
    return FindingsTruth(boxes=dict(boxes), annotated=annotated)


def _box(row: dict[str, str], where: str) -> Box:
    try:
        x1, y1, x2, y2 = (float(row[name]) for name in ("x1", "y1", "x2", "y2"))
    except ValueError:
        raise ValueError(f"{where}: the box is not four numbers") from None
    if not (x1 < x2 and y1 < y2):
        raise ValueError(f"{where}: the box needs x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)


def truth_from_phantoms(folder: Path) -> FindingsTruth:
    """Every image's lesions of the phantom studies under ``folder`` (``truth.json``)."""
    boxes: dict[str, list[LesionAnnotation]] = {}
    for path in sorted(folder.rglob("truth.json")):
        for view in read_truth(path).views:
            boxes[view.sop_instance_uid] = [
                LesionAnnotation(label=lesion.label, box=lesion.box, malignant=lesion.malignant)
                for lesion in view.lesions
            ]
    return FindingsTruth(boxes=boxes, annotated=None)


def truth_from_cbis_ddsm(case_descriptions: Sequence[Path], images: Path) -> FindingsTruth:
    """CBIS-DDSM abnormalities (:func:`mammocad.datasets.cbis_ddsm.lesion_boxes`) by the full
    mammogram's SOP Instance UID, boxes from the ROI masks under ``images``; a mammogram whose
    mask is missing is left out. The classes annotated are those of the files given (masses
    of the mass files, calcifications of the calcification files); a view stored in both
    gets the lesions of both on each copy."""
    found = cbis_ddsm.lesion_boxes(case_descriptions, images)
    if not found.lesions and not found.unlocated:
        raise ValueError(
            f"none of the case descriptions' mammograms is under {images}: give the folder of "
            "the CBIS-DDSM DICOM files (any layout; they are found by their Series Instance UID)"
        )
    notes: tuple[str, ...] = ()
    if found.unmerged:
        named = ", ".join(
            f"{patient} {side.value} {view}" for patient, side, view in sorted(found.unmerged)[:5]
        )
        notes = (
            f"{len(found.unmerged)} views are stored in the mass and calcification files as "
            f"copies of different sizes ({named}{', …' if len(found.unmerged) > 5 else ''}): "
            "each copy is judged by its own file's lesions only, so a finding of the other "
            "file's lesion counts as a false positive there",
        )
    return FindingsTruth(
        boxes=found.lesions,
        annotated=found.annotated,
        skip=found.unlocated,
        lists_every_image=True,  # every CBIS-DDSM mammogram has an abnormality
        notes=notes,
    )


def truth_from_inbreast(folder: Path) -> FindingsTruth:
    """INbreast lesions from the ROI files under ``folder`` (``AllXML``,
    :mod:`mammocad.datasets.inbreast`) by File Name, which analysed files are matched by (the
    number their names start with). An analysed image without an XML file is lesion-free, as
    INbreast's normal images are."""
    return FindingsTruth(boxes=inbreast.lesion_boxes(folder), annotated=inbreast.ANNOTATED_LABELS)


def truth_from_mias(folder: Path) -> FindingsTruth:
    """mini-MIAS lesions (``Info.txt``, :mod:`mammocad.datasets.mias`) by film name
    (``mdb001``): analysed PNG or PGM films, wherever they are kept, are matched by their file
    name. Every film has a row, so an analysed film without one is left out, not lesion-free."""
    films = film_lesions(folder)
    return FindingsTruth(
        boxes={ref: list(lesions) for ref, (lesions, located) in films.items() if located},
        annotated=MIAS_LABELS,
        skip=frozenset(ref for ref, (_, located) in films.items() if not located),
        lists_every_image=True,
    )


@dataclass(frozen=True, kw_only=True)
class FindingsEvaluation:
    report: FrocReport
    n_images: int
    n_rejected: int  # images with no findings because they were rejected (truths missed)
    n_not_analysed: int  # images of the truth that no result lists (left out)
    n_skipped: int  # analysed images the truth cannot judge (left out)
    csv: Path
    png: Path


def _predictions(image: dict[str, Any]) -> ImagePredictions:
    findings = image.get("findings") or []
    ranked = [f.get("x_malignant_lesion_probability") for f in findings]
    return ImagePredictions(
        boxes=[f["box"] for f in findings],
        scores=[float(f["score"]) for f in findings],
        labels=[str(f["label"]) for f in findings],
        malignancy=[float(f.get("malignancy_probability") or 0.0) for f in findings],
        malignant_lesion=None if None in ranked or not ranked else [float(v) for v in ranked],
    )


def _image_truth(rows: list[LesionAnnotation], annotated: Collection[str] | None) -> ImageTruth:
    return ImageTruth(
        boxes=[row.box for row in rows],
        labels=[row.label.value for row in rows],
        # 1, 0, or -1: unknown pathology, neither hit nor miss of the malignant curve
        malignant=[-1 if row.malignant is None else int(row.malignant) for row in rows],
        annotated=annotated,
    )


@dataclass(frozen=True, kw_only=True)
class MatchedImages:
    """The analysed images of a results folder beside their truth, in the same order."""

    predictions: list[ImagePredictions]
    truths: list[ImageTruth]
    keys: list[tuple[str, ...]]  # what each image may be named by (image_keys)
    rejected: int  # images with no findings because they were rejected (truths missed)
    not_analysed: int  # images of the truth that no result lists (left out)
    skipped: int  # analysed images the truth cannot judge (left out)
    #: analysed images a truth that lists every image does not name (left out)
    unlisted: int = 0


def match_images(results_dir: Path, truth: FindingsTruth) -> MatchedImages:
    """The reported findings of every image the results under ``results_dir`` list, each
    beside its lesions in ``truth`` (none: lesion-free; left out where the truth lists every
    image of its dataset).

    Raises:
        ValueError: no result under ``results_dir`` lists an image, the truth names none of
            them (a FROC without a single judged lesion would be empty, not a measurement), or
            none can be judged.
    """
    predictions, truths, named, seen = [], [], [], set()
    rejected = skipped = unlisted = listed = 0
    for result in read_results(results_dir):
        for image in result.get("images") or []:
            keys = image_keys(image)
            seen.update(keys)
            if truth.skip.intersection(keys):
                skipped += 1
                continue
            rows = next((truth.boxes[key] for key in keys if key in truth.boxes), None)
            listed += rows is not None
            if rows is None and truth.lists_every_image:
                unlisted += 1
                continue
            rejected += image.get("status") != "processed"
            named.append(tuple(keys))
            predictions.append(_predictions(image))
            truths.append(_image_truth(rows or [], truth.annotated))
    _check_matched(results_dir, truth, len(predictions) + skipped + unlisted, listed + skipped)
    if not predictions:
        raise ValueError(
            f"none of the analysed images under {results_dir} can be judged: {skipped} have an "
            f"abnormality the truth does not locate, {unlisted} are not in it"
        )
    return MatchedImages(
        predictions=predictions,
        truths=truths,
        keys=named,
        rejected=rejected,
        not_analysed=sum(1 for key in truth.boxes if key not in seen),
        skipped=skipped,
        unlisted=unlisted,
    )


def _check_matched(results_dir: Path, truth: FindingsTruth, analysed: int, named: int) -> None:
    if not analysed:
        raise ValueError(f"no analysed image in the result.json files under {results_dir}")
    if not named:
        raise ValueError(
            f"none of the {analysed} analysed images under {results_dir} is in the truth "
            f"({len(truth.boxes) + len(truth.skip)} images): images are matched by their SOP "
            "Instance UID or their file name without extension (VinDr-Mammo's image_id, "
            "mini-MIAS's mdb001, INbreast's File Name); check that the truth is of these images"
        )


def run_eval_findings(
    *,
    results_dir: Path,
    truth: FindingsTruth,
    out_dir: Path,
    bootstrap: int = 1000,
    console: Console | None = None,
) -> FindingsEvaluation:
    """FROC of the reported findings of every analysed image against ``truth``; writes
    ``findings_froc.csv`` and ``findings_froc.png``.

    Raises:
        ValueError: no result under ``results_dir`` lists an image.
    """
    console = console or Console(stderr=True)
    for note in truth.notes:
        console.print(note, markup=False)
    matched = match_images(results_dir, truth)
    predictions, truths = matched.predictions, matched.truths
    rejected, not_analysed, skipped = matched.rejected, matched.not_analysed, matched.skipped
    unlisted = matched.unlisted
    report = evaluate_froc(predictions, truths, classes=LESION_CLASSES, bootstrap=bootstrap, seed=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_froc_csv(report, out_dir / "findings_froc.csv")
    png = plot_froc(report, out_dir / "findings_froc.png", title="Reported findings: FROC")
    (out_dir / "findings_froc.json").write_text(
        json.dumps({"operating_point": report.all_candidates(), **report.to_metrics()}, indent=2)
    )
    console.print(
        froc_table(
            report,
            title="Reported findings: lesion sensitivity at false positives per image",
            end_column="as reported (FP/img)",
        )
    )
    console.print(
        f"{len(predictions)} images ({rejected} rejected: their lesions count as missed), "
        f"{not_analysed} images of the truth that no result lists (left out)"
        + (
            f", {skipped} with an abnormality the truth does not locate (left out)"
            if skipped
            else ""
        )
        + (f", {unlisted} analysed images the truth does not list (left out)" if unlisted else "")
    )
    return FindingsEvaluation(
        report=report,
        n_images=len(predictions),
        n_rejected=rejected,
        n_not_analysed=not_analysed,
        n_skipped=skipped,
        csv=csv_path,
        png=png,
    )
