"""Overlay pictures: the display image with findings, the nipple and quality issues drawn on.

The picture is the ORIGINAL grid (never mirrored or cropped, so a radiologist sees the image as
stored), downscaled so its long side is at most ``max_side`` to keep files small; boxes are
scaled with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.report.pictures import to_uint8
from mammocad.structures import Finding, Image, ImageQuality

# BGR colours: malignancy drives the colour so the eye goes to what matters.
_HIGH = (40, 40, 235)
_MID = (0, 165, 255)
_LOW = (80, 200, 80)
_TEXT = (255, 255, 255)
_NIPPLE = (255, 200, 0)
_WARNING = (0, 215, 255)
_CANDIDATE = (230, 60, 230)


def _colour(malignancy: float) -> tuple[int, int, int]:
    if malignancy >= 0.5:
        return _HIGH
    return _MID if malignancy >= 0.2 else _LOW


def _label(
    picture: npt.NDArray[np.uint8], text: str, origin: tuple[int, int], scale: float
) -> None:
    thickness = max(1, round(scale * 2))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    y = max(y, height + base)
    cv2.rectangle(picture, (x, y - height - base), (x + width, y + base), (0, 0, 0), cv2.FILLED)
    cv2.putText(
        picture, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, thickness, cv2.LINE_AA
    )


def _dashed_rectangle(
    picture: npt.NDArray[np.uint8],
    corners: tuple[int, int, int, int],
    colour: tuple[int, int, int],
    thickness: int,
) -> None:
    """OpenCV draws no dashed lines: dashes of ``4 · thickness`` pixels along each side."""
    x1, y1, x2, y2 = corners
    dash = 4 * thickness
    for (ax, ay), (bx, by) in pairwise(((x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1))):
        length = max(abs(bx - ax), abs(by - ay), 1)
        for start in range(0, length, 2 * dash):
            t0, t1 = start / length, min(start + dash, length) / length
            p = (round(ax + (bx - ax) * t0), round(ay + (by - ay) * t0))
            q = (round(ax + (bx - ax) * t1), round(ay + (by - ay) * t1))
            cv2.line(picture, p, q, colour, thickness)


def render_overlay(
    image: Image,
    findings: Sequence[Finding],
    *,
    candidates: Sequence[Finding] = (),
    nipple: tuple[float, float] | None = None,
    quality: ImageQuality | None = None,
    footer: str | None = None,
    max_side: int = 2048,
) -> npt.NDArray[np.uint8]:
    """BGR picture of ``image.pixels`` with every finding's box, label and probabilities.

    ``candidates`` (detections not reported that drive a breast's probability,
    :attr:`mammocad.pipeline.StudyAnalysis.leading_candidates`) are drawn dashed in their own
    colour and labelled as such, so they are never mistaken for reported findings.
    """
    if image.pixels is None:
        raise ValueError(f"{image.key}: a rejected image has no pixels to draw on")
    rows, cols = image.pixels.shape
    factor = min(1.0, max_side / max(rows, cols))
    size = (max(1, round(cols * factor)), max(1, round(rows * factor)))
    grey = cv2.resize(to_uint8(image.pixels), size, interpolation=cv2.INTER_AREA)
    picture: npt.NDArray[np.uint8] = np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), np.uint8)
    scale = max(0.5, size[0] / 1400)
    thickness = max(2, round(size[0] / 500))
    for finding in findings:
        x1, y1, x2, y2 = (round(v * factor) for v in finding.box)
        colour = _colour(finding.malignancy_probability)
        cv2.rectangle(picture, (x1, y1), (x2, y2), colour, thickness)
        text = (
            f"{finding.label.value} {finding.score:.2f} | "
            f"malignant {finding.malignancy_probability:.2f}"
        )
        _label(picture, text, (x1, y1 - thickness), scale)
    for candidate in candidates:
        x1, y1, x2, y2 = (round(v * factor) for v in candidate.box)
        _dashed_rectangle(picture, (x1, y1, x2, y2), _CANDIDATE, thickness)
        text = (
            f"candidate, not reported: {candidate.label.value} {candidate.score:.2f} | "
            f"malignant {candidate.malignancy_probability:.2f}"
        )
        _label(picture, text, (x1, y2 + round(30 * scale)), scale)
    if nipple is not None:
        centre = (round(nipple[0] * factor), round(nipple[1] * factor))
        cv2.drawMarker(picture, centre, _NIPPLE, cv2.MARKER_CROSS, 6 * thickness, thickness)
    lines = [issue.text for issue in quality.issues] if quality else []
    for k, line in enumerate(lines):
        _label(picture, line[:110], (10, round((k + 1) * 40 * scale)), scale * 0.9)
    if footer:
        _label(picture, footer, (10, size[1] - round(10 * scale)), scale * 0.8)
    return picture
