"""Chest-wall side from the image, laterality inferred from it, and mismatches reported."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Image, Laterality, Severity, TagSource, ViewPosition


@pytest.mark.parametrize("view", [ViewPosition.CC, ViewPosition.MLO])
@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_chest_wall_side_is_found_on_both_sides(phantom, view, chest_wall_right):
    ph = phantom(chest_wall_right=chest_wall_right, pectoral=view is ViewPosition.MLO)
    result = preprocess_image(ph.image(view=view, laterality=None), PreprocessParams())
    assert result.chest_wall_on_right is chest_wall_right
    assert result.flipped is chest_wall_right


@pytest.mark.parametrize(("chest_wall_right", "expected"), [(True, "R"), (False, "L")])
def test_missing_laterality_is_inferred_with_a_warning(phantom, chest_wall_right, expected):
    ph = phantom(chest_wall_right=chest_wall_right)
    image = ph.image(view=ViewPosition.CC, laterality=None)
    result = preprocess_image(image, PreprocessParams())

    assert image.laterality is Laterality(expected)
    assert image.laterality_source is TagSource.IMAGE
    assert result.image is image
    (message,) = result.messages
    assert message.code == "laterality_from_image"
    assert message.severity is Severity.WARNING
    assert message.sop_instance_uid == image.sop_instance_uid
    assert expected in message.text


def test_laterality_tag_that_contradicts_the_image_is_kept_and_flagged(phantom):
    ph = phantom(chest_wall_right=False)  # stored like a left breast
    image = ph.image(view=ViewPosition.CC, laterality=Laterality.R)
    result = preprocess_image(image, PreprocessParams())
    assert image.laterality is Laterality.R  # the tag is not overwritten
    assert not result.chest_wall_on_right  # the image decides the orientation
    assert [m.code for m in result.messages] == ["laterality_mismatch"]


def test_slanted_chest_wall_cut_on_padded_film(phantom):
    # mini-MIAS stores films padded with black; some chest-wall cuts are slanted, so the breast
    # touches its bounding box on the chest-wall side only over part of its height
    ph = phantom(chest_wall_right=True, label=False, marker=False)
    rows, cols = ph.pixels.shape
    pixels = ph.pixels.copy()
    breast = ph.breast.copy()
    yy, xx = np.mgrid[0:rows, 0:cols]
    cut = xx > cols - 1 - (0.25 * cols) * (1 - yy / rows)  # diagonal cut near the chest wall
    pixels[cut] = 0.0
    breast[cut] = False
    image = ph.image(view=ViewPosition.MLO, laterality=None)
    image.pixels = pixels
    result = preprocess_image(image, PreprocessParams())
    assert result.chest_wall_on_right


def test_breast_running_into_one_border_hangs_from_it() -> None:
    # regression: a phantom left CC whose skin line is brighter than the fat behind the chest
    # wall fooled the brightness cue; the breast runs into the left border over 400 rows
    from mammocad.synthetic import generate_view

    view = generate_view(seed=16, laterality=Laterality.L, view=ViewPosition.CC, size="small")
    image = Image(
        source="phantom-16.dcm",
        laterality=Laterality.L,
        view=ViewPosition.CC,
        rows=view.pixels.shape[0],
        columns=view.pixels.shape[1],
        pixels=view.pixels,
    )
    result = preprocess_image(image, PreprocessParams())
    assert not result.chest_wall_on_right
    assert not result.flipped


def _film_with_dim_region(phantom, where: str) -> np.ndarray:
    """A chest-wall-left phantom on a film with a black margin before its chest-wall cut (as
    mini-MIAS stores films), with a grainy dim grey region joined to the breast: ``nipple``
    runs from the nipple-side outline to the right image border over the middle rows (film
    base), ``chest-wall`` lines the cut over the top 60 % of the rows (a painted-over label)."""
    ph = phantom(chest_wall_right=False, label=False, marker=False)
    rows, cols = ph.pixels.shape
    margin = cols // 8
    pixels = np.zeros((rows, cols + margin), np.float32)
    pixels[:, margin:] = ph.pixels
    breast = np.zeros(pixels.shape, dtype=bool)
    breast[:, margin:] = ph.breast
    grain = np.random.default_rng(1).normal(0.0, 1.0, pixels.shape).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 3)
    dim = 0.16 + 0.02 * grain / grain.std()  # about 30 % of the way to the tissue median
    top, bottom = np.flatnonzero(breast.any(axis=1))[[0, -1]]
    height = bottom - top
    region = np.zeros_like(breast)
    if where == "nipple":
        region[top + height // 5 : bottom - height // 5, margin + 10 :] = True
    else:
        region[top : top + 3 * height // 5, margin // 3 : margin] = True
    region &= ~breast
    pixels[region] = dim[region]
    return pixels


@pytest.mark.parametrize("where", ["nipple", "chest-wall"])
def test_dim_region_joined_to_the_breast_does_not_move_the_chest_wall(phantom, where):
    # regression: a dim strip running off the image on the nipple side made the breast look
    # attached to that border; a dim band lining the chest-wall cut over most rows made the
    # median brightness just inside that side read dim (mini-MIAS at lower display gamma)
    pixels = _film_with_dim_region(phantom, where)
    image = Image(source="film.png", view=ViewPosition.MLO, pixels=pixels)
    result = preprocess_image(image, PreprocessParams())
    assert not result.chest_wall_on_right
