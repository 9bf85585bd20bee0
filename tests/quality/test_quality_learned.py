"""The learned quality model: its JSON file, its numpy inference and how the gate uses it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mammocad.commands.train_quality import CLIP, fit_model, make_estimator
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality
from mammocad.quality.degrade import DEGRADATIONS
from mammocad.quality.features import FEATURE_NAMES, features
from mammocad.quality.learned import GOOD, QualityModel, shipped_model
from mammocad.quality.measure import measure
from mammocad.structures import Severity, ViewPosition
from mammocad.synthetic import Defect

#: phantom seeds never used to train the shipped model (it used 10000-10099)
FRESH_SEEDS = (21, 22)


def test_shipped_model_loads_and_round_trips_through_json(tmp_path):
    model = shipped_model()
    assert model.feature_names == FEATURE_NAMES
    assert model.classes[0] == GOOD and "motion_blur" in model.classes
    assert 0.5 < model.refuse_probability <= 0.99
    assert "command" in model.description
    again = QualityModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.to_dict() == model.to_dict()
    model.save(tmp_path / "m.json")
    loaded = QualityModel.load(tmp_path / "m.json")
    x = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES)))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_a_file_of_other_features_or_format_is_refused():
    data = shipped_model().to_dict()
    with pytest.raises(ValueError, match="retrain"):
        QualityModel.from_dict({**data, "feature_names": data["feature_names"][:-1]})
    with pytest.raises(ValueError, match="format"):
        QualityModel.from_dict({**data, "format": "pickle"})


def test_numpy_inference_equals_scikit_learn():
    rng = np.random.default_rng(1)
    n = len(FEATURE_NAMES)
    labels = ["good"] * 40 + ["blank"] * 20 + ["motion_blur"] * 20
    x = rng.normal(size=(80, n)) + np.repeat([[0.0], [1.5], [-1.0]], [40, 20, 20], axis=0)
    x[:3] *= 50.0  # far outliers: the clipping must match too
    model = fit_model(x, labels, seed=0, description={})
    z = np.clip((x - model.mean) / model.scale, -CLIP, CLIP)
    y = np.array([model.classes.index(label) for label in labels])
    expected = make_estimator(0).fit(z, y).predict_proba(z)
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=0, atol=1e-12)
    assert model.classes == ("good", "blank", "motion_blur")


def test_fresh_white_noise_and_blank_views_are_refused_and_a_good_view_accepted(phantom, run_gate):
    for seed in FRESH_SEEDS:
        for view in (ViewPosition.CC, ViewPosition.MLO):
            good = run_gate(phantom(seed=seed, view=view))
            assert good.quality.acceptable, (seed, view, good.codes)
            assert good.quality.score >= 0.8
            for defect in (Defect.NOISE, Defect.BLANK):
                bad = run_gate(phantom(seed=seed, view=view, defects=[defect]))
                assert not bad.quality.acceptable, (seed, view, defect)


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_degraded_copies_of_a_fresh_phantom_are_refused(phantom, run_gate, name):
    degrade, _ = DEGRADATIONS[name]
    image = phantom(seed=FRESH_SEEDS[0], view=ViewPosition.MLO)
    tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    pixels = np.asarray(image.pixels)
    image.pixels = degrade(pixels, tissue, np.random.default_rng(0), image.pixel_spacing_mm[0])
    gated = run_gate(image)
    assert not gated.quality.acceptable, (name, gated.codes)


def _always(code: str) -> QualityModel:
    """A model that calls every image ``code`` with P(defective) about 0.98."""
    base = shipped_model()
    intercept = np.zeros(len(base.classes))
    intercept[base.classes.index(code)] = 6.0
    return replace(base, coef=np.zeros_like(base.coef), intercept=intercept)


def test_a_confident_model_refusal_the_heuristics_missed_is_an_error_issue(phantom, run_gate):
    image = phantom(seed=FRESH_SEEDS[1])
    prepared = preprocess_image(image, PreprocessParams())
    alone = assess_quality(image, prepared, QualityParams(), model=None)
    assert alone.acceptable
    combined = assess_quality(image, prepared, QualityParams(), model=_always("motion_blur"))
    assert not combined.acceptable
    (issue,) = [i for i in combined.issues if i.code == "motion_blur"]
    assert issue.severity is Severity.ERROR and "learned quality model" in issue.text
    p_defective, _ = _always("motion_blur").assess(
        features(prepared, QualityParams(), measure(prepared, QualityParams()))
    )
    assert combined.score == pytest.approx(alone.score * (1.0 - p_defective))


def test_the_model_adds_nothing_where_a_heuristic_error_fired(phantom):
    image = phantom(seed=FRESH_SEEDS[1], defects=[Defect.MOTION_BLUR])
    prepared = preprocess_image(image, PreprocessParams())
    quality = assess_quality(image, prepared, QualityParams(), model=_always("blank"))
    codes = [i.code for i in quality.issues]
    assert "motion_blur" in codes and "blank" not in codes
    assert quality.score <= 0.5 * 0.05
