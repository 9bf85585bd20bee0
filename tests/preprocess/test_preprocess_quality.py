"""The technical checks preprocessing reports in ``quality``."""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Laterality, Severity, ViewPosition


def _run(ph, pixels):
    image = ph.image(view=ViewPosition.CC, laterality=Laterality.L)
    image.pixels = pixels.astype(np.float32)
    return preprocess_image(image, PreprocessParams())


def test_burned_out_window_is_an_error(phantom):
    # a VOI window far too narrow: most of the breast clips to white
    ph = phantom(label=False, marker=False)
    pixels = np.clip((ph.pixels - 0.05) * 4.0, 0.0, 1.0)
    result = _run(ph, pixels)
    (issue,) = [i for i in result.quality.issues if i.code == "clipped_tissue"]
    assert issue.severity is Severity.ERROR
    assert "VOI window" in issue.text
    assert not result.quality.acceptable
    assert result.quality.score <= 0.5


def test_flat_breast_is_low_contrast(phantom):
    ph = phantom(label=False, marker=False)
    pixels = np.where(ph.breast, 0.45 + 0.1 * (ph.pixels - 0.5), ph.pixels)
    result = _run(ph, pixels)
    codes = {i.code: i.severity for i in result.quality.issues}
    assert codes == {"low_contrast": Severity.WARNING}
    assert result.quality.acceptable


def test_small_breast_in_a_large_image(phantom):
    ph = phantom(label=False, marker=False)
    pixels = np.full((2400, 2400), 0.04, np.float32)
    pixels[800:1600, :640] = cv2.resize(ph.pixels, (640, 800), interpolation=cv2.INTER_AREA)
    result = _run(ph, pixels)
    assert [i.code for i in result.quality.issues] == ["small_tissue_area"]


def test_quality_serialises_for_the_result_schema(phantom):
    result = _run(phantom(), phantom().pixels)
    data = result.quality.to_dict()
    assert set(data) == {"score", "acceptable", "issues"}
    assert 0.0 <= data["score"] <= 1.0
