"""RSNA Screening Mammography Breast Cancer Detection (2023) ``train.csv`` → breast labels.

One row per image: ``site_id``, ``patient_id``, ``image_id``, ``laterality`` (``L``/``R``),
``view``, ``age``, ``cancer`` (0/1, the breast's outcome, on each of its images), ``biopsy``,
``invasive``, ``BIRADS``, ``implant``, ``density`` (``A``–``D``, often empty), ``machine_id``,
``difficult_negative_case``. A screening population (about 2 % of breasts malignant), so its
AUC is cancer vs everything else, as a screening service is judged. The competition's
``test.csv`` has no ``cancer`` column and is not a label file.
"""

from __future__ import annotations

from collections.abc import Iterator

from mammocad.datasets.breast_labels import BreastLabel, LabelFile, LabelFormat, side_of


def breast_rows(table: LabelFile) -> Iterator[BreastLabel]:
    """One label per image row; grouped by density where given."""
    for index, row in enumerate(table.rows):
        if row["cancer"] not in {"0", "1"}:
            raise ValueError(f"{table.where(index)}: cancer {row['cancer']!r} is not 0 or 1")
        density = row.get("density", "").upper()
        yield BreastLabel(
            patient_id=row["patient_id"],
            laterality=side_of(table, index, row["laterality"]),
            malignant=row["cancer"] == "1",
            group=f"density {density}" if density else None,
        )


FORMAT = LabelFormat("RSNA 2023", frozenset({"patient_id", "laterality", "cancer"}), breast_rows)
