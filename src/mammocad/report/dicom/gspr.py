"""Grayscale Softcopy Presentation State per source image (DICOM PS3.3 A.33.1, highdicom).

The findings of one image as graphic annotations on a layer ``MAMMOCAD``: each box a closed
POLYLINE in PIXEL units (0\\0 is the top-left corner of the top-left pixel, PS3.3 C.10.5.1.2,
i.e. mammocad's ORIGINAL frame) and a text label ``label malignant 0.xx`` anchored at the box's
top-left corner. A viewer shows the marks over the untouched source image, and can hide them.

A presentation state replaces the image's own grayscale pipeline (PS3.4 N.2.1.4), so it carries
the display mammocad applied (:mod:`mammocad.io.display`): the one VOI transformation chosen by
:func:`~mammocad.io.display.choose_voi` (for an image without one, the window of the stretch
over its values that mammocad displayed: no VOI would mean the identity) and a Presentation LUT
Shape INVERSE for a MONOCHROME1 image (PS3.3 C.11.6.1.2), or the viewer shows the mammogram as
a negative under the marks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from highdicom import VOILUT, PresentationLUTTransformation
from highdicom.pr import (
    AnnotationUnitsValues,
    GraphicAnnotation,
    GraphicLayer,
    GraphicObject,
    GraphicTypeValues,
    GrayscaleSoftcopyPresentationState,
    SoftcopyVOILUTTransformation,
    TextObject,
)
from pydicom.dataset import Dataset

from mammocad.io.display import VoiKind, choose_voi, needs_inversion, voi_lut_fractions
from mammocad.io.tags import read_pixel_spacing
from mammocad.report.dicom.headers import completed_copy
from mammocad.report.dicom.sr import MANUFACTURER, box_polyline
from mammocad.report.dicom.uids import OutputUids

#: Series Number of each breast's GSPS series (``None``: an image that names no breast). The
#: states of one breast form a series of their own, and two series of a study with one number
#: show up as one number twice on a workstation: each gets its own (9001 SR, 9002 SC).
GSPS_SERIES_NUMBERS: dict[str | None, int] = {"L": 9003, "R": 9004, None: 9005}
LAYER = GraphicLayer(layer_name="MAMMOCAD", order=1, description="CAD findings")


def _text(finding: Mapping[str, Any]) -> str:
    label = str(finding["label"]).replace("_", " ")
    return f"{label} malignant {float(finding['malignancy_probability']):.2f}"


def _objects(
    findings: Sequence[Mapping[str, Any]], uids: OutputUids
) -> tuple[list[GraphicObject], list[TextObject]]:
    """Box and label of each finding; the tracking UID is the SR's for the same finding."""
    graphics, texts = [], []
    for finding in findings:
        x1, y1, _, _ = (float(v) for v in finding["box"])
        graphics.append(
            GraphicObject(
                graphic_type=GraphicTypeValues.POLYLINE,
                graphic_data=box_polyline(finding["box"]),
                units=AnnotationUnitsValues.PIXEL,
                tracking_id=str(finding["id"]),
                tracking_uid=uids.derive("finding", str(finding["id"])),
            )
        )
        texts.append(
            TextObject(
                text_value=_text(finding),
                units=AnnotationUnitsValues.PIXEL,
                anchor_point=(x1, y1),
                anchor_point_visible=False,
            )
        )
    return graphics, texts


#: the window attributes of a source image (PS3.3 C.11.2)
_WINDOW = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction")


def _stretch(low: float, high: float) -> SoftcopyVOILUTTransformation:
    """The LINEAR window that maps ``low`` to black and ``high`` to white, in between as
    mammocad's display does: PS3.3 C.11.2.1.2.1 puts the window's ends at c - 0.5 ∓ (w - 1) / 2,
    so c = (low + high) / 2 + 0.5 and w = high - low + 1."""
    return SoftcopyVOILUTTransformation(
        window_center=[round((low + high) / 2 + 0.5, 4)],
        window_width=[round(high - low + 1, 4)],
        window_explanation=["MIN-MAX"],
        voi_lut_function="LINEAR",
    )


