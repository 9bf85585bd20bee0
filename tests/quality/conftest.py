"""Phantom views from :mod:`mammocad.synthetic` run through preprocessing and the gate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from mammocad.errors import PreprocessError
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality
from mammocad.structures import Image, ImageQuality, Laterality, PreprocessedImage, ViewPosition
from mammocad.synthetic import Defect, generate_view


@dataclass(frozen=True, slots=True, kw_only=True)
class Gated:
    image: Image
    prepared: PreprocessedImage | None  # None: preprocessing rejected the image
    quality: ImageQuality

    @property
    def codes(self) -> set[str]:
        return {issue.code for issue in self.quality.issues}


def phantom_image(
    *,
    seed: int = 3,
    view: ViewPosition = ViewPosition.CC,
    laterality: Laterality = Laterality.L,
    defects: Sequence[Defect] = (),
) -> Image:
    made = generate_view(seed=seed, laterality=laterality, view=view, defects=defects)
    spacing = made.truth.pixel_spacing_mm
    return Image(
        source="phantom.dcm",
        sop_instance_uid="1.2.826.0.1.3680043.8.498.7",
        laterality=laterality,
        view=view,
        rows=made.pixels.shape[0],
        columns=made.pixels.shape[1],
        pixel_spacing_mm=(spacing, spacing),
        pixels=made.pixels,
    )


def gate(image: Image, params: QualityParams | None = None) -> Gated:
    try:
        prepared: PreprocessedImage | None = preprocess_image(image, PreprocessParams())
    except PreprocessError:
        prepared = None
    quality = assess_quality(image, prepared, params or QualityParams())
    return Gated(image=image, prepared=prepared, quality=quality)


@pytest.fixture
def phantom() -> Callable[..., Image]:
    """``phantom(seed=, view=, laterality=, defects=)`` → an :class:`Image` at size small."""
    return phantom_image


@pytest.fixture
def run_gate() -> Callable[..., Gated]:
    """``run_gate(image, params=None)``: preprocess (None when rejected), then the gate."""
    return gate
