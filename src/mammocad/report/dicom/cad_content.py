"""Content items of the Mammography CAD SR, one builder per PS3.16 sub-template of TID 4000.

Each builder returns highdicom content items with the relationship the including row gives
them. References to images are written BY VALUE here (an IMAGE item under the SCOORD or the
"Detection Performed" item); :mod:`.cad_sr` turns each into the BY-REFERENCE relationship to
the Image Library entry that TID 4017 and TID 4021 require, which highdicom cannot build.

Coordinates are in the ORIGINAL stored pixel grid of the source image, the frame of DICOM 2D
SCOORDs (PS3.3 C.18.6.1.1: 0.0\\0.0 is the top-left corner of the top-left pixel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    ContentItem,
    ContentSequence,
    DateContentItem,
    GraphicTypeValues,
    ImageContentItem,
    NumContentItem,
    RelationshipTypeValues,
    ScoordContentItem,
    TextContentItem,
    TimeContentItem,
)
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, TM

from mammocad.report.dicom import cad_codes as cc
from mammocad.structures import Laterality, ViewPosition

CONTAINS = RelationshipTypeValues.CONTAINS
HAS_ACQ_CONTEXT = RelationshipTypeValues.HAS_ACQ_CONTEXT
HAS_CONCEPT_MOD = RelationshipTypeValues.HAS_CONCEPT_MOD
HAS_PROPERTIES = RelationshipTypeValues.HAS_PROPERTIES
INFERRED_FROM = RelationshipTypeValues.INFERRED_FROM
SELECTED_FROM = RelationshipTypeValues.SELECTED_FROM
_SOURCE = CodedConcept("260753009", "SCT", "Source")


def float32_exact(values: Sequence[float]) -> list[float]:
    """``values`` as the float32 numbers Graphic Data (FL) stores, so a read-back is equal."""
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def percent(probability: float) -> float:
    """A probability in [0, 1] as the 0-100 "%" value the CAD templates ask for."""
    return round(100.0 * float(probability), 6)


def algorithm_identification(
    name: str, version: str, parameters: Sequence[str] = ()
) -> list[ContentItem]:
    """TID 4019 "Algorithm Identification": rows 1-3 (name, version, parameters), included by
    TID 4006, TID 4017 and TID 4018 with HAS PROPERTIES."""
    items: list[ContentItem] = [
        TextContentItem(
            name=cc.ALGORITHM_NAME, value=name[:1024], relationship_type=HAS_PROPERTIES
        ),
        TextContentItem(
            name=cc.ALGORITHM_VERSION, value=version[:1024], relationship_type=HAS_PROPERTIES
        ),
    ]
    items.extend(
        TextContentItem(name=cc.ALGORITHM_PARAMETERS, value=p, relationship_type=HAS_PROPERTIES)
        for p in parameters
    )
    return items


def image_reference(header: Dataset, relationship: RelationshipTypeValues) -> ImageContentItem:
    """An IMAGE item for ``header``'s instance (by value; :mod:`.cad_sr` may make it a
    by-reference relationship to the Image Library entry)."""
    return ImageContentItem(
        # highdicom requires a name; cad_sr drops it from Image Library entries (TID 4020 row 1
        # has none) and replaces the other IMAGE items by references to those entries
        name=_SOURCE,
        referenced_sop_class_uid=str(header.SOPClassUID),
        referenced_sop_instance_uid=str(header.SOPInstanceUID),
        relationship_type=relationship,
    )


def _laterality(image: Mapping[str, Any], header: Dataset) -> CodedConcept | None:
    side = header.get("ImageLaterality") or header.get("Laterality") or image.get("laterality")
    return cc.SIDES.get(Laterality(side)) if side in ("L", "R") else None


def _patient_orientation(header: Dataset) -> list[ContentItem]:
    """TID 4020 Patient Orientation Row / Column (TEXT) from Patient Orientation (0020,0020),
    the direction of the rows and of the columns, e.g. ``P`` and ``L``."""
    orientation = header.get("PatientOrientation")
    values = [str(v) for v in orientation] if isinstance(orientation, MultiValue) else []
    if len(values) != 2 or not all(values):
        return []
    return [
        TextContentItem(name=name, value=value, relationship_type=HAS_ACQ_CONTEXT)
        for name, value in zip(
            (cc.PATIENT_ORIENTATION_ROW, cc.PATIENT_ORIENTATION_COLUMN), values, strict=True
        )
    ]


def _parsed(value: object, kind: type[DA] | type[TM]) -> DA | TM | None:
    """A DA / TM value of a header, ``None`` when absent or not in the DICOM format (real
    files carry "2022.08.28" and the like, which must not cost the report)."""
    if not value:
        return None
    try:
        return kind(str(value))
    except ValueError:
        return None


def _acquisition_dates(header: Dataset) -> list[ContentItem]:
    """TID 4020 Study Date / Time and Content Date / Time (a time only after its date)."""
    items: list[ContentItem] = []
    rows = (
        (cc.STUDY_DATE, "StudyDate", cc.STUDY_TIME, "StudyTime"),
        (cc.CONTENT_DATE, "ContentDate", cc.CONTENT_TIME, "ContentTime"),
    )
    for date_name, date_key, time_name, time_key in rows:
        date, time = _parsed(header.get(date_key), DA), _parsed(header.get(time_key), TM)
        if isinstance(date, DA):
            items.append(DateContentItem(date_name, date, relationship_type=HAS_ACQ_CONTEXT))
            if isinstance(time, TM):
                items.append(TimeContentItem(time_name, time, relationship_type=HAS_ACQ_CONTEXT))
    return items


def _pixel_spacing(image: Mapping[str, Any]) -> list[ContentItem]:
    spacing = image.get("pixel_spacing_mm")
    if not spacing:
        return []
    row_mm, column_mm = (float(v) for v in spacing)
    return [
        NumContentItem(
            name=name, value=value, unit=cc.MILLIMETER, relationship_type=HAS_ACQ_CONTEXT
        )
        for name, value in (
            (cc.HORIZONTAL_PIXEL_SPACING, column_mm),
            (cc.VERTICAL_PIXEL_SPACING, row_mm),
        )
    ]


def library_entry(image: Mapping[str, Any], header: Dataset) -> ImageContentItem:
    """TID 4020 "CAD Image Library Entry" of one source image (TID 4000 row 4).

    In the order of the template's rows: Image Laterality (CID 6022) from the header's Image
    Laterality / Laterality, else the result's; Image View (CID 4014) from the result's view;
    Patient Orientation Row / Column (TEXT), Study and Content Date / Time from the header
    where present; Horizontal / Vertical Pixel Spacing (mm) where the result knows them
    (horizontal = between columns, vertical = between rows). A condition-required row whose
    value the source lacks is left out; the IMAGE item itself has no concept name.
    """
    entry = image_reference(header, CONTAINS)
    context: list[ContentItem] = []
    side = _laterality(image, header)
    if side is not None:
        context.append(
            CodeContentItem(cc.IMAGE_LATERALITY, side, relationship_type=HAS_ACQ_CONTEXT)
        )
    view = cc.VIEWS.get(ViewPosition(image["view"])) if image.get("view") else None
    if view is not None:
        context.append(CodeContentItem(cc.IMAGE_VIEW, view, relationship_type=HAS_ACQ_CONTEXT))
    context.extend(_patient_orientation(header))
    context.extend(_acquisition_dates(header))
    context.extend(_pixel_spacing(image))
    if context:
        entry.ContentSequence = ContentSequence(context)
    return entry


def geometry(box: Sequence[float], header: Dataset) -> list[ContentItem]:
    """TID 4021 "Mammography CAD Geometry": row 1 Center (POINT, the box centre) and row 3
    Outline (closed POLYLINE, the box), each SELECTED FROM the source image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    center = float32_exact([(x1 + x2) / 2.0, (y1 + y2) / 2.0])
    corners = float32_exact([x1, y1, x2, y1, x2, y2, x1, y2, x1, y1])
    items: list[ContentItem] = []
    for name, kind, data in (
        (cc.CENTER, GraphicTypeValues.POINT, np.array(center).reshape(1, 2)),
        (cc.OUTLINE, GraphicTypeValues.POLYLINE, np.array(corners).reshape(5, 2)),
    ):
        item = ScoordContentItem(
            name=name,
            graphic_type=kind,
            graphic_data=data,
            relationship_type=HAS_PROPERTIES,
        )
        item.ContentSequence = ContentSequence([image_reference(header, SELECTED_FROM)])
        items.append(item)
    return items


