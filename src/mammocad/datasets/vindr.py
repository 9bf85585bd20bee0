"""VinDr-Mammo ``finding_annotations.csv`` → lesion boxes per image; it or
``breast-level_annotations.csv`` → breast labels per image.

One row per finding (or one ``['No Finding']`` row per image without one): ``study_id``,
``series_id``, ``image_id`` (the file ``images/<study_id>/<image_id>.dicom``), ``laterality``,
``view_position``, ``height``, ``width``, ``breast_birads``, ``breast_density``,
``finding_categories`` (a Python-list string: ``['Mass']``, ``['Suspicious Calcification',
'Focal Asymmetry']``), ``finding_birads`` and ``xmin``/``ymin``/``xmax``/``ymax`` in original
pixels. Quirks handled: boxes reaching slightly outside the image (negative ``xmin``/``ymin``,
clipped to 0), boxes with several categories (one box, the first category in
:data:`CATEGORY_LABELS` order, so a finding counts once), categories mammocad has no class for
(nipple and skin retraction: no box), and images listed with no finding (lesion-free).
VinDr-Mammo gives BI-RADS, not pathology: every box's malignancy is unknown, and a breast
counts as malignant (for ``mammocad eval study --dataset-labels``) when its ``breast_birads``
is 4 or 5 — suspicious, a reading label — and as not malignant at 1–3.
``breast-level_annotations.csv`` has the same columns up to ``breast_density`` plus ``split``,
one row per image.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from mammocad.datasets.breast_labels import (
    BreastLabel,
    LabelFile,
    LabelFormat,
    birads_outcome,
    side_of,
)
from mammocad.datasets.records import LesionAnnotation
from mammocad.structures import FindingLabel

COLUMNS = frozenset({"image_id", "finding_categories", "xmin", "ymin", "xmax", "ymax"})
#: VinDr-Mammo's categories → mammocad's lesion classes, in the order a multi-category box
#: takes its class
CATEGORY_LABELS = {
    "Mass": "mass",
    "Suspicious Calcification": "calcification",
    "Architectural Distortion": "architectural_distortion",
    "Focal Asymmetry": "asymmetry",
    "Asymmetry": "asymmetry",
    "Global Asymmetry": "asymmetry",
    "Skin Thickening": "skin_thickening",
    "Suspicious Lymph Node": "lymph_node",
}


def lesion_boxes(table: LabelFile) -> dict[str, list[LesionAnnotation]]:
    """Every image of the file (read by
    :func:`~mammocad.datasets.breast_labels.read_table`) by ``image_id``, with its lesion
    boxes (none: lesion-free).

    Raises:
        ValueError: the file lacks VinDr-Mammo's columns, or a box or category list cannot be
            read (its row is named).
    """
    if not table.columns >= COLUMNS:
        raise ValueError(f"{table.path}: not VinDr-Mammo's finding_annotations.csv")
    images: dict[str, list[LesionAnnotation]] = {}
    for index, row in enumerate(table.rows):
        boxes = images.setdefault(row["image_id"], [])
        try:
            categories = ast.literal_eval(row["finding_categories"])
        except (ValueError, SyntaxError):
            raise ValueError(
                f"{table.where(index)}: finding_categories {row['finding_categories']!r} is "
                "not a list"
            ) from None
        label = next((CATEGORY_LABELS[c] for c in CATEGORY_LABELS if c in categories), None)
        if label is None:
            continue  # 'No Finding', or findings mammocad has no class for
        try:
            x1, y1, x2, y2 = (float(row[name]) for name in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise ValueError(f"{table.where(index)}: a {label} without a box") from None
        boxes.append(
            LesionAnnotation(
                label=FindingLabel(label), box=(max(x1, 0.0), max(y1, 0.0), x2, y2), malignant=None
            )
        )
    return images


def breast_rows(table: LabelFile) -> Iterator[BreastLabel]:
    """One label per row, keyed by ``image_id`` (a finding file's rows of one image agree);
    the study stands for the woman; grouped by breast density."""
    for index, row in enumerate(table.rows):
        density = row.get("breast_density", "").upper().removeprefix("DENSITY").strip()
        yield BreastLabel(
            patient_id=row.get("study_id", ""),
            laterality=side_of(table, index, row["laterality"]),
            malignant=birads_outcome(table, index, "breast_birads"),
            group=f"density {density}" if density else None,
            image_id=row["image_id"],
        )


FORMAT = LabelFormat(
    "VinDr-Mammo", frozenset({"image_id", "laterality", "breast_birads"}), breast_rows
)
