"""The whole result object of one study (``schemas/result.schema.json``, version 1.0).

Every coordinate written here is in ORIGINAL pixels (see :mod:`mammocad.structures`); every
probability is rounded to 2 decimals. Extra data goes into ``x_*`` fields or the ``model``
object, which the schema leaves open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mammocad.report.result_json import has_known_size, image_to_dict
from mammocad.report.schema import SCHEMA_VERSION
from mammocad.risk.aggregate import StudyRisk, rounded
from mammocad.structures import (
    Finding,
    Laterality,
    Message,
    PreprocessedImage,
    Severity,
    Study,
    StudyStatus,
    ViewPosition,
)

_VIEW_ORDER = {view: rank for rank, view in enumerate(ViewPosition)}
#: Attached to every result with a probability, so no reader mistakes it for a calibrated risk.
UNCALIBRATED = Message(
    code="uncalibrated_probability",
    severity=Severity.INFO,
    text=(
        "The breast and study probabilities are an interim noisy-OR of the detector's findings, "
        "not a calibrated risk: compare them with each other, not with clinical thresholds."
    ),
)
#: what the uncalibrated probabilities are, by ``model.risk.method`` (the noisy-OR otherwise)
_UNCALIBRATED_SOURCES = {
    "cross_view_fusion": "the cross-view fusion module's output (docs/fusion.md)",
    "gradient_boosting": "the risk model's raw score",
    "logistic": "the risk model's raw score",
}


def uncalibrated_message(method: str) -> Message:
    """:data:`UNCALIBRATED`, naming what made the probabilities when it is not the noisy-OR
    (a bundle with fusion weights and no calibration: ``train fusion`` writes no map)."""
    source = _UNCALIBRATED_SOURCES.get(method)
    if source is None:
        return UNCALIBRATED
    text = (
        f"The breast and study probabilities are {source}, not a calibrated risk: compare them "
        "with each other, not with clinical thresholds."
    )
    return Message(code=UNCALIBRATED.code, severity=UNCALIBRATED.severity, text=text)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What the result's ``model`` object says about the model that produced it."""

    name: str
    version: str
    sha256: str
    intended_use: str

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "intended_use": self.intended_use,
        }


def _breasts(
    study: Study, risk: StudyRisk, leading: Mapping[Laterality, Finding]
) -> list[dict[str, Any]]:
    result = []
    for breast in risk.breasts:
        views = {image.view for image in study.breast(breast.laterality) if image.view}
        entry: dict[str, Any] = {
            "laterality": breast.laterality.value,
            "malignancy_probability": rounded(breast.malignancy_probability),
            "views": [view.value for view in sorted(views, key=_VIEW_ORDER.__getitem__)],
            "density": None,  # the density model is not trained yet
            "finding_ids": list(breast.finding_ids),
            # unrounded, for evaluation only, as the study's (`mammocad eval study --level
            # breast` reports what rounding costs the breast AUC)
            "x_malignancy_probability_unrounded": breast.malignancy_probability,
        }
        candidate = leading.get(breast.laterality)
        if candidate is not None:
            # not reported (below the finding threshold), so in no image's findings: the box
            # behind this breast's probability, shown apart (docs/risk.md "Leading candidate")
            entry["x_leading_candidate"] = {
                **candidate.to_dict(),
                "sop_instance_uid": candidate.sop_instance_uid,
            }
        result.append(entry)
    return result


def _images(
    study: Study,
    preprocessed: Mapping[str, PreprocessedImage],
    findings: Mapping[str, Sequence[Finding]],
) -> list[dict[str, Any]]:
    return [
        image_to_dict(
            image,
            preprocessed=preprocessed.get(image.key),  # also of a view the gate refused
            findings=findings.get(image.key, ()) if image.is_processed else (),
        )
        for image in study.images
        if has_known_size(image)
    ]


def _messages(study: Study, risk: StudyRisk) -> list[dict[str, Any]]:
    messages = list(study.messages)
    # an image without a size cannot be a schema image object: its rejection is said here
    for image in study.images:
        if not has_known_size(image):
            messages.extend(image.messages)
    calibrated = risk.calibration is not None and risk.calibration.calibrated
    if risk.malignancy_probability is not None and not calibrated:
        messages.append(uncalibrated_message(risk.method))
    return [message.to_dict() for message in messages]


def study_result(
    study: Study,
    *,
    preprocessed: Mapping[str, PreprocessedImage],
    findings: Mapping[str, Sequence[Finding]],
    risk: StudyRisk,
    model: ModelInfo,
    timings_ms: Mapping[str, float],
    leading_candidates: Mapping[Laterality, Finding] | None = None,
) -> dict[str, Any]:
    """The schema object for ``study`` after the pipeline ran.

    ``preprocessed`` and ``findings`` are keyed by :attr:`~mammocad.structures.Image.key`;
    findings are in ORIGINAL pixels. ``timings_ms`` needs at least ``total``.
    ``leading_candidates`` become the breasts' ``x_leading_candidate``.
    """
    if "total" not in timings_ms:
        raise ValueError("timings_ms needs a 'total' entry (the schema requires it)")
    probability = None if study.status is StudyStatus.REJECTED else risk.malignancy_probability
    suspicion = risk.thresholds.category(rounded(probability))
    calibration = risk.calibration
    result = {
        "schema_version": SCHEMA_VERSION,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "status": study.status.value,
        "malignancy_probability": rounded(probability),
        "suspicion": suspicion.value if suspicion else None,
        "model": {
            **model.to_dict(),
            "risk": {
                "method": risk.method,
                "calibrated": calibration is not None and calibration.calibrated,
                "calibration": calibration.describe() if calibration else None,
                **(
                    {"study_calibration": risk.study_calibration.describe()}
                    if risk.study_calibration
                    else {}
                ),
                "suspicion_thresholds": risk.thresholds.to_dict(),
            },
        },
        "breasts": _breasts(study, risk, leading_candidates or {}),
        "images": _images(study, preprocessed, findings),
        "messages": _messages(study, risk),
        "timings_ms": {stage: round(float(ms), 1) for stage, ms in timings_ms.items()},
        # unrounded, for evaluation only: `mammocad eval study` reports how much AUC the
        # 2-decimal rounding users see costs (it must stay under 0.005)
        "x_malignancy_probability_unrounded": probability,
        # the study's Patient ID (the patient key of a --group-by patient study): joins results
        # to labels kept per patient, as public datasets' are (`eval study --dataset-labels`)
        "x_patient_id": study.patient_id,
    }
    if calibration is not None:
        # the score before calibration: what `mammocad calibrate` refits a site's calibration on
        raw = None if probability is None else risk.raw_probability
        result["x_malignancy_probability_uncalibrated"] = raw
    return result
