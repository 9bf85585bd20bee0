"""A risk model in a model bundle: ``risk.json`` plus the manifest's ``risk`` section.

::

    "risk": {
      "format_version": 1,
      "model_file": "risk.json",
      "sha256": "…",
      "method": "gradient_boosting",
      "features": ["n_findings", …],          # mammocad.risk.features.FEATURES
      "training_data": {…}, "metrics": {…}, "created": "…"
    }

The risk model's calibration is the bundle's ``calibration.json``
(:mod:`mammocad.risk.calibration`): it maps the raw risk score, which is also what a site's
``mammocad calibrate`` refits on. A bundle without the section behaves as before
(:func:`load_risk` returns ``None``). ``risk.json`` is plain JSON: loading it runs no code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
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
from mammocad.risk.calibration import STUDY_CALIBRATION_FILE, save_calibration
from mammocad.risk.features import CANDIDATE_FEATURES, columns
from mammocad.risk.model import FittedRisk, RiskModel

RISK_FILE = "risk.json"
RISK_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class LoadedRisk:
    model: RiskModel
    section: dict[str, Any]

    @property
    def method(self) -> str:
        return self.model.method

    @property
    def candidate_score(self) -> float | None:
        """Detections down to this score feed the candidate features; ``None`` (models
        trained before they existed): the reported findings only."""
        value = self.section.get("candidate_score")
        return None if value is None else float(value)

    @property
    def finding_score(self) -> float | None:
        """The detection score from which a box counted as a finding in the features the
        model was trained on (``n_findings``, ``max_contribution``, linked pairs, ...);
        ``None`` (models saved before it was recorded): the bundle's finding threshold. The
        bundle may report findings from another score (``thresholds.finding_score``, chosen
        for the reader): the model still reads the boxes from this one, the inputs it
        learned from (docs/risk.md "Two thresholds")."""
        value = self.section.get("finding_score")
        return None if value is None else float(value)

    @property
    def findings_per_image(self) -> int | None:
        """The cap on findings per image of the training cases (the most suspicious kept);
        ``None``: none (models saved before caps existed had none)."""
        value = self.section.get("findings_per_image")
        return None if value is None else int(value)

    @property
    def quality_model(self) -> str | None:
        """sha256 (:attr:`mammocad.quality.QualityModel.digest`) of the learned quality model
        whose scores the training cases carried (``min_quality``, ``mean_quality``); ``None``
        for models saved before it was recorded."""
        value = self.section.get("quality_model_sha256")
        return None if value is None else str(value)

    @property
    def reads_candidates(self) -> bool:
        """Whether the model reads detections below the finding threshold."""
        return bool(CANDIDATE_FEATURES & set(self.model.features))


def save_risk(
    fitted: FittedRisk,
    bundle: str | Path,
    *,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    candidate_score: float | None = None,
    finding_score: float | None = None,
    findings_per_image: int | None = None,
    quality_model: str | None = None,
) -> BundleManifest:
    """Write ``risk.json``, ``calibration.json`` (the risk model's breast map) and, with a
    study map, ``study_calibration.json`` into the bundle folder
    ``bundle`` and record them in its manifest; ``candidate_score`` is the detection score
    down to which the training cases held candidates (the pipeline detects down to it),
    ``finding_score`` the one from which they counted as findings and ``findings_per_image``
    the cap on them (:attr:`LoadedRisk.finding_score`, :attr:`LoadedRisk.findings_per_image`),
    ``quality_model`` the digest of the quality model that scored them
    (:attr:`LoadedRisk.quality_model`). Returns the new manifest."""
    folder = Path(bundle)
    manifest = read_manifest(folder)
    path = folder / RISK_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(fitted.model.to_dict()) + "\n", encoding="utf-8")
    partial.replace(path)
    save_calibration(fitted.calibrator, folder)
    study_file = folder / STUDY_CALIBRATION_FILE
    if fitted.study_calibrator is not None:
        save_calibration(fitted.study_calibrator, folder, name=STUDY_CALIBRATION_FILE)
    else:  # a stale study map from an earlier risk model must not outlive it
        study_file.unlink(missing_ok=True)
    section = {
        "format_version": RISK_FORMAT,
        "model_file": RISK_FILE,
        "sha256": sha256_of(path),
        "method": fitted.model.method,
        "features": list(fitted.model.features),
        "candidate_score": candidate_score,
        "finding_score": finding_score,
        "findings_per_image": findings_per_image,
        "quality_model_sha256": quality_model,
        "calibration": fitted.calibrator.describe(),
        "study_calibration": (
            None if fitted.study_calibrator is None else fitted.study_calibrator.describe()
        ),
        "training_data": {
            **(training_data or {}),
            "breasts": fitted.n_breasts,
            "malignant_breasts": fitted.n_positive,
        },
        "metrics": dict(metrics or {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    updated = replace(manifest, risk=section)
    write_manifest(folder, updated)
    _append_card(folder, section)
    return updated


def load_risk(bundle: str | Path, manifest: BundleManifest | None = None) -> LoadedRisk | None:
    """The bundle's risk model, or ``None`` when its manifest has no ``risk`` section.

    Raises:
        ModelBundleError: the section or ``risk.json`` is invalid, missing or does not match.
    """
    folder = Path(bundle)
    section = (manifest or read_manifest(folder)).risk
    if not section:
        return None
    path = verified_file(folder / str(section.get("model_file", RISK_FILE)), section.get("sha256"))
    try:
        if section["format_version"] != RISK_FORMAT:
            raise ValueError(f"risk format {section['format_version']!r} is not {RISK_FORMAT}")
        model = RiskModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
        columns(model.features)  # every feature it uses is one this version computes
    except (KeyError, TypeError, ValueError) as error:
        raise ModelBundleError(
            f"{folder}: the risk model is invalid ({error}); retrain it with `mammocad train "
            "risk` or remove the manifest's risk section"
        ) from error
    return LoadedRisk(model=model, section=section)


def _append_card(folder: Path, section: dict[str, Any]) -> None:
    set_card_section(
        folder,
        "Risk model",
        [
            "Breast probability from the findings, fusion and quality features: "
            f"{section['method']} (monotone in the evidence features), calibrated on "
            "out-of-fold scores (mammocad.risk, docs/risk.md).",
            f"Model `{section['model_file']}`, sha256 `{section['sha256']}`; calibration"
            f" `calibration.json`: {section['calibration']}.",
            *(
                [f"Study calibration `study_calibration.json`: {section['study_calibration']}."]
                if section.get("study_calibration")
                else []
            ),
            f"Training data: {section['training_data']}.",
            *(
                [f"Quality gate scores from the learned quality model sha256 `{digest}`."]
                if (digest := section.get("quality_model_sha256"))
                else []
            ),
            "",
            *(f"- {name}: {value}" for name, value in section["metrics"].items()),
        ],
    )
