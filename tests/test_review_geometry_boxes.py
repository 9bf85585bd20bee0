"""Review of box mapping: detector boxes (model-input pixels) → reported boxes (original pixels).

The detector clips its boxes to the padded model input, not to the breast content; where the
crop reaches an image edge (an MLO breast running off the bottom, a breast filling the film),
a box that spilled into the zero padding mapped back beyond the image's Rows/Columns (y2 608
on a 600-row image); boxes are now cut to the crop before they are mapped back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mammocad.detect.containers import Detections
from mammocad.detect.predict import Detector
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Image, ViewPosition


def _breast_to_the_bottom(rows: int, cols: int, *, chest_wall_right: bool) -> Image:
    """A half-ellipse breast that runs off the bottom edge, as on many MLO views."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    radius = np.hypot(xx / (0.6 * cols), (yy - 0.75 * rows) / (0.6 * rows))
    pixels = np.where(radius < 1.0, 0.3 + 0.4 * np.sqrt(np.clip(1 - radius**2, 0, 1)), 0.02)
    pixels = np.ascontiguousarray(pixels[:, ::-1] if chest_wall_right else pixels, np.float32)
    return Image(
        source="bottom.png",
        sop_instance_uid="1.2.826.0.1.3680043.8.498.77",
        view=ViewPosition.MLO,
        rows=rows,
        columns=cols,
        pixels=pixels,
    )


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_reported_boxes_stay_inside_the_original_image(
    tiny_bundle: Path, chest_wall_right: bool
) -> None:
    detector = Detector.from_bundle(tiny_bundle, num_threads=1)
    params = PreprocessParams.from_dict(detector.preprocessing)
    image = _breast_to_the_bottom(600, 480, chest_wall_right=chest_wall_right)
    prepared = preprocess_image(image, params)
    rows = prepared.transform.content_size[0]
    assert prepared.transform.crop_box[3] == image.rows  # the crop reaches the bottom edge
    # a lesion at the bottom of the breast whose box spills 4 input pixels into the padding
    found = Detections(
        boxes=torch.tensor([[10.0, rows - 20.0, 40.0, rows + 4.0]]),
        labels=torch.zeros(1, dtype=torch.int64),
        scores=torch.tensor([0.9]),
        malignancy=torch.tensor([0.5]),
        nipple_box=torch.zeros((0, 4)),
        nipple_score=torch.zeros(0),
    )
    (finding,) = detector._to_prediction(prepared, found).findings
    x1, y1, x2, y2 = finding.box
    assert 0 <= x1 < x2 <= image.columns
    assert 0 <= y1 < y2 <= image.rows
