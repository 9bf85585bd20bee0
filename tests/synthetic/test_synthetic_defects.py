"""Defects appear when asked for, change the image the way they say, and are recorded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammocad.structures import FindingLabel, Laterality, ViewPosition
from mammocad.synthetic import Defect, LesionRequest, PhantomView, generate_study, generate_view

SEED = 31
MASS = [LesionRequest(label=FindingLabel.MASS, size_mm=12.0, contrast=0.5)]


def _view(*defects: Defect) -> PhantomView:
    return generate_view(seed=SEED, view=ViewPosition.CC, lesions=MASS, defects=defects)


@pytest.fixture(scope="module")
def clean() -> PhantomView:
    return _view()


def _unmarked(view: PhantomView) -> np.ndarray:
    """True away from burned-in text and markers (they are drawn after any defect)."""
    keep = np.ones(view.pixels.shape, dtype=bool)
    for item in view.truth.burned_in:
        x1, y1, x2, y2 = (int(v) for v in item.box)
        keep[max(y1 - 3, 0) : y2 + 4, max(x1 - 3, 0) : x2 + 4] = False
    return keep


def _sharpness(view: PhantomView, region: np.ndarray | None = None) -> float:
    keep = _unmarked(view) if region is None else _unmarked(view) & region
    return float(cv2.Laplacian(view.pixels, cv2.CV_32F)[keep].var())


def test_clean_view_has_anatomy_and_truth(clean: PhantomView) -> None:
    assert clean.truth.defects == ()
    assert clean.truth.nipple is not None
    assert [item.label for item in clean.truth.lesions] == [FindingLabel.MASS]


def test_noise_replaces_the_anatomy(clean: PhantomView) -> None:
    view = _view(Defect.NOISE)
    assert view.truth.defects == (Defect.NOISE,)
    assert view.truth.lesions == () and view.truth.nipple is None
    # no background: almost every pixel is neither black nor part of a smooth breast
    assert (view.pixels < 0.02).mean() < 0.05 < (clean.pixels < 0.02).mean()
    assert _sharpness(view) > 20 * _sharpness(clean)


def test_blank_is_uniform() -> None:
    view = _view(Defect.BLANK)
    assert view.truth.defects == (Defect.BLANK,)
    # a label may still be burned into a blank exposure
    assert float(view.pixels[_unmarked(view)].std()) < 1e-6
    assert view.truth.lesions == ()


def test_burned_out_collapses_tissue_contrast(clean: PhantomView) -> None:
    view = _view(Defect.BURNED_OUT)
    breast = (clean.pixels > 0.1) & _unmarked(clean)
    assert float(view.pixels[breast].std()) < 0.5 * float(clean.pixels[breast].std())
    assert float(view.pixels[breast].mean()) < 0.5 * float(clean.pixels[breast].mean())
    assert view.truth.lesions  # the anatomy is still there, only badly exposed


def test_motion_blur_removes_fine_detail(clean: PhantomView) -> None:
    view = _view(Defect.MOTION_BLUR)
    assert view.truth.defects == (Defect.MOTION_BLUR,)
    breast = clean.pixels > 0.1
    assert _sharpness(view, breast) < 0.5 * _sharpness(clean, breast)


def test_cut_off_breast_runs_off_an_edge_other_than_the_chest_wall() -> None:
    for seed in range(SEED, SEED + 6):
        view = generate_view(seed=seed, view=ViewPosition.CC, defects=[Defect.CUT_OFF])
        mask = view.pixels > 0.06
        for item in view.truth.burned_in:
            x1, y1, x2, y2 = (int(v) for v in item.box)
            mask[y1 : y2 + 1, x1 : x2 + 1] = False
        anterior_col = -1 if view.truth.chest_wall_side.value == "left" else 0
        edges = [mask[0, :].mean(), mask[-1, :].mean(), mask[:, anterior_col].mean()]
        assert view.truth.defects == (Defect.CUT_OFF,)
        assert max(edges) > 0.15, (seed, edges)


def test_defect_rate_one_gives_every_image_a_defect() -> None:
    study = generate_study(seed=SEED, defect_rate=1.0)
    assert all(len(view.truth.defects) == 1 for view in study.views)
    assert generate_study(seed=SEED).views[0].truth.defects == ()


def test_explicit_defects_per_image() -> None:
    study = generate_study(seed=SEED, defects={(Laterality.R, ViewPosition.MLO): [Defect.BLANK]})
    for view in study.views:
        expected = (
            (Defect.BLANK,)
            if (view.laterality, view.view) == (Laterality.R, ViewPosition.MLO)
            else ()
        )
        assert view.truth.defects == expected
