"""Overlay pictures: the labels of boxes close together must all stay readable."""

from __future__ import annotations

import itertools

import numpy as np

from mammocad.report.overlay import LabelLayout, render_overlay
from mammocad.structures import Finding, FindingLabel, Image


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_labels_of_clustered_boxes_take_free_spots_inside_the_picture() -> None:
    layout = LabelLayout(width=400, height=300)
    boxes = [(100, 100, 130, 130), (110, 105, 140, 135), (95, 112, 125, 140), (380, 20, 399, 40)]
    for box in boxes:
        layout.place(box, (120, 16), gap=2)
    assert len(layout.placed) == 4
    for a, b in itertools.combinations(layout.placed, 2):
        assert _apart(a, b), (a, b)
    for x1, y1, x2, y2 in layout.placed:
        assert x1 >= 0 and x2 <= 400 and y1 >= 0 and y2 <= 300
    # the first box keeps the spot right above it
    assert layout.placed[0] == (100, 100 - 2 - 16, 220, 100 - 2)


def test_overlay_draws_every_label_of_a_cluster(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each label's black background lands where the layout put it, none on another: with the
    labels at the top of each box, the later ones covered the earlier."""
    from mammocad.report import overlay

    backgrounds: list[tuple[int, int, int, int]] = []
    drawn = overlay._label

    def recording(picture, text, origin, scale):  # type: ignore[no-untyped-def]
        if text.startswith("mass"):
            (width, height), base = overlay.cv2.getTextSize(
                text, overlay.cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 2))
            )
            x, y = origin
            backgrounds.append((x, y - height - base, x + width, y + base))
        drawn(picture, text, origin, scale)

    monkeypatch.setattr(overlay, "_label", recording)
    image = Image(source="cluster.png")
    image.pixels = np.full((600, 800), 0.3, np.float32)
    clustered = [
        (0.8, (300.0, 300.0, 360.0, 360.0)),
        (0.4, (320.0, 310.0, 380.0, 370.0)),
        (0.1, (290.0, 330.0, 350.0, 390.0)),
    ]
    findings = [
        Finding(
            id=f"f{k}",
            sop_instance_uid="1.2.3",
            label=FindingLabel.MASS,
            score=0.5,
            malignancy_probability=p,
            box=box,
        )
        for k, (p, box) in enumerate(clustered)
    ]
    render_overlay(image, findings)
    assert len(backgrounds) == 3
    for a, b in itertools.combinations(backgrounds, 2):
        assert _apart(a, b), (a, b)
