"""The gradient-boosted risk model: learns a planted rule, exports to JSON exactly, and
round-trips through a bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mammocad.errors import ModelBundleError
from mammocad.fuse import copy_bundle
from mammocad.risk.bundle import RISK_FILE, load_risk, save_risk
from mammocad.risk.calibration import load_calibration
from mammocad.risk.features import EVIDENCE, FEATURES
from mammocad.risk.model import BoostParams, RiskModel, fit_boosted, fit_risk_model

SIGNAL = FEATURES.index("breast_probability")
QUALITY = FEATURES.index("min_quality")


def synthetic_rows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Random feature rows; malignant when the breast probability (plus noise) is high.
    Every fifth row has no quality score (NaN). Two breasts per patient."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (count, len(FEATURES)))
    x[::5, QUALITY] = np.nan
    labels = (x[:, SIGNAL] + 0.3 * rng.standard_normal(count) > 0.5).astype(np.int64)
    return x, labels, [f"{seed}-{row // 2}" for row in range(count)]


def test_learns_a_planted_rule_and_generalises() -> None:
    x, y, patients = synthetic_rows(200, seed=1)
    fitted = fit_risk_model(x, y, patients)
    assert roc_auc_score(y, fitted.out_of_fold) > 0.75
    x_new, y_new, _ = synthetic_rows(200, seed=2)
    probabilities = fitted.calibrator.apply(fitted.model.predict(x_new))
    assert roc_auc_score(y_new, probabilities) > 0.75
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert fitted.calibrator.calibrated


def test_more_evidence_never_lowers_the_risk() -> None:
    # labels that punish high evidence: only the constraint keeps the fitted risk from falling
    x, _, _ = synthetic_rows(300, seed=3)
    count = FEATURES.index("n_findings")
    y = ((x[:, count] > 0.3) & (x[:, count] < 0.7)).astype(np.int64)
    constrained = fit_boosted(x, y)
    free = fit_boosted(x, y, params=BoostParams(monotonic=False))
    grid = np.linspace(0.0, 1.0, 21)
    for model, rises_only in ((constrained, True), (free, False)):
        for row in x[:20]:
            rows = np.repeat(row[None], len(grid), axis=0)
            for name in EVIDENCE:
                rows_of = rows.copy()
                rows_of[:, FEATURES.index(name)] = grid
                steps = np.diff(model.predict(rows_of))
                if rises_only:
                    assert np.all(steps >= -1e-12), name
        if not rises_only:  # the unconstrained fit does follow the planted dip
            rows = np.repeat(x[:1], len(grid), axis=0)
            rows[:, count] = grid
            assert np.diff(model.predict(rows)).min() < 0


def test_saved_model_loads_with_identical_probabilities(tiny_bundle: Path, tmp_path: Path) -> None:
    x, y, patients = synthetic_rows(120, seed=3)
    fitted = fit_risk_model(x, y, patients)
    bundle = copy_bundle(tiny_bundle, tmp_path / "bundle")
    manifest = save_risk(fitted, bundle, training_data={"kind": "test"}, metrics={"m": 1})
    assert manifest.risk["method"] == "gradient_boosting"
    assert manifest.risk["features"] == list(FEATURES)
    loaded = load_risk(bundle)
    assert loaded is not None and loaded.method == "gradient_boosting"
    x_new, _, _ = synthetic_rows(50, seed=4)
    np.testing.assert_array_equal(loaded.model.predict(x_new), fitted.model.predict(x_new))
    calibrator = load_calibration(bundle)
    assert calibrator is not None
    np.testing.assert_allclose(calibrator.apply([0.2, 0.7]), fitted.calibrator.apply([0.2, 0.7]))
    # a copy of the bundle does not take the risk model along: it belongs to these outputs
    assert load_risk(copy_bundle(bundle, tmp_path / "copy")) is None


def test_tampered_or_foreign_risk_file_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    x, y, patients = synthetic_rows(60, seed=5)
    bundle = copy_bundle(tiny_bundle, tmp_path / "bundle")
    save_risk(fit_risk_model(x, y, patients), bundle)
    path = bundle / RISK_FILE
    data = json.loads(path.read_text())
    data["baseline"] += 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ModelBundleError, match="sha256"):
        load_risk(bundle)


def test_one_class_is_refused() -> None:
    x, _, patients = synthetic_rows(40, seed=6)
    with pytest.raises(ValueError, match="both classes"):
        fit_risk_model(x, np.zeros(40, dtype=np.int64), patients)


def test_model_dict_rejects_unknown_features() -> None:
    x, y, patients = synthetic_rows(60, seed=7)
    data = fit_risk_model(x, y, patients).model.to_dict()
    data["features"] = data["features"][:2]
    with pytest.raises(ValueError, match="feature"):
        RiskModel.from_dict(data)


def test_models_of_older_versions_use_their_own_feature_columns(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """risk.json lists the features it was trained on; a model from before the candidate
    features keeps working, each tree reading its own columns by name."""
    from mammocad.risk.apply import score_inputs
    from mammocad.risk.bundle import LoadedRisk
    from mammocad.risk.features import BreastInputs, columns
    from mammocad.risk.model import Tree
    from mammocad.structures import Finding, FindingLabel

    split = Tree(
        feature=(0, -1, -1),
        threshold=(0.2, 0.0, 0.0),
        missing_left=(True, False, False),
        left=(1, -1, -1),
        right=(2, -1, -1),
        is_leaf=(False, True, True),
        value=(0.0, -1.0, 1.0),
    )
    only = RiskModel(features=("max_candidate_contribution",), baseline=0.0, trees=(split,))
    weak, strong = (
        Finding(
            id=name,
            sop_instance_uid="x",
            label=FindingLabel.MASS,
            score=score,
            malignancy_probability=malignancy,
            box=(0.0, 0.0, 1.0, 1.0),
        )
        for name, score, malignancy in (("a", 0.6, 0.1), ("b", 0.3, 0.9))
    )
    scores = score_inputs(
        LoadedRisk(model=only, section={}),
        {
            "a": BreastInputs(findings=(weak,)),
            "b": BreastInputs(findings=(weak,), candidates=(weak, strong)),
        },  # type: ignore[dict-item]
    )
    assert scores["a"] == pytest.approx(1 / (1 + np.e))  # type: ignore[index]
    assert scores["b"] == pytest.approx(1 / (1 + np.exp(-1)))  # type: ignore[index]
    assert columns(FEATURES[:14]) == list(range(14))
    with pytest.raises(ValueError, match="not computed"):
        columns(("max_score", "tomorrow's feature"))


def test_the_pipeline_detects_down_to_the_risk_models_candidate_score(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    from mammocad.pipeline import Pipeline

    x, y, patients = synthetic_rows(60, seed=8)
    plain = copy_bundle(tiny_bundle, tmp_path / "plain")
    save_risk(fit_risk_model(x, y, patients), plain)
    with_candidates = copy_bundle(tiny_bundle, tmp_path / "candidates")
    save_risk(fit_risk_model(x, y, patients), with_candidates, candidate_score=0.01)
    detector = Pipeline.from_bundle(plain).detector
    assert detector.candidate_threshold == detector.finding_threshold > 0.01
    assert Pipeline.from_bundle(with_candidates).detector.candidate_threshold == 0.01
    # findings counted from below the bundle's finding threshold: detected down to there too
    lower = copy_bundle(tiny_bundle, tmp_path / "lower")
    counted_from = detector.finding_threshold / 2
    save_risk(fit_risk_model(x, y, patients), lower, finding_score=counted_from)
    loaded = load_risk(lower)
    assert loaded is not None and loaded.finding_score == counted_from
    assert load_risk(plain).finding_score is None  # type: ignore[union-attr]
    assert Pipeline.from_bundle(lower).detector.candidate_threshold == counted_from


def test_logistic_model_learns_keeps_weights_non_negative_and_round_trips(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    from mammocad.risk.features import columns
    from mammocad.risk.model import LogisticParams, cross_fit, fit_model

    x, y, patients = synthetic_rows(200, seed=11)
    noise = FEATURES.index("max_score")
    # the second feature is noise: it may only get weight 0 or a little, never below 0
    params = LogisticParams(features=("breast_probability", "max_score"))
    fitted = fit_risk_model(x, y, patients, params=params)
    model = fitted.model
    assert model.method == "logistic" and model.trees == () and model.features == params.features
    assert model.linear[0] > 1.0 and model.linear[1] >= 0.0
    assert roc_auc_score(y, fitted.out_of_fold) > 0.75
    x_new, y_new, _ = synthetic_rows(200, seed=12)
    scores = model.predict(x_new[:, columns(model.features)])
    assert roc_auc_score(y_new, scores) > 0.75
    # labels that reward *less* evidence: the weight stays at 0, the risk does not fall
    falling = (x[:, noise] < 0.5).astype(np.int64)
    punished = fit_model(x, falling, params=LogisticParams(features=("max_score",)))
    assert punished.linear == (0.0,)
    assert np.ptp(punished.predict(np.linspace(0, 1, 11)[:, None])) == 0.0
    # one-feature model: the same order as the feature, every breast its own score
    single = fit_risk_model(x, y, patients, params=LogisticParams(features=("breast_probability",)))
    np.testing.assert_array_equal(
        np.argsort(single.model.predict(x_new[:, [FEATURES.index("breast_probability")]])),
        np.argsort(x_new[:, FEATURES.index("breast_probability")]),
    )
    assert len(np.unique(cross_fit(x, y, patients, params=params))) == len(y)

    bundle = copy_bundle(tiny_bundle, tmp_path / "bundle")
    manifest = save_risk(fitted, bundle)
    assert manifest.risk["method"] == "logistic"
    assert json.loads((bundle / RISK_FILE).read_text())["format_version"] == 2
    loaded = load_risk(bundle)
    assert loaded is not None and loaded.reads_candidates is False
    np.testing.assert_array_equal(
        loaded.model.predict(x_new[:, columns(loaded.model.features)]), scores
    )
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fit_risk_model(x * 3, y, patients, params=params)
    with pytest.raises(ValueError, match="subset"):
        LogisticParams(features=("tomorrow's feature",))
