"""Interim breast- and study-level malignancy probability from the detector's findings.

This is what a bundle without a risk model (docs/risk.md) uses; it is NOT calibrated unless
the bundle has a calibration. The rule, also in docs/analyze.md:

* each finding ``i`` contributes ``p_i = s_i · m_i`` — detection score times its malignancy
  probability, each clipped to [0, 1];
* breast probability is the noisy-OR ``1 − (1 − prior) · Π_i (1 − p_i)`` over the findings on
  that breast's processed images; ``prior`` (default 0.0) is therefore what a breast that was
  read and showed no finding gets;
* a breast with no processed image has no probability (``None``);
* study probability is the maximum over the breasts, ``None`` when nothing was processed;
* ``suspicion`` compares the study probability, as rounded for output (2 decimals), with the
  bundle manifest's ``thresholds["intermediate"]`` and ``thresholds["high"]`` (defaults 0.1 and
  0.5 when the bundle has none), so the category always agrees with the number shown.
* with cross-view fusion (:mod:`mammocad.fuse`, a bundle with fusion weights), the fused
  breast probability replaces the noisy-OR for each breast it covers (``breast_raw``);
* when the bundle has a calibration (:mod:`mammocad.risk.calibration`), it maps every breast
  and study probability before rounding; being non-decreasing, the study probability is still
  the maximum over the breasts. The raw study score is kept for recalibration.
* a bundle's study calibration (``study_calibration.json``), where it has one, maps the raw
  study score instead: the study's probability is that *any* breast is malignant, which the
  breast map of the highest breast underestimates (docs/calibration.md) — when both breasts
  were read, as in the studies it was fitted on; with one breast read the study is that
  breast's probability.

Known bias: without cross-view fusion weights, a lesion seen on both CC and MLO counts twice,
which pushes the breast probability up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from math import prod

import numpy as np
import numpy.typing as npt

from mammocad.errors import ModelBundleError
from mammocad.risk.calibration import Calibrator
from mammocad.structures import Finding, Laterality, Study

#: Used when the bundle manifest records no suspicion thresholds (documented in docs/analyze.md).
DEFAULT_INTERMEDIATE = 0.1
DEFAULT_HIGH = 0.5
#: Decimals of every probability in the result (the schema's rounding rule).
OUTPUT_DECIMALS = 2


class Suspicion(str, Enum):
    """Operating-point category of the study probability (the schema's ``suspicion``)."""

    LOW = "low"
    INTERMEDIATE = "intermediate"
    HIGH = "high"


@dataclass(frozen=True, slots=True, kw_only=True)
class SuspicionThresholds:
    """``p ≥ high`` → high; ``p ≥ intermediate`` → intermediate; else low.

    ``from_bundle`` is False when the defaults were used because the manifest had none.
    """

    intermediate: float = DEFAULT_INTERMEDIATE
    high: float = DEFAULT_HIGH
    from_bundle: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.intermediate <= self.high <= 1.0:
            raise ValueError(
                "suspicion thresholds must satisfy 0 <= intermediate <= high <= 1, got "
                f"{self.intermediate} and {self.high}"
            )

    @classmethod
    def from_manifest(cls, thresholds: Mapping[str, float]) -> SuspicionThresholds:
        """Read ``intermediate`` / ``high`` from a manifest's ``thresholds``; other keys (such as
        the detector's ``finding_score``) are not ours and are ignored."""
        if "intermediate" not in thresholds and "high" not in thresholds:
            return cls()
        try:
            return cls(
                intermediate=float(thresholds.get("intermediate", DEFAULT_INTERMEDIATE)),
                high=float(thresholds.get("high", DEFAULT_HIGH)),
                from_bundle=True,
            )
        except (TypeError, ValueError) as error:
            raise ModelBundleError(
                f"the bundle's suspicion thresholds are invalid ({error}); fix "
                "thresholds.intermediate / thresholds.high in manifest.json or re-export it"
            ) from error

    def category(self, probability: float | None) -> Suspicion | None:
        if probability is None:
            return None
        if probability >= self.high:
            return Suspicion.HIGH
        return Suspicion.INTERMEDIATE if probability >= self.intermediate else Suspicion.LOW

    def to_dict(self) -> dict[str, object]:
        return {
            "intermediate": self.intermediate,
            "high": self.high,
            "source": "bundle" if self.from_bundle else "default",
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastRisk:
    """One breast: unrounded probability (``None`` when no image of it was processed)."""

    laterality: Laterality
    malignancy_probability: float | None
    finding_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyRisk:
    """Breasts in the order R, L; ``malignancy_probability`` unrounded (round for output).

    With a ``calibration``, the probabilities are calibrated and ``raw_probability`` is the
    study score before it (what ``mammocad calibrate`` fits on); without, the two are equal.
    ``method`` names how the breast probabilities were made (the result's
    ``model.risk.method``): ``interim_noisy_or``, ``cross_view_fusion`` when fused breast
    probabilities (:mod:`mammocad.fuse`) replaced it, or the risk model's method
    (``gradient_boosting``, :mod:`mammocad.risk.model`).
    """

    breasts: tuple[BreastRisk, ...]
    malignancy_probability: float | None
    suspicion: Suspicion | None
    thresholds: SuspicionThresholds
    raw_probability: float | None = None
    calibration: Calibrator | None = None
    method: str = "interim_noisy_or"
    #: the map of the study probability when the bundle has its own and it applied (both
    #: breasts read; else ``calibration``)
    study_calibration: Calibrator | None = None

    def breast(self, laterality: Laterality) -> BreastRisk:
        return next(item for item in self.breasts if item.laterality is laterality)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def contribution(finding: Finding) -> float:
    """``score · malignancy`` of ``finding``, each clipped to [0, 1]: what one finding adds to
    the noisy-OR, and the unit of the risk model's evidence features."""
    return _clip(finding.score) * _clip(finding.malignancy_probability)


def noisy_or(findings: Iterable[Finding], *, prior: float = 0.0) -> float:
    """``1 − (1 − prior) · Π (1 − score · malignancy)``, in [0, 1]."""
    miss = prod(1.0 - contribution(f) for f in findings)
    return _clip(1.0 - (1.0 - _clip(prior)) * miss)


def rounded(probability: float | None) -> float | None:
    """A probability as written to the result (2 decimals), ``None`` kept."""
    return None if probability is None else round(probability, OUTPUT_DECIMALS)


def aggregate(
    study: Study,
    findings: Mapping[str, Sequence[Finding]],
    *,
    thresholds: SuspicionThresholds,
    prior: float = 0.0,
    calibrator: Calibrator | None = None,
    breast_raw: Mapping[Laterality, float] | None = None,
    sideless_raw: float | None = None,
    method: str | None = None,
    study_calibrator: Calibrator | None = None,
) -> StudyRisk:
    """Breast and study probabilities of ``study`` from ``findings`` per image key.

    Only the study's processed images count; their findings are looked up by
    :attr:`~mammocad.structures.Image.key`. Findings on a processed image of unknown laterality
    belong to no breast but still raise the study probability (a lesion is a lesion).
    ``calibrator`` (the bundle's, if any) maps the breast and study probabilities;
    ``study_calibrator`` (the bundle's study calibration, if any) maps the study's instead,
    never below its highest breast (a study is at least as likely malignant as either breast),
    when both breasts were read: it was fitted on the maximum over two breasts, and a study with
    one breast read is that breast's probability.
    ``breast_raw`` (fused probabilities, :mod:`mammocad.fuse`) replaces the noisy-OR of the
    breasts it names that have a processed image; ``sideless_raw`` the noisy-OR of the images
    of unknown laterality; ``method`` (default: by ``breast_raw``) is recorded as is.
    """
    calibrate = calibrator.apply_one if calibrator else _unchanged
    breasts, candidates = [], []
    for side in (Laterality.R, Laterality.L):
        images = study.breast(side)
        found = [finding for image in images for finding in findings.get(image.key, ())]
        raw = noisy_or(found, prior=prior) if images else None
        if raw is not None and breast_raw and side in breast_raw:
            raw = _clip(breast_raw[side])
        candidates += [] if raw is None else [raw]
        breasts.append(
            BreastRisk(
                laterality=side,
                malignancy_probability=calibrate(raw),
                finding_ids=tuple(finding.id for finding in found),
            )
        )
    sideless = [image for image in study.processed_images() if image.laterality is None]
    if sideless and sideless_raw is not None:
        candidates.append(_clip(sideless_raw))
    elif sideless:
        candidates.append(
            noisy_or((f for image in sideless for f in findings.get(image.key, ())), prior=prior)
        )
    # calibrations are non-decreasing: the maximum of the raw scores maps to the maximum
    raw_study = max(candidates) if candidates else None
    # the study map is fitted on the maximum over two read breasts; with one breast read
    # (mastectomy, a breast not sent or all its views refused) nothing stands behind the
    # other half of "either breast", and the study is its one breast
    both_read = all(breast.malignancy_probability is not None for breast in breasts)
    mapped = study_calibrator if both_read else None
    probability = None
    if raw_study is not None:
        probability = float(study_probability(raw_study, calibrator, mapped))
    return StudyRisk(
        breasts=tuple(breasts),
        malignancy_probability=probability,
        suspicion=thresholds.category(rounded(probability)),
        thresholds=thresholds,
        raw_probability=raw_study,
        calibration=calibrator,
        method=method or ("cross_view_fusion" if breast_raw else "interim_noisy_or"),
        study_calibration=mapped,  # the map the study probability went through, if any
    )


def study_probability(
    raw: npt.ArrayLike, calibrator: Calibrator | None, study_calibrator: Calibrator | None
) -> npt.NDArray[np.float64]:
    """Study probabilities of raw study scores (the maximum over the breasts): the study map
    where the bundle has one, never below the breast map of the same score — the highest
    breast's probability, since a study is at least as likely malignant as either breast —
    else the breast map, else the raw score."""
    values = np.asarray(raw, dtype=np.float64)
    breast = values if calibrator is None else calibrator.apply(values)
    if study_calibrator is None:
        return np.asarray(breast, dtype=np.float64)
    return np.maximum(study_calibrator.apply(values), breast)


def _unchanged(probability: float | None) -> float | None:
    return probability
