"""Fusion weights in a model bundle: ``fusion.pt`` plus the manifest's ``fusion`` section.

::

    "fusion": {
      "format_version": 1,
      "weights_file": "fusion.pt",
      "sha256": "…",
      "config": {"feature_dim": 512, "model_dim": 64, …},   # FusionConfig
      "candidate_score": 0.01,     # detections down to this score are fusion inputs
      "training_data": {…}, "metrics": {…}, "created": "…"
    }

A bundle without the section loads and behaves as before (:func:`load_fusion` returns
``None``); weights are a plain ``state_dict`` loaded with ``weights_only=True`` after their
sha256 is checked, like the detector's.
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
from mammocad.fuse.model import CrossViewFusion, FusionConfig
from mammocad.risk.calibration import CALIBRATION_FILE, STUDY_CALIBRATION_FILE

FUSION_FILE = "fusion.pt"
FUSION_FORMAT = 1
_BUNDLE_FILES = ("weights.pt", "manifest.json", "MODEL_CARD.md")
#: thresholds chosen on the calibrated probabilities of a bundle's aggregation (the detector's
#: finding_score and findings_per_image stay with its weights)
_FITTED_THRESHOLDS = ("intermediate", "high")


@dataclass(frozen=True, kw_only=True)
class LoadedFusion:
    model: CrossViewFusion  # eval mode, float32, CPU
    candidate_score: float
    section: dict[str, Any]


def copy_bundle(source: str | Path, target: str | Path, *, keep_fusion: bool = False) -> Path:
    """Copy the bundle files of ``source`` into ``target`` (created); the source is never
    modified. A ``fusion.pt`` of the source is not copied (the copy gets its own) unless
    ``keep_fusion``; a lesion classifier (:mod:`mammocad.malignancy`) always is; a risk model
    (:mod:`mammocad.risk.bundle`) is never copied: it was trained on the source's outputs.
    Nor are the calibration maps and the ``intermediate`` / ``high`` suspicion thresholds:
    they were fitted on the probabilities of the source's aggregation (its risk model, or its
    noisy-OR of other findings), which the copy changes; its probabilities are shown as
    uncalibrated until ``train risk`` or ``calibrate`` fits them again."""
    source, target = Path(source), Path(target)
    manifest = read_manifest(source)
    if source.resolve() == target.resolve():
        raise ValueError(f"{target} is the source bundle: write the copy somewhere else")
    target.mkdir(parents=True, exist_ok=True)
    for stale in (CALIBRATION_FILE, STUDY_CALIBRATION_FILE):  # an earlier run's, in a reused --out
        (target / stale).unlink(missing_ok=True)
    kept = {manifest.fusion.get("weights_file", FUSION_FILE)} if keep_fusion else set()
    if manifest.malignancy:  # the lesion classifier is part of the detector's outputs
        kept.add(manifest.malignancy["weights_file"])
    for name in {*_BUNDLE_FILES, manifest.weights_file, *kept}:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    fusion = manifest.fusion if keep_fusion else {}
    thresholds = {k: v for k, v in manifest.thresholds.items() if k not in _FITTED_THRESHOLDS}
    if manifest.fusion != fusion or manifest.risk or thresholds != manifest.thresholds:
        write_manifest(target, replace(manifest, fusion=fusion, risk={}, thresholds=thresholds))
    return target


def save_fusion(
    model: CrossViewFusion,
    bundle: str | Path,
    *,
    candidate_score: float,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> BundleManifest:
    """Write ``fusion.pt`` into the bundle folder ``bundle`` and record it in its manifest
    (the detector's weights and sha256 are not touched). Returns the new manifest."""
    folder = Path(bundle)
    manifest = read_manifest(folder)
    if model.config.feature_dim != manifest.detector.box_head_dim:
        raise ValueError(
            f"the fusion module reads {model.config.feature_dim} features, the bundle's detector "
            f"gives {manifest.detector.box_head_dim}"
        )
    digest = save_module_state(model, folder / FUSION_FILE)
    section = {
        "format_version": FUSION_FORMAT,
        "weights_file": FUSION_FILE,
        "sha256": digest,
        "config": model.config.to_dict(),
        "candidate_score": float(candidate_score),
        "training_data": dict(training_data or {}),
        "metrics": dict(metrics or {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    updated = replace(manifest, fusion=section)
    write_manifest(folder, updated)
    _append_card(folder, section)
    return updated


def load_fusion(bundle: str | Path, manifest: BundleManifest | None = None) -> LoadedFusion | None:
    """The bundle's fusion module, or ``None`` when its manifest has no ``fusion`` section.

    Raises:
        ModelBundleError: the section is invalid, the weights are missing or do not match.
    """
    folder = Path(bundle)
    section = (manifest or read_manifest(folder)).fusion
    if not section:
        return None
    try:
        if section["format_version"] != FUSION_FORMAT:
            raise ValueError(f"fusion format {section['format_version']!r} is not {FUSION_FORMAT}")
        config = FusionConfig.from_dict(section["config"])
        weights = folder / section["weights_file"]
        candidate_score = float(section["candidate_score"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelBundleError(
            f"{folder}: the manifest's fusion section is invalid ({error}); retrain it with "
            "`mammocad train fusion` or remove the section"
        ) from error
    model = CrossViewFusion(config)
    load_module_state(model, weights, section["sha256"])
    return LoadedFusion(model=model.eval(), candidate_score=candidate_score, section=section)


def _append_card(folder: Path, section: dict[str, Any]) -> None:
    set_card_section(
        folder,
        "Cross-view fusion",
        [
            "Cross-view attention over the RoI features of the CC and MLO findings of each breast,",
            "trained from breast-level labels only (mammocad.fuse, docs/fusion.md).",
            f"Weights `{section['weights_file']}`, sha256 `{section['sha256']}`; fusion inputs are",
            f"detections with score >= {section['candidate_score']}.",
            f"Training data: {section['training_data'] or 'not recorded'}.",
            "",
            *(f"- {name}: {value}" for name, value in section["metrics"].items()),
        ],
    )
