"""Cold review of the quality gate: each test failed on the code before its fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from mammocad.structures import Image, Severity
from mammocad.synthetic import Defect

from .conftest import Gated


def _framed(image: Image, pad: int) -> Image:
    """``image`` inside a rectangular frame of Pixel Padding Value pixels (the collimation of
    a digital detector), with the padding mask :mod:`mammocad.io` would give it."""
    assert image.pixels is not None
    pixels = np.pad(image.pixels, pad).astype(np.float32)
    padding = np.ones(pixels.shape, dtype=bool)
    padding[pad:-pad, pad:-pad] = False
    return replace(
        image,
        pixels=pixels,
        padding_mask=padding,
        rows=pixels.shape[0],
        columns=pixels.shape[1],
    )


def test_a_breast_cut_off_at_a_padded_frame_is_refused(
    phantom: Callable[..., Image], run_gate: Callable[..., Gated]
) -> None:
    # the breast runs off the bottom of the exposed field; the padding rows below it are no
    # anatomy, so the cut-off must be measured at the field's edge, not the frame's
    bare = run_gate(phantom(defects=[Defect.CUT_OFF]))
    assert "breast_cut_off" in bare.codes and not bare.quality.acceptable
    framed = run_gate(_framed(phantom(defects=[Defect.CUT_OFF]), 24))
    errors = {i.code for i in framed.quality.issues if i.severity is Severity.ERROR}
    assert "breast_cut_off" in errors, framed.quality.issues
    assert not framed.quality.acceptable


@pytest.mark.parametrize("seed", [3, 8])
def test_a_good_breast_in_a_padded_frame_is_not_cut_off(
    seed: int, phantom: Callable[..., Image], run_gate: Callable[..., Gated]
) -> None:
    framed = run_gate(_framed(phantom(seed=seed), 24))
    assert "breast_cut_off" not in framed.codes, framed.quality.issues
    assert framed.quality.acceptable


def test_a_blank_field_inside_a_padded_frame_is_blank_not_no_anatomy(
    phantom: Callable[..., Image], run_gate: Callable[..., Gated]
) -> None:
    # nothing exposed inside the collimation: the fix is the exposure, not "is this a
    # mammogram" — the padding frame is no image content and must not widen the spread
    image = phantom()
    assert image.pixels is not None
    rng = np.random.default_rng(0)
    flat = (0.5 + rng.normal(0.0, 0.001, image.pixels.shape)).astype(np.float32)
    gated = run_gate(_framed(replace(image, pixels=flat), 24))
    assert gated.prepared is None
    assert [(i.code, i.severity) for i in gated.quality.issues] == [("blank", Severity.ERROR)]