def _applied_voi(
    source: Dataset, stretch: tuple[float, float] | None = None
) -> list[SoftcopyVOILUTTransformation] | None:
    """The VOI transformation mammocad applied, and nothing else, for the state to carry. The
    copy ``source`` loses its own. An image without VOI, which mammocad shows from its lowest
    to its highest value (``stretch``, `io.display.display_range`), gets that window: a state
    without VOI means the identity (PS3.4 N.2.1.3: the image's own VOI, or a viewer's
    default, "shall not be used"), a dark or washed-out image where the values fill only
    part of Bits Stored. ``None`` (no VOI) only when that range is unknown.

    A Softcopy VOI LUT item holds one VOI LUT or one window pair per image (PS3.3 C.11.8),
    while a source may carry several alternatives (GE: NORMAL, HARDER, SOFTER) or a VOI LUT
    Sequence beside its windows (C.8.11.3.1.5), which highdicom refuses to copy. A window that
    is not numbers, or that the display skipped as invalid, is dropped: the image was displayed
    without it. A VOI LUT is written as mammocad read it (:func:`voi_lut_fractions`: 8-bit
    entries one or two per word, LUT Data as OW or US, a descriptor under-stating its bits)
    on the 16 bits a Softcopy VOI LUT allows (C.11.8: 8 or 16), so the value a viewer shows
    is the one mammocad displayed.
    """
    choice = choose_voi(source)
    transformation = None
    if choice.kind is VoiKind.VOI_LUT:
        first, fractions = voi_lut_fractions(source, choice.index)
        lut = VOILUT(
            first_mapped_value=first,
            lut_data=np.rint(fractions * 0xFFFF).astype(np.uint16),
            lut_explanation=choice.explanation[:64] if choice.explanation else None,
        )
        transformation = SoftcopyVOILUTTransformation(voi_luts=[lut])
    elif choice.kind is VoiKind.WINDOW and choice.center is not None:
        # one-element lists: highdicom turns a lone explanation string into its characters
        explanation = [choice.explanation[:64]] if choice.explanation else None
        transformation = SoftcopyVOILUTTransformation(
            window_center=[choice.center],
            window_width=[choice.width or 1.0],
            window_explanation=explanation,
            voi_lut_function=choice.function,
        )
    elif choice.kind is VoiKind.NONE and stretch is not None:
        transformation = _stretch(*stretch)
    for keyword in ("VOILUTSequence", *_WINDOW):
        source.pop(keyword, None)
    return [transformation] if transformation is not None else None


def _pixel_aspect_ratio(source: Dataset) -> list[int] | None:
    """The source's pixel aspect ratio, vertical to horizontal (Pixel Aspect Ratio, else the
    row and column spacing mammocad reads, :func:`~mammocad.io.tags.read_pixel_spacing`:
    Imager Pixel Spacing first, as GE writes a Pixel Spacing of 74.7\\46.6 beside a square
    Imager Pixel Spacing), as the two integers of Presentation Pixel Aspect Ratio; ``None``
    for square pixels or none known."""
    try:
        ratio = [int(v) for v in source.get("PixelAspectRatio") or []]
    except (TypeError, ValueError):
        ratio = []
    if len(ratio) == 2 and min(ratio) > 0:
        fraction = Fraction(ratio[0], ratio[1])
    else:
        spacing = read_pixel_spacing(source)
        if spacing is None:
            return None
        fraction = Fraction(spacing[0] / spacing[1]).limit_denominator(1000)
    return None if fraction == 1 else [fraction.numerator, fraction.denominator]


def _presentation_lut(source: Dataset) -> PresentationLUTTransformation:
    """INVERSE for an image displayed inverted (MONOCHROME1, or its own shape INVERSE)."""
    return PresentationLUTTransformation(
        presentation_lut_shape="INVERSE" if needs_inversion(source) else "IDENTITY"
    )


def build_gsps(
    header: Dataset,
    findings: Sequence[Mapping[str, Any]],
    *,
    laterality: str | None,
    uids: OutputUids,
    instance_number: int,
    model_name: str,
    model_version: str,
    stretch: tuple[float, float] | None = None,
) -> GrayscaleSoftcopyPresentationState:
    """The GSPS of one source image with ``findings`` (result-schema finding objects).
    ``stretch`` is the `io.display.display_range` of an image without VOI of its own.

    The series' Laterality is ``laterality``, the image's breast in the result (``L``/``R``,
    as the SR and SC name it: its Image Laterality, else its Laterality, else the side read from
    the image); each breast's states form a series of their own, with a number of its own
    (:data:`GSPS_SERIES_NUMBERS`).
    """
    source = completed_copy(header)
    voi = _applied_voi(source, stretch)
    side = laterality if laterality in ("L", "R") else None
    annotations = []
    if findings:
        graphics, texts = _objects(findings, uids)
        annotations.append(
            GraphicAnnotation(
                referenced_images=[source],
                graphic_layer=LAYER,
                graphic_objects=graphics,
                text_objects=texts,
            )
        )
    state = GrayscaleSoftcopyPresentationState(
        referenced_images=[source],
        # one series per breast: Laterality (0020,0060) is a Series attribute, and a GSPS has
        # no image-level laterality to carry it instead (PS3.3 C.7.3.1, A.33.1)
        series_instance_uid=uids.series("gsps", *([side] if side else [])),
        series_number=GSPS_SERIES_NUMBERS[side],
        sop_instance_uid=uids.instance("gsps", str(header.SOPInstanceUID)),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model_name[:64],
        software_versions=model_version[:64],
        device_serial_number="",
        content_label="MAMMOCAD_CAD",
        content_description=f"{model_name} {model_version} findings"[:64],
        graphic_annotations=annotations or None,
        graphic_layers=[LAYER],
        series_description=f"CAD marks {model_name} {model_version}"[:64],
        voi_lut_transformations=voi,
        presentation_lut_transformation=_presentation_lut(source),
    )
    if side in ("L", "R"):  # General Series, Type 2C for a paired organ; highdicom leaves it out
        state.Laterality = side
    # highdicom writes square pixels (1\\1), and a state's Displayed Area replaces the image's
    # own aspect (PS3.3 C.10.4): an image of non-square pixels would be shown distorted
    ratio = _pixel_aspect_ratio(header)
    if ratio is not None:
        for area in state.DisplayedAreaSelectionSequence:
            area.PresentationPixelAspectRatio = ratio
    return state