def rendering_intent(probability: float, threshold: float) -> CodeContentItem:
    """CID 6034 value: "Presentation Required" at or above ``threshold``, else "Not for
    Presentation" (PS3.4 O.2.2.1: a viewer renders only what is marked for presentation)."""
    value = cc.PRESENTATION_REQUIRED if probability >= threshold else cc.NOT_FOR_PRESENTATION
    return CodeContentItem(cc.RENDERING_INTENT, value, relationship_type=HAS_CONCEPT_MOD)


def single_image_finding(
    finding: Mapping[str, Any],
    header: Dataset,
    *,
    algorithm: Sequence[ContentItem],
    threshold: float,
) -> CodeContentItem:
    """TID 4006 "Mammography CAD Single Image Finding" of one finding of result.json.

    Row 1 the finding type (CID 6014, :data:`.cad_codes.SINGLE_IMAGE_FINDING_TYPES`); Rendering
    Intent (CID 6034); Algorithm Identification (TID 4019); Certainty of Finding = the detector
    score and Probability of cancer = the finding's malignancy probability, both in % (0-100);
    the geometry (TID 4021) on the source image.
    """
    probability = float(finding["malignancy_probability"])
    item = CodeContentItem(
        cc.SINGLE_IMAGE_FINDING,
        cc.single_image_finding_type(finding["label"]),
        relationship_type=CONTAINS,
    )
    content: list[ContentItem] = [rendering_intent(probability, threshold), *algorithm]
    for name, value in (
        (cc.CERTAINTY_OF_FINDING, finding["score"]),
        (cc.PROBABILITY_OF_CANCER, probability),
    ):
        content.append(
            NumContentItem(
                name=name, value=percent(value), unit=cc.PERCENT, relationship_type=HAS_PROPERTIES
            )
        )
    content.extend(geometry(finding["box"], header))
    item.ContentSequence = ContentSequence(content)
    return item


def individual_impression(
    finding_item: CodeContentItem, probability: float, threshold: float
) -> ContainerContentItem:
    """TID 4003 "Mammography CAD Individual Impression/Recommendation" holding one finding:
    row 2 Rendering Intent, row 5 the TID 4006 Single Image Finding."""
    container = ContainerContentItem(name=cc.INDIVIDUAL_IMPRESSION, relationship_type=INFERRED_FROM)
    container.ContentSequence = ContentSequence(
        [rendering_intent(probability, threshold), finding_item]
    )
    return container
