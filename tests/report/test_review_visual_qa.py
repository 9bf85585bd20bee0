"""Overlay pictures as a reader sees them: every quality sentence whole and inside the picture,
no label lying across another box or the nipple marker. The geometry is that of real overlays
(mini-MIAS films, CBIS-DDSM P_00173) rebuilt on flat images."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.report import overlay
from mammocad.report.overlay import render_overlay
from mammocad.structures import Finding, FindingLabel, Image, ImageQuality, Message, Severity

Rect = tuple[int, int, int, int]

#: the two sentences on every overlay of a mini-MIAS film (PNG: no view, no laterality)
MIAS_ISSUES = (
    "The view is unknown, not one of CC, MLO that the model was made for; check the View "
    "Position tag, results on other views are less reliable.",
    "The file gives no laterality; L was inferred from the chest wall on the image's left "
    "(standard storage), so check it before reporting.",
)


def _record_labels(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Rect]]:
    """Every label drawn: its text and black background in picture pixels."""
    drawn: list[tuple[str, Rect]] = []
    label = overlay._label

    def recording(picture, text, origin, scale):  # type: ignore[no-untyped-def]
        width, height, base = overlay._text_box(text, scale)
        x, y = origin
        y = max(y, height + base)
        drawn.append((text, (x, y - height - base, x + width, y + base)))
        label(picture, text, origin, scale)

    monkeypatch.setattr(overlay, "_label", recording)
    return drawn


def _finding(
    key: str, box: tuple[float, float, float, float], score: float, malignancy: float
) -> Finding:
    return Finding(
        id=key,
        sop_instance_uid="1.2.3",
        label=FindingLabel.MASS,
        score=score,
        malignancy_probability=malignancy,
        box=box,
    )


def _image(rows: int, cols: int) -> Image:
    image = Image(source="flat.png")
    image.pixels = np.full((rows, cols), 0.3, np.float32)
    return image


def _overlaps(a: Rect, b: Rect) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def test_quality_sentences_are_drawn_whole_inside_a_film_sized_picture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a 1024-pixel mini-MIAS film each sentence was cut at 110 characters ("…so c") and
    still ran past the right edge ("…results on o"): what to do was lost."""
    drawn = _record_labels(monkeypatch)
    issues = tuple(Message(code=f"c{k}", severity=Severity.WARNING, text=t) for k, t in
                   enumerate(MIAS_ISSUES))  # fmt: skip
    picture = render_overlay(
        _image(1024, 1024), [], quality=ImageQuality(score=0.6, acceptable=True, issues=issues)
    )
    lines = drawn  # no findings, no footer: every label is a line of the quality issues
    assert " ".join(text for text, _ in lines) == " ".join(MIAS_ISSUES)
    for text, (left, _, right, _) in lines:
        assert left >= 0 and right <= picture.shape[1], (text, right)
    tops = [rect[1] for _, rect in lines]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)  # one under the other


@pytest.mark.parametrize(
    ("rows", "cols", "findings", "candidates", "nipple"),
    [
        # CBIS-DDSM P_00173 LEFT_MLO (1-131.dcm): the candidate's label sat on the top edge of
        # the reported box below it, reading as that finding's "malignant 0.90"
        (
            4464, 2848,
            [((862.0, 2223.0, 1262.0, 2609.0), 0.50, 0.03)],
            [((455.6, 1661.5, 1096.2, 2281.1), 0.32, 0.90)],
            (1424.1, 3000.4),
        ),
        # CBIS-DDSM P_00173 LEFT_CC (1-130.dcm): a label covered the nipple marker
        (
            4432, 2864,
            [((994.0, 2266.0, 1294.0, 2547.0), 0.46, 0.03),
             ((988.0, 1841.0, 1273.0, 2045.0), 0.40, 0.28)],
            [],
            (1327.5, 2263.5),
        ),
        # mini-MIAS mdb178: the reported finding's label lay across the candidate's box
        (
            1024, 1024,
            [((306.0, 451.0, 348.0, 495.0), 0.40, 0.02)],
            [((428.5, 373.5, 568.2, 504.9), 0.30, 1.00)],
            (659.0, 501.0),
        ),
    ],
)  # fmt: skip
def test_no_label_lies_across_another_box_or_the_nipple(
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    cols: int,
    findings: list[tuple[tuple[float, float, float, float], float, float]],
    candidates: list[tuple[tuple[float, float, float, float], float, float]],
    nipple: tuple[float, float],
) -> None:
    drawn = _record_labels(monkeypatch)
    reported = [_finding(f"f{k}", *args) for k, args in enumerate(findings)]
    unreported = [_finding(f"c{k}", *args) for k, args in enumerate(candidates)]
    picture = render_overlay(_image(rows, cols), reported, candidates=unreported, nipple=nipple)
    factor = picture.shape[0] / rows
    boxes = {
        f"{f.label.value} {f.score:.2f} | malignant {f.malignancy_probability:.2f}": tuple(
            round(v * factor) for v in f.box
        )
        for f in (*reported, *unreported)
    }
    half = 3 * max(2, round(picture.shape[1] / 500))
    centre = (round(nipple[0] * factor), round(nipple[1] * factor))
    marker = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    labels = [(text, rect) for text, rect in drawn if "malignant" in text]
    assert len(labels) == len(boxes)
    for text, rect in labels:
        own = next(key for key in boxes if text.endswith(key))
        for key, box in boxes.items():
            assert key == own or not _overlaps(rect, box), (text, "covers", key)
        assert not _overlaps(rect, marker), (text, "covers the nipple")
        # and it stays beside its own box (not stacked away, over some other tissue)
        x1, y1, x2, y2 = boxes[own]
        gap = max(2, round(picture.shape[1] / 500))
        assert rect[0] < x2 and x1 < rect[2], (text, "not over or under its box")
        assert rect[3] in range(y1 - gap, y2) or rect[1] in range(y1, y2 + gap + 1), text


def test_a_finding_at_the_top_is_not_hidden_under_the_quality_issues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A box in the axilla of a film with warnings: the warnings were drawn last, their black
    backgrounds over the box; now the box is drawn over them and its label placed clear of
    them (mdb028: three whole sentences take seven lines, down to row 205 of 1024)."""
    drawn = _record_labels(monkeypatch)
    issues = tuple(Message(code=f"c{k}", severity=Severity.WARNING, text=t) for k, t in
                   enumerate(MIAS_ISSUES))  # fmt: skip
    box = (500.0, 30.0, 560.0, 70.0)
    picture = render_overlay(
        _image(1024, 1024),
        [_finding("f0", box, 0.44, 0.04)],
        quality=ImageQuality(score=0.6, acceptable=True, issues=issues),
    )
    green = np.array(overlay._LOW, np.uint8)
    left_edge = picture[32:69, 500]
    assert (left_edge == green).all(axis=1).all(), "the box is covered"
    label = next(rect for text, rect in drawn if text.startswith("mass 0.44"))
    for text, rect in drawn:
        assert text.startswith("mass") or not _overlaps(label, rect), ("label under", text)
