"""Suspicion operating points on the probabilities shown, and calibrated aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.eval.study_metrics import metrics_at_threshold
from mammocad.risk import CalibrationMethod, Calibrator, Suspicion, SuspicionThresholds, aggregate
from mammocad.risk.operating_points import choose_operating_points, on_display_grid
from mammocad.structures import Finding, FindingLabel, Image, Laterality, Study, ViewPosition


def noisy_scores(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    return np.round(p, 2), (rng.uniform(size=n) < p).astype(np.int64)


def test_thresholds_meet_both_targets_on_the_fitting_data() -> None:
    shown, labels = noisy_scores()
    points = choose_operating_points(shown, labels)
    assert points.intermediate.sensitivity >= 0.9
    assert points.high.specificity >= 0.9
    assert points.notes == ()
    thresholds = points.thresholds
    assert thresholds.from_bundle and thresholds.intermediate <= thresholds.high
    for value in (thresholds.intermediate, thresholds.high):
        assert value == round(value, 2)  # on the grid of the numbers users see
    # the category of each study follows the number shown: recount from the categories
    categories = [thresholds.category(float(p)) for p in shown]
    flagged = np.array([c is not Suspicion.LOW for c in categories])
    assert flagged[labels == 1].mean() == pytest.approx(points.intermediate.sensitivity)
    high = np.array([c is Suspicion.HIGH for c in categories])
    assert 1 - high[labels == 0].mean() == pytest.approx(points.high.specificity)


def test_most_sensitive_threshold_that_keeps_the_specificity() -> None:
    # ten benign studies: the 9th lowest is 0.30, so 90 % specificity needs t > 0.30 → 0.31,
    # not the next observed score 0.9
    benign = [0.0, 0.05, 0.1, 0.1, 0.12, 0.2, 0.22, 0.25, 0.3, 0.3]
    malignant = [0.29, 0.3, 0.9, 0.95]
    shown = np.array(benign + malignant)
    labels = np.array([0] * 10 + [1] * 4)
    points = choose_operating_points(shown, labels)
    assert points.high.threshold == 0.31
    assert points.high.specificity == 1.0  # both 0.30s are below it
    assert points.high.sensitivity == 0.5  # the malignant 0.30 is not high
    # 90 % of 4 positives = 4: the lowest positive, 0.29
    assert points.intermediate.threshold == 0.29
    assert points.intermediate.sensitivity == 1.0


def test_separated_classes_swap_and_say_so() -> None:
    shown = np.array([0.01, 0.02, 0.03, 0.05, 0.1, 0.6, 0.7, 0.8, 0.9, 0.95])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    points = choose_operating_points(shown, labels)
    assert points.intermediate.threshold <= points.high.threshold
    assert points.notes and "swapped" in points.notes[0]
    for metrics in (points.intermediate, points.high):  # both still meet both targets
        assert metrics.sensitivity >= 0.9 and metrics.specificity >= 0.9


def test_unreachable_specificity_is_reported() -> None:
    shown = np.array([1.0] * 5 + [0.2] * 5 + [1.0] * 5)
    labels = np.array([0] * 10 + [1] * 5)
    points = choose_operating_points(shown, labels)
    assert points.high.threshold == 1.0
    assert any("specificity" in note for note in points.notes)


def test_display_grid() -> None:
    assert on_display_grid(0.3) == 0.3
    assert on_display_grid(float(np.nextafter(0.3, 1.0))) == 0.31
    assert on_display_grid(float(np.nextafter(1.0, 2.0))) == 1.0
    metrics = metrics_at_threshold([0.3, 0.31], [0, 1], on_display_grid(0.3000001))
    assert metrics.tp == 1 and metrics.tn == 1


def _study() -> tuple[Study, dict[str, list[Finding]]]:
    images = [
        Image(source=f"{s.value}{v.value}.dcm", sop_instance_uid=f"{s.value}{v.value}",
              laterality=s, view=v, rows=64, columns=48)
        for s in Laterality
        for v in (ViewPosition.CC, ViewPosition.MLO)
    ]  # fmt: skip
    finding = Finding(
        id="RCC-f1", sop_instance_uid="RCC", label=FindingLabel.MASS, score=0.8,
        malignancy_probability=0.5, box=(10.0, 10.0, 20.0, 20.0),
    )  # fmt: skip
    return Study(study_instance_uid="1.2.3", images=images), {"RCC": [finding]}


def test_aggregate_applies_the_calibration_before_rounding() -> None:
    calibrator = Calibrator(
        method=CalibrationMethod.PLATT, slope=2.0, intercept=-1.0, n_studies=50, n_positive=10
    )
    thresholds = SuspicionThresholds(intermediate=0.05, high=0.2, from_bundle=True)
    study, findings = _study()
    plain = aggregate(study, findings, thresholds=thresholds)
    risk = aggregate(study, findings, thresholds=thresholds, calibrator=calibrator)
    assert plain.malignancy_probability == pytest.approx(0.4)
    # σ(2·logit(0.4) − 1) = σ(−1.811) ≈ 0.1405: intermediate, where 0.40 would be high
    assert risk.malignancy_probability == pytest.approx(0.14050, abs=1e-4)
    assert risk.raw_probability == pytest.approx(0.4)
    assert plain.raw_probability == plain.malignancy_probability
    assert risk.suspicion is Suspicion.INTERMEDIATE and plain.suspicion is Suspicion.HIGH
    left = risk.breast(Laterality.L).malignancy_probability  # read, nothing found: σ(2·logit 0 − 1)
    assert left == pytest.approx(float(calibrator.apply(0.0)))
    assert risk.calibration is calibrator
