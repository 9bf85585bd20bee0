"""A breast with an implant, as the header says (Breast Implant Present YES, PS3.3 C.8.11.7):
the implant is white and flat by nature and must not be read as an under-exposed breast; a
washed-out breast is still refused, header or not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from mammocad.io import read_dicom
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality
from mammocad.quality.degrade import underexposed
from mammocad.structures import Image, ImageQuality, Laterality, Severity, ViewPosition
from mammocad.synthetic import generate_view, write_studies


def _view(seed: int) -> Image:
    made = generate_view(seed=seed, laterality=Laterality.L, view=ViewPosition.CC)
    spacing = made.truth.pixel_spacing_mm
    return Image(
        source=f"cc-{seed}.dcm",
        laterality=Laterality.L,
        view=ViewPosition.CC,
        rows=made.pixels.shape[0],
        columns=made.pixels.shape[1],
        pixel_spacing_mm=(spacing, spacing),
        pixels=np.asarray(made.pixels, dtype=np.float32),
    )


def _with_implant(image: Image) -> Image:
    """A radiopaque implant behind the tissue: a white, flat ellipse over about a third of
    the breast, as a silicone implant shows on a non-displaced view."""
    assert image.pixels is not None
    tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    ys, xs = np.nonzero(tissue)
    centre = (int(np.percentile(xs, 30)), int(ys.mean()))
    axes = (int(np.ptp(xs) * 0.3), int(np.ptp(ys) * 0.3))
    shape = np.zeros(tissue.shape, np.uint8)
    cv2.ellipse(shape, centre, axes, 0, 0, 360, 1, -1)
    pixels = np.where((shape > 0) & tissue, 1.0, image.pixels).astype(np.float32)
    return replace(image, pixels=pixels)


def _quality(image: Image) -> ImageQuality:
    return assess_quality(image, preprocess_image(image, PreprocessParams()), QualityParams())


def _codes(quality: ImageQuality, severity: Severity) -> set[str]:
    return {issue.code for issue in quality.issues if issue.severity is severity}


@pytest.mark.parametrize("seed", [3, 11])
def test_an_implant_the_header_declares_is_not_under_exposure(seed: int) -> None:
    image = _with_implant(_view(seed))
    unsaid = _quality(image)
    # without the header a flat white third of the breast cannot be told from a wash-out
    assert "underexposed" in _codes(unsaid, Severity.ERROR)
    said = _quality(replace(image, implant_present=True))
    assert said.acceptable, said.issues
    assert "underexposed" not in _codes(said, Severity.ERROR) | _codes(said, Severity.WARNING)
    assert "implant" in _codes(said, Severity.INFO)


def test_a_washed_out_breast_with_an_implant_is_still_refused() -> None:
    image = _with_implant(_view(3))
    assert image.pixels is not None
    tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    washed = underexposed(image.pixels, tissue, np.random.default_rng(0), 0.1)
    quality = _quality(replace(image, pixels=washed, implant_present=True))
    assert not quality.acceptable
    assert _codes(quality, Severity.ERROR) & {"underexposed", "blank"}


@pytest.mark.parametrize(("value", "expected"), [("YES", True), ("NO", False), (None, None)])
def test_the_implant_header_is_read(
    tmp_path: Path, value: str | None, expected: bool | None
) -> None:
    folder = write_studies(n_studies=1, out_dir=tmp_path, seed=5)[0]
    path = sorted(folder.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    if value is None:
        del ds.BreastImplantPresent
    else:
        ds.BreastImplantPresent = value
    ds.save_as(path)
    assert read_dicom(path).implant_present is expected
