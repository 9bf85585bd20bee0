"""The model input and its Transform: exact round trips, features where the map says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Laterality, ViewPosition

LESION_RADIUS = 10


def _with_lesion(pixels: np.ndarray, centre: tuple[int, int]) -> np.ndarray:
    marked = pixels.copy()
    cv2.circle(marked, centre, LESION_RADIUS, 1.0, -1)
    return marked


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_point_and_box_round_trip_and_feature_lands_where_mapped(phantom, chest_wall_right):
    ph = phantom(chest_wall_right=chest_wall_right)
    cols = ph.pixels.shape[1]
    # a bright lesion 25% of the way into the breast, below the middle
    x = int(0.25 * cols) if not chest_wall_right else cols - 1 - int(0.25 * cols)
    centre = (x, 700)
    image = ph.image(view=ViewPosition.CC, laterality=None)
    image.pixels = _with_lesion(ph.pixels, centre)

    result = preprocess_image(image, PreprocessParams())
    transform = result.transform

    assert transform.flipped is chest_wall_right
    assert result.chest_wall_on_right is chest_wall_right
    point = np.array([[centre[0] + 0.5, centre[1] + 0.5]])  # centre of the lesion's pixel
    mapped = transform.points_to_input(point)
    np.testing.assert_allclose(transform.points_to_original(mapped), point, atol=1e-9)

    u, v = (int(c) for c in mapped[0])
    lesion_level = result.input[0, v, u]
    ring = result.input[0, v - 30 : v + 31, u - 30 : u + 31]
    assert lesion_level > 0.97  # the lesion (1.0) is where the transform puts it
    assert lesion_level > np.median(ring) + 0.2

    box = np.array([[x - LESION_RADIUS, 690.0, x + LESION_RADIUS + 1, 711.0]])
    box_input = transform.boxes_to_input(box)
    assert box_input[0, 0] < box_input[0, 2] and box_input[0, 1] < box_input[0, 3]
    np.testing.assert_allclose(transform.boxes_to_original(box_input), box, atol=1e-9)


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_input_layout_chest_wall_left_content_top_left_padding_zero(phantom, chest_wall_right):
    ph = phantom(chest_wall_right=chest_wall_right)
    params = PreprocessParams(input_size=(512, 416))
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=Laterality.L), params)

    model_input = result.input
    assert model_input.shape == (2, 512, 416)
    assert model_input.dtype == np.float32
    assert float(model_input.min()) >= 0.0 and float(model_input.max()) <= 1.0
    rows, cols = result.transform.content_size
    assert rows == 512 or cols == 416  # aspect kept: the crop fills one side exactly
    assert not model_input[:, rows:, :].any() and not model_input[:, :, cols:].any()
    # chest wall on the left: the first content columns are breast across the breast's middle
    middle = slice(rows // 3, 2 * rows // 3)
    assert (model_input[0, middle, :3] > 0.2).all()
    assert (model_input[1, middle, :3] > 0.0).all()
    # the far right of the content is background (the crop margin beyond the nipple)
    assert not model_input[:, middle, cols - 2 : cols].any()


def test_breast_box_and_crop_cover_the_breast(phantom):
    ph = phantom(chest_wall_right=True)
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=None), PreprocessParams())
    ys, xs = np.nonzero(ph.breast)
    x1, y1, x2, y2 = result.breast_box
    assert abs(x1 - xs.min()) <= 3 and abs(x2 - (xs.max() + 1)) <= 3
    assert abs(y1 - ys.min()) <= 3 and abs(y2 - (ys.max() + 1)) <= 3
    # the crop box lives in the mirrored grid: map the breast box into it and check it is inside
    inside = result.transform.boxes_to_input(np.array([result.breast_box]))[0]
    rows, cols = result.transform.content_size
    assert inside[0] >= -1e-6 and inside[1] >= -1e-6
    assert inside[2] <= cols + 1e-6 and inside[3] <= rows + 1e-6
