"""Tissue mask: the breast, not labels, markers, film borders, padding or noise."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.errors import PreprocessError, RejectionCode
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Image, Laterality, ViewPosition


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_mask_follows_breast_and_excludes_label_and_marker(phantom, mask_iou, chest_wall_right):
    ph = phantom(chest_wall_right=chest_wall_right, label=True, marker=True)
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=None), PreprocessParams())

    mask = result.tissue_mask
    assert mask.shape == ph.pixels.shape and mask.dtype == np.bool_
    assert mask_iou(mask, ph.breast) > 0.97
    x1, y1, x2, y2 = ph.label_box
    assert not mask[y1:y2, x1:x2].any()
    mx, my = ph.marker_centre
    assert not mask[my - 15 : my + 16, mx - 15 : mx + 16].any()
    # and the model never sees them: everything outside the breast is 0 in both channels
    label_centre = np.array([[(x1 + x2) / 2, (y1 + y2) / 2]])
    u, v = result.transform.points_to_input(label_centre)[0]
    rows, cols = result.transform.content_size
    if 0 <= u < cols and 0 <= v < rows:
        assert not result.input[:, int(v), int(u)].any()


def test_lesion_free_image_is_processed_cleanly(phantom):
    ph = phantom(label=False, marker=False)
    result = preprocess_image(
        ph.image(view=ViewPosition.CC, laterality=Laterality.L), PreprocessParams()
    )
    assert result.quality.acceptable
    assert result.quality.issues == ()
    assert result.quality.score == 1.0
    assert result.messages == []
    assert result.pectoral_mask is None  # CC view


def _image(pixels: np.ndarray) -> Image:
    return Image(source="blank.png", view=ViewPosition.CC, pixels=pixels.astype(np.float32))


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((800, 640)),
        np.full((800, 640), 0.5),
        np.clip(np.random.default_rng(1).normal(0.3, 0.1, (800, 640)), 0, 1),
        np.random.default_rng(2).uniform(0, 1, (800, 640)),
    ],
    ids=["black", "flat_grey", "gaussian_noise", "uniform_noise"],
)
def test_no_breast_raises_no_tissue(pixels):
    with pytest.raises(PreprocessError) as raised:
        preprocess_image(_image(pixels), PreprocessParams())
    assert raised.value.code is RejectionCode.NO_TISSUE
    assert "No breast tissue found" in raised.value.message
    assert "check" in raised.value.message  # says what to do


def test_padding_pixels_are_never_tissue(phantom, mask_iou):
    # Pixel Padding Value regions are often stored white (the image maximum) after inversion
    ph = phantom(label=False, marker=False)
    pixels = ph.pixels.copy()
    padding = np.zeros(pixels.shape, dtype=bool)
    padding[:, -150:] = True
    pixels[padding] = 1.0
    image = ph.image(view=ViewPosition.CC, laterality=Laterality.L, padding_mask=padding)
    image.pixels = pixels
    result = preprocess_image(image, PreprocessParams())
    assert not result.tissue_mask[padding].any()
    assert mask_iou(result.tissue_mask, ph.breast) > 0.97


@pytest.mark.parametrize("chest_wall_right", [False, True])
@pytest.mark.parametrize("stored", [0.0, 1.0])
def test_padding_in_place_of_the_air_is_the_background(phantom, mask_iou, chest_wall_right, stored):
    # background suppression: every air pixel is padding (GE FOR PRESENTATION: Pixel Padding
    # Value 0). The non-padding pixels are all tissue, so their own darkest peak is fat, not air
    ph = phantom(chest_wall_right=chest_wall_right, label=False, marker=False)
    pixels = np.where(ph.breast, ph.pixels, stored).astype(np.float32)
    image = ph.image(view=ViewPosition.CC, laterality=None, padding_mask=~ph.breast)
    image.pixels = pixels
    result = preprocess_image(image, PreprocessParams())
    assert mask_iou(result.tissue_mask, ph.breast) > 0.97
    assert result.chest_wall_on_right == chest_wall_right


def test_non_finite_pixels_are_refused(phantom):
    ph = phantom()
    image = ph.image(view=ViewPosition.CC, laterality=None)
    image.pixels = ph.pixels.copy()
    image.pixels[500, 500] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite pixels"):
        preprocess_image(image, PreprocessParams())
    image.pixels[500, 500] = np.inf
    with pytest.raises(ValueError, match="must be finite"):
        preprocess_image(image, PreprocessParams())


def test_bright_film_border_and_scratch_are_cut_away(phantom, mask_iou):
    ph = phantom(label=False, marker=False)
    pixels = ph.pixels.copy()
    pixels[:20, :] = 0.9  # unexposed film edge along the top, touching the breast's corner
    pixels[-25:, :] = 0.85
    pixels[300:303, 700:950] = 0.9  # a thin scratch in the background
    image = ph.image(view=ViewPosition.CC, laterality=Laterality.L)
    image.pixels = pixels
    result = preprocess_image(image, PreprocessParams())
    assert not result.tissue_mask[:20].any()
    assert not result.tissue_mask[-25:].any()
    assert not result.tissue_mask[300:303, 700:950].any()
    assert mask_iou(result.tissue_mask, ph.breast) > 0.96


def test_breast_on_padded_film_away_from_the_edges(phantom, mask_iou):
    # mini-MIAS style: the film sits in a black square, the chest wall is not the image edge
    ph = phantom(chest_wall_right=True, label=False, marker=False)
    pixels = np.zeros((1400, 1400), np.float32)
    breast = np.zeros((1400, 1400), bool)
    pixels[100:1300, 200:1160] = ph.pixels
    breast[100:1300, 200:1160] = ph.breast
    result = preprocess_image(_image(pixels), PreprocessParams())
    assert result.chest_wall_on_right
    assert mask_iou(result.tissue_mask, breast) > 0.97


def test_misuse_raises_value_error(phantom):
    ph = phantom()
    rejected = ph.image(view=ViewPosition.CC, laterality=None)
    rejected.pixels = None
    with pytest.raises(ValueError, match="no pixels"):
        preprocess_image(rejected, PreprocessParams())
    mismatched = ph.image(
        view=ViewPosition.CC, laterality=None, padding_mask=np.zeros((10, 10), dtype=bool)
    )
    with pytest.raises(ValueError, match="padding_mask"):
        preprocess_image(mismatched, PreprocessParams())
