"""Risk calibration: fits, JSON round trip, ECE on deliberately miscalibrated scores, AUC kept
through calibration and 2-decimal rounding, refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.isotonic import IsotonicRegression

from mammocad.errors import ModelBundleError
from mammocad.eval.calibration import expected_calibration_error
from mammocad.eval.study_metrics import roc_auc
from mammocad.risk import (
    CALIBRATION_FILE,
    CalibrationError,
    CalibrationMethod,
    Calibrator,
    fit_calibrator,
    load_calibration,
    save_calibration,
)
from mammocad.risk.calibration import MIN_STUDIES, choose_method, logit

ISOTONIC, PLATT = CalibrationMethod.ISOTONIC, CalibrationMethod.PLATT
Scores = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


def cubed(n: int, seed: int) -> Scores:
    """True probability p ~ U(0, 1), label ~ Bernoulli(p), score p³: far too low (ECE ≈ 0.25)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    return p**3, (rng.uniform(size=n) < p).astype(np.int64)


def overconfident(n: int, seed: int) -> Scores:
    """score = σ(3·logit(p) − 1): too extreme and shifted, the miscalibration Platt models."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    return 1.0 / (1.0 + np.exp(-(3.0 * logit(p) - 1.0))), (rng.uniform(size=n) < p).astype(np.int64)


@pytest.mark.parametrize("method", [ISOTONIC, PLATT])
def test_round_trip_through_json_and_bundle(method: CalibrationMethod, tmp_path: Path) -> None:
    scores, labels = cubed(600, seed=1)
    calibrator = fit_calibrator(scores, labels, method=method, source="site A")
    again = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert again == calibrator
    grid = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_array_equal(again.apply(grid), calibrator.apply(grid))
    assert load_calibration(tmp_path) is None  # a bundle without calibration.json
    save_calibration(calibrator, tmp_path, extra={"operating_points": {"note": "kept"}})
    assert load_calibration(tmp_path) == calibrator
    assert calibrator.n_studies == 600 and calibrator.n_positive == int(labels.sum())
    assert calibrator.source == "site A" and calibrator.fitted


def test_invalid_calibration_file_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / CALIBRATION_FILE).write_text('{"format_version": 1, "method": "magic"}')
    with pytest.raises(ModelBundleError, match="mammocad calibrate"):
        load_calibration(tmp_path)


@pytest.mark.parametrize(
    ("method", "draw"), [(ISOTONIC, cubed), (PLATT, overconfident), (ISOTONIC, overconfident)]
)
def test_calibration_brings_ece_to_at_most_003(
    method: CalibrationMethod, draw: Callable[[int, int], Scores]
) -> None:
    """Measured on 50 000 fresh draws: at n = 600 the 10-bin ECE of the TRUE probabilities is
    itself 0.03–0.06 (sampling noise), so a ≤ 0.03 bound there would test luck, not the fit."""
    scores, labels = draw(2000, 0)
    test_scores, test_labels = draw(50_000, 99)
    calibrator = fit_calibrator(scores, labels, method=method)
    assert expected_calibration_error(test_scores, test_labels) > 0.1
    assert expected_calibration_error(calibrator.apply(test_scores), test_labels) <= 0.03


def test_platt_on_cubed_scores_is_close() -> None:
    """p³ is not a logistic distortion of p, so Platt is misspecified here — still ≤ 0.035."""
    scores, labels = cubed(2000, 0)
    test_scores, test_labels = cubed(50_000, 99)
    calibrator = fit_calibrator(scores, labels, method=PLATT)
    assert expected_calibration_error(calibrator.apply(test_scores), test_labels) <= 0.035


@pytest.mark.parametrize("method", [ISOTONIC, PLATT])
def test_fitting_data_n600_ece_drops(method: CalibrationMethod) -> None:
    scores, labels = cubed(600, seed=3)
    calibrated = fit_calibrator(scores, labels, method=method).apply(scores)
    assert expected_calibration_error(scores, labels) > 0.2
    assert expected_calibration_error(calibrated, labels) <= 0.04


@pytest.mark.parametrize("method", [ISOTONIC, PLATT])
def test_auc_is_kept_through_calibration_and_rounding(method: CalibrationMethod) -> None:
    scores, labels = cubed(600, seed=2)
    test_scores, test_labels = cubed(5000, seed=7)
    calibrator = fit_calibrator(scores, labels, method=method)
    for raw, truth in ((scores, labels), (test_scores, test_labels)):
        calibrated = calibrator.apply(raw)
        # strictly increasing: the same order, so exactly the same AUC before rounding
        assert roc_auc(calibrated, truth) == pytest.approx(roc_auc(raw, truth), abs=1e-12)
        assert abs(roc_auc(np.round(calibrated, 2), truth) - roc_auc(raw, truth)) < 0.005


def test_isotonic_plateaus_are_removed() -> None:
    """sklearn's step function ties malignant with benign studies of new data and loses AUC;
    the centred, blended map is strictly increasing and keeps it."""
    scores, labels = cubed(600, seed=2)
    test_scores, test_labels = cubed(5000, seed=7)
    calibrator = fit_calibrator(scores, labels, method=ISOTONIC)
    grid = np.linspace(0.0, 1.0, 10_001)
    assert np.all(np.diff(calibrator.apply(grid)) > 0)
    steps = IsotonicRegression(out_of_bounds="clip").fit(scores, labels).predict(test_scores)
    raw_auc = roc_auc(test_scores, test_labels)
    assert raw_auc - roc_auc(steps, test_labels) > 0.003
    assert raw_auc - roc_auc(calibrator.apply(test_scores), test_labels) == pytest.approx(0)


def test_bunched_scores_are_spread_out() -> None:
    """Scores bunched near 0 lose much of their AUC when rounded; calibrated, they do not.

    Prevalence here is about 17 %. Near 5 % and below, calibrated probabilities themselves sit
    in [0, 0.1] and rounding can cost more than 0.005 (docs/calibration.md); the CLI warns.
    """
    rng = np.random.default_rng(0)
    p = rng.beta(1.0, 5.0, 800)
    labels = (rng.uniform(size=800) < p).astype(np.int64)
    scores = p**4
    raw_auc = roc_auc(scores, labels)
    assert raw_auc - roc_auc(np.round(scores, 2), labels) > 0.05
    for method in (ISOTONIC, PLATT):
        shown = np.round(fit_calibrator(scores, labels, method=method).apply(scores), 2)
        assert raw_auc - roc_auc(shown, labels) < 0.005


def test_no_step_claims_certainty_and_the_tails_slope() -> None:
    """Risk-model scores of phantoms never exceed ~0.6, so new studies above every training
    score used to share one flat top (and a bottom step of benign breasts said exactly 0):
    rounded, they tied and cost AUC. Knots now stay inside (0, 1) and the map goes on with the
    Platt slope beyond them."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0, 0.6, 400)
    labels = (rng.uniform(size=400) < p).astype(np.int64)
    calibrator = fit_calibrator(p, labels, method=ISOTONIC)
    assert calibrator.tails.value == "platt" and calibrator.blend == 0.0
    assert min(calibrator.knots_y) > 0.0 and max(calibrator.knots_y) < 1.0
    top = np.linspace(max(calibrator.knots_x), 1.0 - 1e-9, 1000)
    low = np.linspace(1e-9, min(calibrator.knots_x), 1000)
    for grid in (top, low):
        assert np.all(np.diff(calibrator.apply(grid)) > 0)
    assert calibrator.apply_one(0.95) - calibrator.apply_one(max(calibrator.knots_x)) > 0.1
    # new studies above the training range: distinct 2-decimal probabilities in the same order
    beyond = rng.uniform(0.62, 0.95, 300)
    beyond_labels = (rng.uniform(size=300) < beyond).astype(np.int64)
    shown = np.round(calibrator.apply(beyond), 2)
    assert roc_auc(beyond, beyond_labels) - roc_auc(shown, beyond_labels) < 0.005


