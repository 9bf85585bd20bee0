"""Review of the quality gate on diagnostic views: a spot-compression or magnification view
(View Modifier, read as view OTHER, as are projections without a value of their own) shows a
detail of the breast by design, so the breast running off its edges is no defect to refuse it
for (nor to tell the technologist to repeat it); a study of such views is read, not rejected
as unfit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammocad.pipeline import Pipeline
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality
from mammocad.structures import Image, Laterality, Severity, Study, StudyStatus, ViewPosition
from mammocad.synthetic import generate_view


def _spot_view(seed: int, view: ViewPosition = ViewPosition.OTHER) -> Image:
    """The anterior part of a left CC phantom under a spot paddle, magnified 1.8 times."""
    made = generate_view(seed=seed, laterality=Laterality.L, view=ViewPosition.CC)
    spacing = made.truth.pixel_spacing_mm
    whole = Image(
        source="cc.dcm",
        laterality=Laterality.L,
        view=ViewPosition.CC,
        rows=made.pixels.shape[0],
        columns=made.pixels.shape[1],
        pixel_spacing_mm=(spacing, spacing),
        pixels=made.pixels,
    )
    tissue = preprocess_image(whole, PreprocessParams()).tissue_mask
    ys, xs = np.nonzero(tissue)
    row, front = int(ys.mean()), int(xs.max())
    detail = np.asarray(made.pixels)[row - 120 : row + 120, front - 200 : front + 40]
    pixels = cv2.resize(detail, None, fx=1.8, fy=1.8, interpolation=cv2.INTER_LINEAR)
    return Image(
        source=f"spot-{seed}.dcm",
        sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{seed}",
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        laterality=Laterality.L,
        view=view,
        rows=pixels.shape[0],
        columns=pixels.shape[1],
        pixel_spacing_mm=(spacing / 1.8, spacing / 1.8),
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
    )


def _quality(image: Image):
    return assess_quality(image, preprocess_image(image, PreprocessParams()), QualityParams())


@pytest.mark.parametrize("seed", [3, 7])
def test_a_spot_view_is_not_refused_as_cut_off(seed: int) -> None:
    quality = _quality(_spot_view(seed))
    cut = [issue for issue in quality.issues if issue.code == "breast_cut_off"]
    assert [issue.severity for issue in cut] == [Severity.WARNING]
    assert "repeat" not in cut[0].text
    assert quality.acceptable


def test_the_same_picture_called_a_cc_view_is_still_refused() -> None:
    quality = _quality(_spot_view(3, view=ViewPosition.CC))
    assert not quality.acceptable
    assert any(
        issue.code == "breast_cut_off" and issue.severity is Severity.ERROR
        for issue in quality.issues
    )


def test_a_study_of_spot_views_is_read(tiny_bundle: Path) -> None:
    pipeline = Pipeline.from_bundle(tiny_bundle, num_threads=1)
    study = Study(
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        images=[_spot_view(3), _spot_view(7)],
    )
    result = pipeline.analyze(study).result
    assert result["status"] == StudyStatus.PARTIAL.value
    assert result["malignancy_probability"] is not None
    assert all(image["status"] == "processed" for image in result["images"])
