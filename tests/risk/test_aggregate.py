"""Interim breast/study probability: noisy-OR of score × malignancy, hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammocad.errors import ModelBundleError, RejectionCode
from mammocad.risk import Suspicion, SuspicionThresholds, aggregate, noisy_or
from mammocad.structures import Finding, FindingLabel, Image, Laterality, Study, ViewPosition

DEFAULTS = SuspicionThresholds()


def finding(key: str, rank: int, score: float, malignancy: float) -> Finding:
    return Finding(
        id=f"{key}-f{rank}",
        sop_instance_uid=key,
        label=FindingLabel.MASS,
        score=score,
        malignancy_probability=malignancy,
        box=(10.0, 10.0, 20.0, 20.0),
    )


def image(key: str, side: Laterality | None, view: ViewPosition = ViewPosition.CC) -> Image:
    return Image(
        source=f"{key}.dcm", sop_instance_uid=key, laterality=side, view=view, rows=64, columns=48
    )


def four_views() -> Study:
    images = [
        image(f"{side.value}{view.value}", side, view)
        for side in Laterality
        for view in (ViewPosition.CC, ViewPosition.MLO)
    ]
    return Study(study_instance_uid="1.2.3", images=images)


def test_noisy_or_by_hand() -> None:
    # 1 − (1 − 0.8·0.5)(1 − 0.5·0.2) = 1 − 0.6·0.9 = 0.46
    found = [finding("a", 1, 0.8, 0.5), finding("a", 2, 0.5, 0.2)]
    assert noisy_or(found) == pytest.approx(0.46)
    # the prior is one more independent term: 1 − 0.98·0.54 = 0.4708
    assert noisy_or(found, prior=0.02) == pytest.approx(0.4708)
    assert noisy_or([]) == 0.0
    assert noisy_or([finding("a", 1, 1.0, 1.0)]) == 1.0


def test_breasts_and_study_by_hand() -> None:
    study = four_views()
    findings = {
        "RCC": [finding("RCC", 1, 0.8, 0.5)],  # 0.4
        "RMLO": [finding("RMLO", 1, 0.5, 0.2)],  # 0.1 → right breast 0.46
        "LCC": [finding("LCC", 1, 0.9, 0.1)],  # 0.09 → left breast 0.09
    }
    risk = aggregate(study, findings, thresholds=DEFAULTS)
    right, left = risk.breast(Laterality.R), risk.breast(Laterality.L)
    assert right.malignancy_probability == pytest.approx(0.46)
    assert set(right.finding_ids) == {"RCC-f1", "RMLO-f1"}
    assert left.malignancy_probability == pytest.approx(0.09)
    assert left.finding_ids == ("LCC-f1",)
    assert risk.malignancy_probability == pytest.approx(0.46)  # max over breasts
    assert risk.suspicion is Suspicion.INTERMEDIATE  # 0.1 ≤ 0.46 < 0.5


def test_lesion_free_breast_gets_the_prior() -> None:
    risk = aggregate(four_views(), {}, thresholds=DEFAULTS)
    assert [b.malignancy_probability for b in risk.breasts] == [0.0, 0.0]
    assert risk.malignancy_probability == 0.0
    assert risk.suspicion is Suspicion.LOW
    with_prior = aggregate(four_views(), {}, thresholds=DEFAULTS, prior=0.03)
    assert with_prior.malignancy_probability == pytest.approx(0.03)


def test_breast_without_processed_image_has_no_probability() -> None:
    study = four_views()
    for item in study.images:
        if item.laterality is Laterality.L:
            item.reject(RejectionCode.NO_TISSUE, "No breast tissue found.")
    risk = aggregate(study, {"RCC": [finding("RCC", 1, 0.6, 0.5)]}, thresholds=DEFAULTS)
    assert risk.breast(Laterality.L).malignancy_probability is None
    assert risk.malignancy_probability == pytest.approx(0.3)


def test_rejected_study_has_no_probability_and_no_suspicion() -> None:
    study = four_views()
    for item in study.images:
        item.reject(RejectionCode.DECODE_FAILED, "The pixel data could not be decoded.")
    risk = aggregate(study, {}, thresholds=DEFAULTS)
    assert risk.malignancy_probability is None
    assert risk.suspicion is None
    assert all(b.malignancy_probability is None for b in risk.breasts)


def test_findings_of_an_image_without_side_still_count_for_the_study() -> None:
    study = Study(study_instance_uid="1.2.3", images=[image("X", None)])
    risk = aggregate(study, {"X": [finding("X", 1, 0.9, 0.9)]}, thresholds=DEFAULTS)
    assert risk.malignancy_probability == pytest.approx(0.81)
    assert risk.suspicion is Suspicion.HIGH


def test_suspicion_uses_the_rounded_probability() -> None:
    # 0.4999 is shown as 0.50, so it must be called high, not intermediate
    study = four_views()
    risk = aggregate(study, {"RCC": [finding("RCC", 1, 1.0, 0.4999)]}, thresholds=DEFAULTS)
    assert risk.suspicion is Suspicion.HIGH


def test_thresholds_from_the_manifest() -> None:
    assert SuspicionThresholds.from_manifest({"finding_score": 0.3}) == SuspicionThresholds()
    assert not SuspicionThresholds.from_manifest({}).from_bundle
    custom = SuspicionThresholds.from_manifest({"intermediate": 0.2, "high": 0.6})
    assert (custom.intermediate, custom.high, custom.from_bundle) == (0.2, 0.6, True)
    assert custom.category(0.19) is Suspicion.LOW
    assert custom.category(0.2) is Suspicion.INTERMEDIATE
    assert custom.category(0.6) is Suspicion.HIGH
    assert custom.category(None) is None
    with pytest.raises(ModelBundleError, match=r"manifest\.json"):
        SuspicionThresholds.from_manifest({"intermediate": 0.7, "high": 0.6})


def test_study_calibration_maps_the_study_never_below_its_highest_breast() -> None:
    """The study is P(any breast malignant): its own map where the bundle has one, floored
    at the highest breast's probability; breasts keep the breast map."""
    from mammocad.risk import CalibrationMethod, Calibrator
    from mammocad.risk.aggregate import study_probability

    breast_map = Calibrator(method=CalibrationMethod.PLATT, slope=1.0, intercept=0.0)
    higher = Calibrator(method=CalibrationMethod.PLATT, slope=1.0, intercept=1.0)
    lower = Calibrator(method=CalibrationMethod.PLATT, slope=1.0, intercept=-1.0)
    study = four_views()
    findings = {"RCC": [finding("RCC", 1, 0.8, 0.5)], "LCC": [finding("LCC", 1, 0.5, 0.2)]}
    plain = aggregate(study, findings, thresholds=DEFAULTS, calibrator=breast_map)
    assert plain.malignancy_probability == pytest.approx(0.4)  # identity Platt: the max breast
    up = aggregate(
        study, findings, thresholds=DEFAULTS, calibrator=breast_map, study_calibrator=higher
    )
    # logit(0.4) + 1 → 0.644; the breasts are unchanged
    assert up.malignancy_probability == pytest.approx(1 / (1 + 1.5 / math.e))
    assert up.breast(Laterality.R).malignancy_probability == pytest.approx(0.4)
    assert up.raw_probability == pytest.approx(0.4) and up.study_calibration is higher
    down = aggregate(
        study, findings, thresholds=DEFAULTS, calibrator=breast_map, study_calibrator=lower
    )
    assert down.malignancy_probability == pytest.approx(0.4)  # floored at the right breast
    np.testing.assert_allclose(
        study_probability([0.1, 0.4], breast_map, higher), [1 / (1 + 9 / math.e), 0.644], atol=1e-3
    )
    np.testing.assert_allclose(study_probability([0.1, 0.4], None, None), [0.1, 0.4])


