"""Overlay pictures: the display image with findings, the nipple and quality issues drawn on.

The picture is the ORIGINAL grid (never mirrored or cropped, so a radiologist sees the image as
stored), downscaled so its long side is at most ``max_side`` to keep files small; boxes are
scaled with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 of a label's background, in picture pixels


def _text_box(text: str, scale: float) -> tuple[int, int, int]:
    """Width, height above the baseline and descent of ``text`` as :func:`_label` draws it
    (its background reaches ``height + descent`` above the origin and ``descent`` below)."""
    thickness = max(1, round(scale * 2))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return width, height, base


@dataclass(slots=True)
class LabelLayout:
    """Finding labels placed one by one so that none covers another: boxes close together
    wrote their labels over each other, leaving only the last one readable."""

    width: int  # of the picture
    height: int
    placed: list[Rect] = field(default_factory=list)

    def place(
        self,
        box: Rect,
        size: tuple[int, int],
        *,
        gap: int,
        below_first: bool = False,
        avoid: Sequence[Rect] = (),
    ) -> tuple[int, int]:
        """The top-left corner of the label background of ``box``, ``size`` its width and
        height: above the box, else below it, else inside its top — starting at the box's left
        edge, else ending at its right edge — else stacked further above or below (past the
        quality issues over a box at the top of the picture): the first spot inside
        the picture free of the labels placed before and of ``avoid`` (the other boxes and the
        nipple marker: a label lying across another finding's box reads as that box's label),
        else the first free of the labels only; shifted left where it would run past the right
        edge (a right breast's chest wall)."""
        width, height = size
        x1, y1, x2, y2 = box
        left = max(0, min(x1, self.width - width))
        right = max(0, min(x2 - width, self.width - width))
        near = [y1 - gap - height, y2 + gap, y1 + gap]
        if below_first:
            near[:2] = near[1::-1]
        stacked = [y1 - gap - (k + 1) * height for k in range(1, 5)]
        stacked += [y2 + gap + k * height for k in range(1, 5)]
        spots = [(x, top) for top in near for x in dict.fromkeys((left, right))]
        spots += [(left, top) for top in stacked]
        spots = [(x, top) for x, top in spots if 0 <= top <= self.height - height]
        spots = spots or [(left, max(0, y1 - height))]
        spot = next((s for s in spots if self._free(*s, size, (*self.placed, *avoid))), None)
        if spot is None:
            spot = next((s for s in spots if self._free(*s, size, self.placed)), spots[0])
        x, top = spot
        self.placed.append((x, top, x + width, top + height))
        return x, top

    @staticmethod
    def _free(x: int, top: int, size: tuple[int, int], taken: Sequence[Rect]) -> bool:
        width, height = size
        return all(
            x + width <= a or b <= x or top + height <= y1 or y2 <= top for a, y1, b, y2 in taken
        )


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


def _wrapped(text: str, width: int, scale: float) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` pixels wide as :func:`_label`
    draws them (a longer word stays whole): cut at a fixed length, quality sentences lost
    what to do and still ran past the right edge of a 1024-pixel film."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and _text_box(joined, scale)[0] <= width:
            lines[-1] = joined
        else:
            lines.append(word)
    return lines


def _notes(
    picture: npt.NDArray[np.uint8], quality: ImageQuality | None, footer: str | None, scale: float
) -> list[Rect]:
    """Draw the quality issues, whole and wrapped to the picture's width, at the top and the
    footer at the bottom; their label backgrounds in picture pixels."""
    rows, cols = picture.shape[:2]
    issues = [issue.text for issue in quality.issues] if quality else []
    lines = [line for text in issues for line in _wrapped(text, cols - 20, scale * 0.9)]
    notes = [(line, (10, round((k + 1) * 40 * scale)), scale * 0.9) for k, line in enumerate(lines)]
    if footer:
        notes.append((footer, (10, rows - round(10 * scale)), scale * 0.8))
    rects: list[Rect] = []
    for text, (x, y), size in notes:
        _label(picture, text, (x, y), size)
        width, height, base = _text_box(text, size)
        y = max(y, height + base)
        rects.append((x, y - height - base, x + width, y + base))
    return rects


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
    # quality issues and footer first: the boxes drawn after them and the labels placed around
    # them, so no finding is hidden under a warning
    notes = _notes(picture, quality, footer, scale)
    boxes = []
    for finding in findings:
        x1, y1, x2, y2 = (round(v * factor) for v in finding.box)
        cv2.rectangle(
            picture, (x1, y1), (x2, y2), _colour(finding.malignancy_probability), thickness
        )
        text = (
            f"{finding.label.value} {finding.score:.2f} | "
            f"malignant {finding.malignancy_probability:.2f}"
        )
        boxes.append((finding.malignancy_probability, (x1, y1, x2, y2), text, False))
    for candidate in candidates:
        x1, y1, x2, y2 = (round(v * factor) for v in candidate.box)
        _dashed_rectangle(picture, (x1, y1, x2, y2), _CANDIDATE, thickness)
        text = (
            f"candidate, not reported: {candidate.label.value} {candidate.score:.2f} | "
            f"malignant {candidate.malignancy_probability:.2f}"
        )
        boxes.append((-1.0, (x1, y1, x2, y2), text, True))
    marks = [box for _, box, _, _ in boxes]
    if nipple is not None:
        centre = (round(nipple[0] * factor), round(nipple[1] * factor))
        cv2.drawMarker(picture, centre, _NIPPLE, cv2.MARKER_CROSS, 6 * thickness, thickness)
        half = 3 * thickness
        marks.append((centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half))
    # labels after every box, so no box is drawn over a label; the most suspicious placed first
    layout = LabelLayout(width=size[0], height=size[1], placed=notes)
    for _, box, text, below in sorted(boxes, key=lambda item: -item[0]):
        width, height, base = _text_box(text, scale)
        others = [mark for mark in marks if mark != box]
        x, top = layout.place(
            box, (width, height + 2 * base), gap=thickness, below_first=below, avoid=others
        )
        _label(picture, text, (x, top + height + base), scale)
    return picture