def test_files_with_flat_tails_apply_as_before() -> None:
    """calibration.json written before the Platt tails: knots padded to 0 and 1, 2 % Platt
    blended in, no ``tails`` key."""
    stored = {
        "format_version": 1,
        "method": "isotonic",
        "parameters": {
            "knots_x": [0.0, 0.2, 0.6, 1.0],
            "knots_y": [0.0, 0.1, 0.5, 0.5],
            "slope": 1.5,
            "intercept": 0.2,
            "blend": 0.02,
        },
        "fitted_on": {"n_studies": 400, "n_positive": 77},
    }
    calibrator = Calibrator.from_dict(stored)
    assert calibrator.tails.value == "flat"
    raw = np.array([0.0, 0.1, 0.4, 0.8, 1.0])
    platt = 1.0 / (1.0 + np.exp(-(1.5 * logit(raw) + 0.2)))
    isotonic = np.interp(raw, stored["parameters"]["knots_x"], stored["parameters"]["knots_y"])
    np.testing.assert_allclose(calibrator.apply(raw), 0.98 * isotonic + 0.02 * platt)


def test_auto_method_by_study_count() -> None:
    assert choose_method(200, 20) is ISOTONIC
    assert choose_method(199, 60) is PLATT
    assert choose_method(5000, 19) is PLATT
    scores, labels = cubed(600, seed=0)
    assert fit_calibrator(scores, labels).method is ISOTONIC
    assert fit_calibrator(scores[:150], labels[:150]).method is PLATT


