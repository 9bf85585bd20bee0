"""The ranker in a model bundle: ``ranker.json`` beside the weights, a ``ranker`` section in
``manifest.json`` (file, sha256, training data, metrics) and a model-card section."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mammocad.detect.bundle import (
    BundleManifest,
    read_manifest,
    set_card_section,
    sha256_of,
    verified_file,
    write_manifest,
)
from mammocad.errors import ModelBundleError
from mammocad.ranker.model import LesionRanker

RANKER_FILE = "ranker.json"
RANKER_FORMAT = 1


def save_ranker(
    ranker: LesionRanker,
    bundle: str | Path,
    *,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> BundleManifest:
    """Write ``ranker.json`` into the bundle folder and record it; returns the new manifest."""
    folder = Path(bundle)
    manifest = read_manifest(folder)
    lesion_classes = manifest.detector.lesion_classes
    if tuple(ranker.classes) != lesion_classes:
        raise ValueError(f"the ranker knows classes {ranker.classes}, the bundle {lesion_classes}")
    if tuple(ranker.input_size) != tuple(manifest.input_size):
        raise ValueError(
            f"the ranker was fitted on inputs {ranker.input_size}, the bundle's are "
            f"{manifest.input_size}"
        )
    path = folder / RANKER_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(ranker.to_dict()) + "\n", encoding="utf-8")
    partial.replace(path)
    measured = dict(metrics or {})
    section = {
        "format_version": RANKER_FORMAT,
        "file": RANKER_FILE,
        "sha256": sha256_of(path),
        "features": list(ranker.model.features),
        "training_data": dict(training_data or {}),
        "metrics": measured,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    updated = replace(manifest, ranker=section)
    write_manifest(folder, updated)
    set_card_section(
        folder,
        "Lesion ranker",
        [
            "P(malignant lesion) of each finding from the detector's and classifier's outputs, "
            "the box's size, shape and place, and its standing among the image's boxes: "
            "gradient-boosted trees (mammocad.ranker, docs/ranker.md). It ranks the malignant "
            "FROC and is reported as `x_malignant_lesion_probability`; scores, boxes and "
            "malignancy are unchanged.",
            f"File `{RANKER_FILE}`, sha256 `{section['sha256']}`.",
            f"Training data: {section['training_data']}.",
            "",
            *(f"- {name}: {value}" for name, value in measured.items()),
        ],
    )
    return updated


def load_ranker(bundle: str | Path, manifest: BundleManifest | None = None) -> LesionRanker | None:
    """The bundle's ranker, or ``None`` when its manifest has no ``ranker`` section.

    Raises:
        ModelBundleError: ``ranker.json`` is missing, altered or of another version.
    """
    folder = Path(bundle)
    manifest = manifest or read_manifest(folder)
    section = manifest.ranker
    if not section:
        return None
    path = verified_file(folder / str(section.get("file", RANKER_FILE)), section.get("sha256"))
    try:
        if section["format_version"] != RANKER_FORMAT:
            raise ValueError(f"format {section['format_version']!r} is not {RANKER_FORMAT}")
        ranker = LesionRanker.from_dict(json.loads(path.read_text(encoding="utf-8")))
        # its features are one-hot over these classes and fractions of this input size
        expected = (manifest.detector.lesion_classes, tuple(manifest.input_size))
        if (ranker.classes, ranker.input_size) != expected:
            raise ValueError(
                f"fitted for classes {ranker.classes} and inputs {ranker.input_size}, the "
                f"detector has {expected[0]} and {expected[1]}"
            )
        return ranker
    except (KeyError, TypeError, ValueError) as error:
        raise ModelBundleError(
            f"{folder}: the lesion ranker is invalid ({error}); retrain it with `mammocad train "
            "ranker` or remove the manifest's ranker section"
        ) from error
