"""Per-image FROC inputs on disk, and one FROC pooled from several evaluations.

``mammocad eval detector`` writes ``images.json`` beside its FROC: every image's truths and
detections (in the model-input frame of that image, which the hit rule needs nothing beyond).
Cross-validation evaluates each fold with the model that did not see it; the usual way to
report it (e.g. the INbreast and LUNA16 FROCs) is one curve over the pooled images of all
folds, which :func:`pool_froc` computes: sensitivity over every fold's lesions, false positives
over every fold's images, the bootstrap resampling images across folds. Folds whose malignant
curve was ranked on different scales (one by its lesion ranker, one by score × malignancy) are
refused: one curve over both would rank numbers of two scales against each other.
:func:`compare_froc` sets two models' evaluations on the same images side by side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mammocad.eval.froc import (
    FrocDifference,
    FrocReport,
    ImagePredictions,
    ImageTruth,
    evaluate_froc,
    malignant_ranking,
    paired_froc_difference,
)

IMAGES_FILE = "images.json"
_FORMAT = "mammocad.froc-images/1"
#: what the ``malignant`` curve ranks boxes by (``malignant_ranking`` in froc.json and
#: images.json)
BY_RANKER = "lesion ranker"
BY_PRODUCT = "score × malignancy"
_MIXED = "the lesion ranker on some images, score × malignancy on others"


@dataclass(frozen=True, kw_only=True)
class FrocImages:
    """What :func:`evaluate_froc` needs, per image, and the lesion classes it was run with."""

    classes: tuple[str, ...]
    image_ids: list[str]
    predictions: list[ImagePredictions]
    truths: list[ImageTruth]


def malignant_ranking_of(images: FrocImages) -> str:
    """What the ``malignant`` curve of ``images`` ranks boxes by: :data:`BY_RANKER` where every
    image has the lesion ranker's probabilities, :data:`BY_PRODUCT` where none has.

    Read from the predictions, not from a field of the file: they are what the curve is
    computed from (:func:`mammocad.eval.froc.malignant_ranking`, image by image), so files
    written before images.json recorded it are known too — a bundle without a ranker, or
    ``eval detector --no-ranker``, writes no ``malignant_lesion``, one with a ranker writes it
    for every image, even one without detections."""
    ranked = {prediction.malignant_lesion is not None for prediction in images.predictions}
    if ranked == {True}:
        return BY_RANKER
    return _MIXED if len(ranked) == 2 else BY_PRODUCT


def _floats(values: Any) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), 6).tolist()


def save_froc_images(images: FrocImages, path: str | Path) -> Path:
    """Write ``images`` as JSON (boxes rounded to 1e-6 px, scores to 1e-6)."""
    rows = [
        {
            "image_id": image_id,
            "truth": {
                "boxes": _floats(truth.boxes),
                "labels": list(truth.labels),
                "malignant": None
                if truth.malignant is None
                else np.asarray(truth.malignant, dtype=int).tolist(),
                "annotated": None if truth.annotated is None else sorted(truth.annotated),
            },
            "predictions": {
                "boxes": _floats(pred.boxes),
                "scores": _floats(pred.scores),
                "labels": list(pred.labels),
                "malignancy": None if pred.malignancy is None else _floats(pred.malignancy),
                "malignant_lesion": None
                if pred.malignant_lesion is None
                else _floats(pred.malignant_lesion),
            },
        }
        for image_id, pred, truth in zip(
            images.image_ids, images.predictions, images.truths, strict=True
        )
    ]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "format": _FORMAT,
        "classes": list(images.classes),
        # for the reader; pooling reads it from the predictions (malignant_ranking_of)
        "malignant_ranking": malignant_ranking_of(images),
        "images": rows,
    }
    out.write_text(json.dumps(document) + "\n", encoding="utf-8")
    return out


def load_froc_images(path: str | Path) -> FrocImages:
    """Read a file written by :func:`save_froc_images`; ValueError saying what is wrong."""
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {source}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise ValueError(
            f"{source} is not a per-image FROC file ({_FORMAT}): point at the folder "
            "`mammocad eval detector --out` wrote"
        )
    rows = document["images"]
    return FrocImages(
        classes=tuple(document["classes"]),
        image_ids=[row["image_id"] for row in rows],
        predictions=[
            ImagePredictions(
                boxes=np.asarray(row["predictions"]["boxes"], dtype=np.float64).reshape(-1, 4),
                scores=row["predictions"]["scores"],
                labels=row["predictions"]["labels"],
                malignancy=row["predictions"]["malignancy"],
                # absent from files written before lesion rankers
                malignant_lesion=row["predictions"].get("malignant_lesion"),
            )
            for row in rows
        ],
        truths=[
            ImageTruth(
                boxes=np.asarray(row["truth"]["boxes"], dtype=np.float64).reshape(-1, 4),
                labels=row["truth"]["labels"],
                malignant=row["truth"]["malignant"],
                annotated=row["truth"]["annotated"],
            )
            for row in rows
        ],
    )


def pool_froc(
    evaluations: Sequence[FrocImages],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> FrocReport:
    """One FROC over the images of every evaluation (e.g. the folds of a cross-validation);
    ``names``: what the messages call them (their folders), by default their position.

    Refuses evaluations made with different lesion classes, folds whose malignant curve was
    ranked differently (:func:`malignant_ranking_of`), and an image id met twice (the same
    image in two folds would count its lesions twice)."""
    if not evaluations:
        raise ValueError("nothing to pool: give at least one evaluation")
    _check_rankings(evaluations, names or [f"evaluation {i + 1}" for i in range(len(evaluations))])
    classes = evaluations[0].classes
    seen: set[str] = set()
    for evaluation in evaluations:
        if evaluation.classes != classes:
            raise ValueError(
                f"evaluations with different lesion classes ({list(classes)} and "
                f"{list(evaluation.classes)}) cannot be pooled"
            )
        repeated = seen.intersection(evaluation.image_ids)
        if repeated:
            raise ValueError(
                f"image {sorted(repeated)[0]} is in two of the evaluations: pool disjoint "
                "folds only"
            )
        seen.update(evaluation.image_ids)
    return evaluate_froc(
        [p for e in evaluations for p in e.predictions],
        [t for e in evaluations for t in e.truths],
        classes=classes,
        bootstrap=bootstrap,
        seed=seed,
    )


def _check_rankings(evaluations: Sequence[FrocImages], names: Sequence[str]) -> None:
    """Refuse folds whose ``malignant`` curves ranked boxes on different scales: a lesion
    ranker's probability and score × malignancy are not comparable numbers, and the pooled
    curve would sort one fold's boxes against the other's by them."""
    by: dict[str, list[str]] = {}
    for name, evaluation in zip(names, evaluations, strict=True):
        by.setdefault(malignant_ranking_of(evaluation), []).append(name)
    if len(by) > 1:
        listed = "; ".join(f"{', '.join(folds)} by {ranking}" for ranking, folds in by.items())
        raise ValueError(
            f"the folds ranked the malignant curve differently ({listed}), so one curve over "
            "them would rank numbers of two scales against each other: evaluate every fold the "
            "same way — each with its bundle's lesion ranker (`mammocad train ranker` for the "
            "folds without one), or all with `mammocad eval detector --no-ranker` — and pool "
            "those"
        )


def compare_froc(
    a: FrocImages, b: FrocImages, *, bootstrap: int = 1000, seed: int = 0
) -> dict[str, FrocDifference]:
    """Sensitivity of ``b`` minus ``a`` per curve and FP rate, with a paired bootstrap over
    images; both must be evaluations of the same images (matched by id), lesions and classes.
    Each model is judged against its own truths: their boxes are in the input frame of the
    bundle evaluated, which differs between bundles of different input sizes."""
    if a.classes != b.classes:
        raise ValueError(f"the models have different lesion classes: {a.classes} and {b.classes}")
    if sorted(a.image_ids) != sorted(b.image_ids) or len(set(a.image_ids)) != len(a.image_ids):
        raise ValueError("compare evaluations of the same images, each image once")
    order = {image_id: i for i, image_id in enumerate(b.image_ids)}
    b_predictions = [b.predictions[order[image_id]] for image_id in a.image_ids]
    b_truths = [b.truths[order[image_id]] for image_id in a.image_ids]
    for image_id, truth_a, truth_b in zip(a.image_ids, a.truths, b_truths, strict=True):
        if _lesions(truth_a) != _lesions(truth_b):
            raise ValueError(f"image {image_id} has other lesions in the two evaluations")
    return paired_froc_difference(
        a.predictions,
        b_predictions,
        a.truths,
        classes=a.classes,
        bootstrap=bootstrap,
        seed=seed,
        truths_b=b_truths,
    )


def _lesions(truth: ImageTruth) -> tuple[Any, ...]:
    """What must agree between two evaluations of one image, whatever their frames."""
    malignant = None if truth.malignant is None else np.asarray(truth.malignant, int).tolist()
    annotated = None if truth.annotated is None else sorted(truth.annotated)
    return list(truth.labels), malignant, annotated


def strongest_malignant(images: FrocImages) -> tuple[np.ndarray, np.ndarray]:
    """Per image its highest probability of a malignant lesion — the lesion ranker's where the
    evaluation has it, else score × malignancy, as the ``malignant`` FROC ranks (0 without a
    detection) — and whether it holds a malignant lesion."""
    scores = [float(np.max(malignant_ranking(p), initial=0.0)) for p in images.predictions]
    malignant = [
        t.malignant is not None and bool((np.asarray(t.malignant, dtype=int) == 1).any())
        for t in images.truths
    ]
    return np.array(scores, dtype=np.float64), np.array(malignant, dtype=bool)


def strongest_detection(images: FrocImages) -> tuple[np.ndarray, np.ndarray]:
    """Per image its strongest detection score (0 without any) and whether it holds a lesion:
    the detector's own image-level ranking, the first thing a breast-level score reads, with
    no risk model in between. A FROC can rise while this falls: it counts lesions and false
    positives over all images, not which images rank first. Every class the model reports
    counts, also classes the truth does not annotate (the FROC leaves those out), as a breast
    score reads every finding."""
    scores = np.array(
        [float(np.max(p.scores, initial=0.0)) for p in images.predictions], dtype=np.float64
    )
    has_lesion = np.array([len(t.labels) > 0 for t in images.truths], dtype=bool)
    return scores, has_lesion
