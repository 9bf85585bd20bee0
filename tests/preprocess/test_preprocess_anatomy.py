"""Pectoral muscle on lateral views and the nipple estimate."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Laterality, Severity, ViewPosition


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_pectoral_muscle_on_mlo(phantom, mask_iou, chest_wall_right):
    ph = phantom(chest_wall_right=chest_wall_right, pectoral=True)
    result = preprocess_image(ph.image(view=ViewPosition.MLO, laterality=None), PreprocessParams())
    assert result.pectoral_mask is not None
    assert result.pectoral_mask.shape == ph.pixels.shape
    assert mask_iou(result.pectoral_mask, ph.pectoral) > 0.85
    assert not (result.pectoral_mask & ~result.tissue_mask).any()
    assert "pectoral_not_found" not in [m.code for m in result.messages]


def test_cc_has_no_pectoral_mask(phantom):
    ph = phantom(pectoral=True)  # even with a bright corner, a CC view is not searched
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=None), PreprocessParams())
    assert result.pectoral_mask is None


def test_mlo_without_visible_muscle_gives_empty_mask_and_a_note(phantom):
    ph = phantom(pectoral=False)
    image = ph.image(view=ViewPosition.MLO, laterality=Laterality.L)
    result = preprocess_image(image, PreprocessParams())
    assert result.pectoral_mask is not None and not result.pectoral_mask.any()
    (note,) = [m for m in result.messages if m.code == "pectoral_not_found"]
    assert note.severity is Severity.INFO


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_nipple_on_cc_is_the_breast_apex(phantom, chest_wall_right):
    ph = phantom(chest_wall_right=chest_wall_right)
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=None), PreprocessParams())
    assert result.nipple is not None
    distance = np.hypot(result.nipple[0] - ph.apex[0], result.nipple[1] - ph.apex[1])
    assert distance < 0.02 * max(ph.pixels.shape)


def test_nipple_on_mlo_lies_on_the_front_of_the_outline(phantom):
    ph = phantom(pectoral=True)
    result = preprocess_image(ph.image(view=ViewPosition.MLO, laterality=None), PreprocessParams())
    assert result.nipple is not None
    x, y = result.nipple
    # on the skin line (within a couple of pixels of the breast edge) ...
    window = ph.breast[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4]
    assert window.any() and not window.all()
    # ... and in the front fifth of the breast depth
    assert x > 0.8 * ph.apex[0]


def test_cut_off_breast_has_no_nipple_and_is_flagged(phantom):
    ph = phantom(depth=1.3)  # the breast runs off the far edge
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=None), PreprocessParams())
    assert result.nipple is None
    codes = [issue.code for issue in result.quality.issues]
    assert codes == ["breast_cut_off"]
    assert result.quality.acceptable  # a warning, the learned quality gate decides
    assert result.quality.score < 1.0