def test_study_map_is_not_applied_to_a_study_with_one_breast_read() -> None:
    """The study map is fitted on raw study scores that are the maximum over TWO read
    breasts (P(either breast malignant)). A study where only one breast was read — a
    mastectomy, a breast not sent, or every view of it refused — has no second breast behind
    its raw score: its probability is its one breast's, not the two-breast map's (which lifted
    a 'low' breast of 0.12 to an 'intermediate' study of 0.27 with bundle 0.5.3)."""
    from mammocad.risk import CalibrationMethod, Calibrator

    breast_map = Calibrator(method=CalibrationMethod.PLATT, slope=1.0, intercept=0.0)
    higher = Calibrator(method=CalibrationMethod.PLATT, slope=1.0, intercept=1.0)
    thresholds = SuspicionThresholds(intermediate=0.5, high=0.8, from_bundle=True)
    images = [image("LCC", Laterality.L), image("LMLO", Laterality.L, ViewPosition.MLO)]
    images += [image("RCC", Laterality.R), image("RMLO", Laterality.R, ViewPosition.MLO)]
    for right in images[2:]:
        right.reject(RejectionCode.QUALITY, "Refused by the quality gate.")
    study = Study(study_instance_uid="1.2.3", images=images)
    findings = {"LCC": [finding("LCC", 1, 0.8, 0.5)]}  # left breast 0.4
    risk = aggregate(
        study, findings, thresholds=thresholds, calibrator=breast_map, study_calibrator=higher
    )
    assert risk.breast(Laterality.R).malignancy_probability is None
    left = risk.breast(Laterality.L).malignancy_probability
    assert left == pytest.approx(0.4)
    assert risk.malignancy_probability == pytest.approx(left)
    assert risk.suspicion is Suspicion.LOW  # as its only breast
    assert risk.raw_probability == pytest.approx(0.4)
    assert risk.study_calibration is None  # result.json names no map the study did not take
