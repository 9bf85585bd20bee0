"""Each phantom defect is caught with its code; good phantoms pass."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality, measure
from mammocad.quality.measure import working_copy
from mammocad.structures import Image, Laterality, Severity, ViewPosition
from mammocad.synthetic import Defect
from mammocad.synthetic.defects import motion_blur

from .conftest import gate

VIEWS = [ViewPosition.CC, ViewPosition.MLO]


@pytest.mark.parametrize("view", VIEWS)
def test_good_phantom_passes_with_a_high_score(phantom, run_gate, view):
    for seed, side in ((3, Laterality.L), (8, Laterality.R)):
        gated = run_gate(phantom(seed=seed, view=view, laterality=side))
        assert gated.quality.acceptable, gated.quality.issues
        # the score is the heuristics' times the learned model's P(good): the model trained
        # with framed films (docs/quality.md "Framing") is less sure of small phantoms, whose
        # breast fills little of the image (seed 3's left MLO 0.76), and acceptance is its decision
        assert gated.quality.score >= 0.7
        assert not any(i.severity is Severity.ERROR for i in gated.quality.issues)


@pytest.mark.parametrize(
    ("defect", "code"),
    [
        (Defect.BURNED_OUT, "overexposed"),
        (Defect.CUT_OFF, "breast_cut_off"),
        (Defect.MOTION_BLUR, "motion_blur"),
    ],
)
@pytest.mark.parametrize("view", VIEWS)
def test_defect_is_caught_with_its_code(phantom, run_gate, defect, code, view):
    for seed in (3, 4):  # cut_off: one anterior, one vertical cut between them
        gated = run_gate(phantom(seed=seed, view=view, defects=[defect]))
        assert code in gated.codes, (seed, gated.codes)
        assert not gated.quality.acceptable
        assert gated.quality.score <= 0.5
        (issue,) = [i for i in gated.quality.issues if i.code == code]
        assert issue.severity is Severity.ERROR
        assert issue.sop_instance_uid == gated.image.sop_instance_uid


@pytest.mark.parametrize(
    ("defect", "code"), [(Defect.NOISE, "no_anatomy"), (Defect.BLANK, "blank")]
)
def test_image_preprocessing_rejects_is_refused(phantom, run_gate, defect, code):
    gated = run_gate(phantom(defects=[defect]))
    assert gated.prepared is None
    assert gated.codes == {code}
    assert not gated.quality.acceptable
    assert gated.quality.score == 0.5


def test_white_noise_that_preprocessing_takes_for_tissue_is_no_anatomy(phantom, run_gate):
    image = phantom(view=ViewPosition.MLO)
    pixels = np.asarray(image.pixels)
    tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    noise = np.random.default_rng(0).normal(float(pixels[tissue].mean()), 0.15, pixels.shape)
    image.pixels = np.where(tissue, np.clip(noise, 0, 1), pixels).astype(np.float32)
    gated = run_gate(image)
    assert gated.prepared is not None  # preprocessing lets it through
    assert gated.codes >= {"no_anatomy"}
    assert "motion_blur" not in gated.codes  # no anatomy: nothing else is judged
    assert not gated.quality.acceptable


def test_flat_breast_is_blank(phantom):
    # preprocessing refuses a flat breast outright; check the gate's own test on its masks
    image = phantom()
    prepared = preprocess_image(image, PreprocessParams())
    image.pixels = np.where(prepared.tissue_mask, 0.5, image.pixels).astype(np.float32)
    quality = assess_quality(image, prepared, QualityParams())
    assert {i.code for i in quality.issues} == {"blank"}
    assert not quality.acceptable


def test_washed_out_white_breast_is_underexposed(phantom, run_gate):
    image = phantom()
    tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    pixels = np.asarray(image.pixels)
    image.pixels = np.where(tissue, 0.9 + 0.1 * pixels, pixels).astype(np.float32)
    gated = run_gate(image)
    assert "underexposed" in gated.codes
    assert "overexposed" not in gated.codes
    assert not gated.quality.acceptable


def test_mlo_without_pectoral_muscle_is_a_positioning_warning(phantom):
    image = phantom(view=ViewPosition.MLO)
    prepared = preprocess_image(image, PreprocessParams())
    assert prepared.pectoral_mask is not None and prepared.pectoral_mask.any()
    prepared.pectoral_mask = np.zeros_like(prepared.tissue_mask)
    quality = assess_quality(image, prepared, QualityParams())
    (issue,) = [i for i in quality.issues if i.code == "pectoral_not_shown"]
    assert issue.severity is Severity.WARNING
    assert "positioning" in issue.text
    assert quality.acceptable


def test_implant_is_flagged_only(phantom, run_gate):
    image = phantom(seed=5)
    prepared = preprocess_image(image, PreprocessParams())
    ys, xs = np.nonzero(prepared.tissue_mask)
    pixels = np.array(image.pixels)
    centre = (int(np.percentile(xs, 30)), int(ys.mean()))
    axes = (int(np.ptp(xs) * 0.25), int(np.ptp(ys) * 0.2))
    cv2.ellipse(pixels, centre, axes, 0, 0, 360, 0.97, -1)
    image.pixels = pixels
    gated = run_gate(image)
    (issue,) = [i for i in gated.quality.issues if i.code == "implant"]
    assert issue.severity is Severity.INFO
    assert gated.quality.acceptable


@pytest.mark.parametrize("view", [ViewPosition.XCCL, None])
def test_unexpected_view_is_a_warning(phantom, run_gate, view):
    image = phantom()
    image.view = view
    gated = run_gate(image)
    (issue,) = [i for i in gated.quality.issues if i.code == "unexpected_view"]
    assert issue.severity is Severity.WARNING
    assert gated.quality.acceptable


def test_issue_texts_say_what_to_do(phantom, run_gate):
    for defect in (Defect.BURNED_OUT, Defect.CUT_OFF, Defect.MOTION_BLUR):
        for issue in run_gate(phantom(defects=[defect])).quality.issues:
            assert issue.text.endswith(".")
            assert any(word in issue.text for word in ("check", "repeat", "consider"))


def test_quality_serialises_for_the_result_schema(phantom, run_gate):
    data = run_gate(phantom(defects=[Defect.MOTION_BLUR])).quality.to_dict()
    assert set(data) == {"score", "acceptable", "issues"}
    assert data["issues"] and all(set(i) >= {"code", "severity", "text"} for i in data["issues"])


def test_without_pixel_spacing_blur_is_refused_only_when_the_model_confirms(phantom):
    # a bare PNG has no spacing: the heuristic measures blur at a guessed scale and warns;
    # on this clearly smeared phantom the learned model confirms, and its error replaces
    # the warning
    image = phantom(defects=[Defect.MOTION_BLUR])
    image.pixel_spacing_mm = None
    prepared = preprocess_image(image, PreprocessParams())
    alone = assess_quality(image, prepared, QualityParams(), model=None)
    (warning,) = [i for i in alone.issues if i.code == "motion_blur"]
    assert warning.severity is Severity.WARNING and alone.acceptable
    assert "no pixel spacing" in warning.text
    combined = assess_quality(image, prepared, QualityParams())
    (error,) = [i for i in combined.issues if i.code == "motion_blur"]
    assert error.severity is Severity.ERROR and not combined.acceptable
    assert "learned quality model confirms it" in error.text


def test_unknown_view_touching_the_top_is_a_warning_not_a_refusal(phantom):
    # a CC phantom cut off at the top and bottom by a third of its width: a defect on a CC,
    # the normal look of an MLO (the axilla runs off the top); with no view known, said only
    image = phantom()
    assert image.pixels is not None
    rows = image.pixels.shape[0]
    tissue = np.nonzero(image.pixels.max(axis=1) > image.pixels.min())[0]
    cut = slice(int(tissue[0]), int(tissue[0]) + rows // 10)
    image.pixels = image.pixels[cut.stop :].copy()
    image.rows = image.pixels.shape[0]
    known = gate(image)
    assert "breast_cut_off" in known.codes and not known.quality.acceptable
    image.view = None
    unknown = gate(image)
    (issue,) = [i for i in unknown.quality.issues if i.code == "breast_cut_off"]
    assert issue.severity is Severity.WARNING and "view is not known" in issue.text


def test_a_non_square_grid_is_resampled_per_axis(phantom):
    # the same phantom with its columns at half the row spacing: one factor for both axes
    # left the working copy twice as fine along the rows, which the smear test read as motion
    square = phantom()
    assert square.pixels is not None and square.pixel_spacing_mm is not None
    spacing = square.pixel_spacing_mm[0]
    wide = phantom()
    wide.pixels = cv2.resize(square.pixels, None, fx=2, fy=1, interpolation=cv2.INTER_LINEAR)
    wide.columns, wide.pixel_spacing_mm = wide.pixels.shape[1], (spacing, spacing / 2)
    params = QualityParams()
    expected = working_copy(preprocess_image(square, PreprocessParams()), params)[0].shape
    prepared = preprocess_image(wide, PreprocessParams())
    rows, cols = working_copy(prepared, params)[0].shape
    assert abs(rows - expected[0]) <= 1 and abs(cols - expected[1]) <= 1
    assert measure(prepared, params).smear_along < params.min_smear_along


def _with_scanner_lines(image: Image) -> Image:
    """``image`` as a soft digitised film with its digitiser's scanner lines: blurred (a
    1.5-pixel Gaussian) below the sharpness threshold, film grain, and an offset per row across
    the whole film (docs/quality.md, motion_blur)."""
    assert image.pixels is not None
    rng = np.random.default_rng(0)
    grain = rng.normal(0.0, 0.006, image.pixels.shape)
    pixels = cv2.GaussianBlur(image.pixels, (0, 0), 1.5) + grain
    lines = rng.normal(0.0, 0.008, (pixels.shape[0], 1))
    image.pixels = np.clip(pixels + lines, 0.0, 1.0).astype(np.float32)
    return image


@pytest.mark.parametrize("view", VIEWS)
def test_scanner_lines_on_a_soft_film_are_not_motion_blur(phantom, view):
    # the lines correlate the fine residual along the rows and not across them, as a smear
    # does (framed mini-MIAS mdb225 and mdb295 were refused so); taken out over 16 mm, nothing
    # smeared is left. Heuristics only: the learned model is judged by its own tests
    image = _with_scanner_lines(phantom(seed=3, view=view))
    prepared = preprocess_image(image, PreprocessParams())
    params = QualityParams()
    m = measure(prepared, params)
    # all three conditions that refused the framed films hold
    assert m.sharpness < params.max_blur_sharpness
    assert m.smear_along >= params.min_smear_along
    assert m.smear_along - m.smear_across >= params.min_smear_anisotropy
    assert m.smear_across >= params.min_smear_across
    assert m.smear_along_no_lines < params.min_smear_along
    quality = assess_quality(image, prepared, params, model=None)
    assert "motion_blur" not in {issue.code for issue in quality.issues}
    assert quality.acceptable


@pytest.mark.parametrize("view", VIEWS)
def test_a_film_with_scanner_lines_smeared_by_motion_is_still_refused(phantom, view):
    # the same soft film with lines, smeared 1.5-4 mm by motion: the lines are taken out, the
    # smear stays (a direction the three older conditions catch on so soft a film: some
    # others leave too little anisotropy, with or without the lines)
    image = _with_scanner_lines(phantom(seed=3, view=view))
    assert image.pixels is not None and image.pixel_spacing_mm is not None
    rng = np.random.default_rng(1)
    image.pixels = motion_blur(image.pixels, rng, image.pixel_spacing_mm[0])
    prepared = preprocess_image(image, PreprocessParams())
    params = QualityParams()
    assert measure(prepared, params).smear_along_no_lines >= params.min_smear_along
    quality = assess_quality(image, prepared, params, model=None)
    (issue,) = [i for i in quality.issues if i.code == "motion_blur"]
    assert issue.severity is Severity.ERROR
