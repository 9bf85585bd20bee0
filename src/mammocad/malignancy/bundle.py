"""The lesion classifier in a model bundle: ``malignancy.pt`` plus the manifest's
``malignancy`` section.

::

    "malignancy": {
      "format_version": 1,
      "weights_file": "malignancy.pt",
      "sha256": "…",
      "config": {"crop_size": 64, "context": 2.0, …},     # ClassifierConfig
      "preprocessing_input_size": [1024, 832],           # the inputs it was trained on
      "training_data": {…}, "metrics": {…}, "created": "…"
    }

It reads windows of the model input, so it belongs to the bundle's preprocessing, not to the
detector's weights: a bundle whose detector is retrained with the same preprocessing can keep
it (:func:`copy_classifier`). A bundle without the section behaves as before
(:func:`load_classifier` returns ``None``; the detector head's malignancy is reported).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mammocad.detect.bundle import (
    BundleManifest,
    load_module_state,
    read_manifest,
    save_module_state,
    set_card_section,
    write_manifest,
)
from mammocad.errors import ModelBundleError
from mammocad.malignancy.model import ClassifierConfig, LesionClassifier

MALIGNANCY_FILE = "malignancy.pt"
MALIGNANCY_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class LoadedClassifier:
    model: LesionClassifier  # eval mode, float32, CPU
    section: dict[str, Any]


def save_classifier(
    model: LesionClassifier,
    bundle: str | Path,
    *,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> BundleManifest:
    """Write ``malignancy.pt`` into the bundle folder and record it in its manifest (the
    detector's weights and sha256 are not touched). Returns the new manifest."""
    folder = Path(bundle)
    manifest = read_manifest(folder)
    if model.config.in_channels != manifest.detector.in_channels:
        raise ValueError(
            f"the classifier reads {model.config.in_channels} channels, the bundle's inputs have "
            f"{manifest.detector.in_channels}"
        )
    digest = save_module_state(model, folder / MALIGNANCY_FILE)
    section = {
        "format_version": MALIGNANCY_FORMAT,
        "weights_file": MALIGNANCY_FILE,
        "sha256": digest,
        "config": model.config.to_dict(),
        "preprocessing_input_size": list(manifest.input_size),
        "training_data": dict(training_data or {}),
        "metrics": dict(metrics or {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    updated = replace(manifest, malignancy=section)
    write_manifest(folder, updated)
    _append_card(folder, section)
    return updated


def copy_classifier(source: str | Path, target: str | Path) -> BundleManifest | None:
    """Give the bundle ``target`` the classifier of ``source`` (same model input size
    required); ``None`` when ``source`` has none."""
    source, target = Path(source), Path(target)
    section = read_manifest(source).malignancy
    if not section:
        return None
    manifest = read_manifest(target)
    if list(manifest.input_size) != list(section.get("preprocessing_input_size", [])):
        raise ValueError(
            f"{source}'s classifier was trained on {section.get('preprocessing_input_size')} "
            f"inputs, {target} uses {list(manifest.input_size)}"
        )
    shutil.copy2(source / section["weights_file"], target / section["weights_file"])
    updated = replace(manifest, malignancy=dict(section))
    write_manifest(target, updated)
    _append_card(target, section)
    return updated


def load_classifier(
    bundle: str | Path, manifest: BundleManifest | None = None
) -> LoadedClassifier | None:
    """The bundle's lesion classifier, or ``None`` when its manifest has no section.

    Raises:
        ModelBundleError: the section is invalid, the weights are missing or do not match.
    """
    folder = Path(bundle)
    manifest = manifest or read_manifest(folder)
    section = manifest.malignancy
    if not section:
        return None
    try:
        if section["format_version"] != MALIGNANCY_FORMAT:
            raise ValueError(f"format {section['format_version']!r} is not {MALIGNANCY_FORMAT}")
        config = ClassifierConfig.from_dict(section["config"])
        weights = folder / section["weights_file"]
        if list(section["preprocessing_input_size"]) != list(manifest.input_size):
            raise ValueError(
                f"trained on {section['preprocessing_input_size']} inputs, the bundle uses "
                f"{list(manifest.input_size)}"
            )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelBundleError(
            f"{folder}: the manifest's malignancy section is invalid ({error}); retrain it with "
            "`mammocad train malignancy` or remove the section"
        ) from error
    model = LesionClassifier(config)
    load_module_state(model, weights, section["sha256"])
    return LoadedClassifier(model=model.eval(), section=section)


def _append_card(folder: Path, section: dict[str, Any]) -> None:
    set_card_section(
        folder,
        "Malignancy classifier",
        [
            "A second-stage CNN on a context window around each detected box replaces the",
            "detector head's malignancy probability (mammocad.malignancy, docs/malignancy.md).",
            f"Weights `{section['weights_file']}`, sha256 `{section['sha256']}`.",
            f"Training data: {section['training_data'] or 'not recorded'}.",
            "",
            *(f"- {name}: {value}" for name, value in section["metrics"].items()),
        ],
    )
