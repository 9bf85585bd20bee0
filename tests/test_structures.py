from __future__ import annotations

import numpy as np
import pytest

from mammocad.errors import RejectionCode
from mammocad.structures import (
    ASSUMED_FIELD_MM,
    Image,
    ImageStatus,
    Laterality,
    Study,
    StudyStatus,
    Transform,
    ViewPosition,
)


def _transform(*, flipped: bool) -> Transform:
    return Transform(
        original_size=(3328, 2560),
        flipped=flipped,
        crop_box=(40, 300, 1900, 3100),
        scale_x=832 / 1860 * 0.98,
        scale_y=1024 / 2800,
        input_size=(1024, 832),
    )


@pytest.mark.parametrize("flipped", [False, True])
def test_points_round_trip(flipped: bool) -> None:
    transform = _transform(flipped=flipped)
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [2560, 3328], size=(200, 2))
    back = transform.points_to_original(transform.points_to_input(points))
    np.testing.assert_allclose(back, points, atol=1e-9)


@pytest.mark.parametrize("flipped", [False, True])
def test_boxes_round_trip_keep_order(flipped: bool) -> None:
    transform = _transform(flipped=flipped)
    boxes = np.array([[100.0, 400.0, 300.0, 650.0], [2000.0, 3000.0, 2100.0, 3050.0]])
    mapped = transform.boxes_to_input(boxes)
    assert np.all(mapped[:, 0] < mapped[:, 2])
    assert np.all(mapped[:, 1] < mapped[:, 3])
    np.testing.assert_allclose(transform.boxes_to_original(mapped), boxes, atol=1e-9)


def test_flip_mirrors_about_the_vertical_centre_line() -> None:
    transform = Transform(
        original_size=(10, 20),
        flipped=True,
        crop_box=(0, 0, 20, 10),
        scale_x=1.0,
        scale_y=1.0,
        input_size=(10, 20),
    )
    # the left edge of pixel column 0 becomes the right edge of the mirrored image
    np.testing.assert_allclose(transform.points_to_input([[0.0, 0.0]]), [[20.0, 0.0]])
    # the centre of pixel column 3 lands on the centre of mirrored column 16
    np.testing.assert_allclose(transform.points_to_input([[3.5, 2.5]]), [[16.5, 2.5]])


def test_crop_outside_image_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        Transform(
            original_size=(100, 100),
            flipped=False,
            crop_box=(0, 0, 120, 50),
            scale_x=1.0,
            scale_y=1.0,
            input_size=(100, 100),
        )


def _image(uid: str, side: Laterality, view: ViewPosition) -> Image:
    return Image(source=f"{uid}.dcm", sop_instance_uid=uid, laterality=side, view=view)


def test_study_status_follows_the_standard_views() -> None:
    images = [
        _image(f"1.{i}", side, view)
        for i, (side, view) in enumerate(
            [(s, v) for s in Laterality for v in (ViewPosition.CC, ViewPosition.MLO)]
        )
    ]
    study = Study(study_instance_uid="1.2.3", images=images)
    assert study.status is StudyStatus.COMPLETE
    images[0].reject(RejectionCode.DECODE_FAILED, "Cannot decode.")
    assert images[0].status is ImageStatus.REJECTED
    assert study.status is StudyStatus.PARTIAL
    assert study.missing_standard_views() == [(images[0].laterality, images[0].view)]
    for image in images:
        image.reject(RejectionCode.DECODE_FAILED, "Cannot decode.")
    assert study.status is StudyStatus.REJECTED


def test_image_key_falls_back_to_file_stem() -> None:
    assert Image(source="scans/mdb001.png").key == "mdb001"
    assert Image(source="a.zip!x/1-130.dcm").key == "1-130"
    assert Image(source="x.dcm", sop_instance_uid="1.2").key == "1.2"


def test_a_file_without_spacing_is_taken_to_cover_the_assumed_field() -> None:
    # mini-MIAS: 1024 rows of 0.2 mm film; the assumption comes within 15 %
    film = Image(source="mdb001.png", rows=1024)
    assert film.spacing_or_assumed_mm == (ASSUMED_FIELD_MM / 1024, ASSUMED_FIELD_MM / 1024)
    assert abs(film.spacing_or_assumed_mm[0] / 0.2 - 1) < 0.15
    dicom = Image(source="x.dcm", rows=4096, pixel_spacing_mm=(0.07, 0.065))
    assert dicom.spacing_or_assumed_mm == (0.07, 0.065)