def test_refuses_a_single_class() -> None:
    scores, _ = cubed(300, seed=0)
    with pytest.raises(CalibrationError, match=r"at least 20 .* at least 5 malignant"):
        fit_calibrator(scores, np.zeros(300, dtype=np.int64))


def test_refuses_too_few_studies() -> None:
    scores, labels = cubed(MIN_STUDIES - 1, seed=0)
    with pytest.raises(CalibrationError, match=f"got {MIN_STUDIES - 1}"):
        fit_calibrator(scores, labels)


def test_refuses_scores_that_rank_backwards() -> None:
    scores, labels = cubed(400, seed=0)
    with pytest.raises(CalibrationError, match="do not rank malignant"):
        fit_calibrator(1.0 - scores, labels)


def test_identity_and_constructor_checks() -> None:
    identity = Calibrator(method=CalibrationMethod.IDENTITY)
    np.testing.assert_array_equal(identity.apply([0.0, 0.3, 1.2]), [0.0, 0.3, 1.0])
    assert not identity.calibrated and identity.apply_one(None) is None
    with pytest.raises(ValueError, match="slope"):
        Calibrator(method=PLATT, slope=-1.0)
    with pytest.raises(ValueError, match="span"):
        Calibrator(method=ISOTONIC, knots_x=(0.1, 1.0), knots_y=(0.0, 1.0))


def test_a_calibration_file_with_nan_is_refused(tmp_path: Path) -> None:
    # a hand-edited calibration.json with a NaN knot passed every check (NaN compares false)
    # and gave NaN probabilities, written to result.json as a bare NaN no JSON reader takes
    calibrator = Calibrator(method=ISOTONIC, knots_x=(0.0, 0.5, 1.0), knots_y=(0.0, 0.4, 1.0))
    save_calibration(calibrator, tmp_path)
    path = tmp_path / CALIBRATION_FILE
    path.write_text(path.read_text().replace("0.4", "NaN", 1))
    with pytest.raises(ModelBundleError, match="mammocad calibrate"):
        load_calibration(tmp_path)
    with pytest.raises(ValueError, match="finite"):
        Calibrator(method=PLATT, intercept=float("nan"))
