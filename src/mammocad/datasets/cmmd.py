"""CMMD (the Chinese Mammography Database, TCIA) clinical data → breast labels.

``CMMD_clinicaldata_revision.xlsx`` has one row per breast with a lesion: ``ID1`` (the
subject, ``D1-0001``, which TCIA's files carry as Patient ID), ``LeftRight`` (``L``/``R``),
``Age``, ``number``, ``abnormality`` (``mass``, ``calcification``, ``both``),
``classification`` (``Benign`` / ``Malignant``, from biopsy) and the molecular ``subtype`` of
cancers. Like CBIS-DDSM it holds only breasts with a lesion: its AUC is malignant vs benign.
Subjects imaged on one side only have two images, so their studies are ``partial``; their
breast still has a probability.
"""

from __future__ import annotations

from collections.abc import Iterator

from mammocad.datasets.breast_labels import BreastLabel, LabelFile, LabelFormat, side_of

CLASSIFICATIONS = {"MALIGNANT": True, "BENIGN": False}


def breast_rows(table: LabelFile) -> Iterator[BreastLabel]:
    """One label per row; grouped by the kind of abnormality."""
    for index, row in enumerate(table.rows):
        outcome = CLASSIFICATIONS.get(row["classification"].upper())
        if outcome is None:
            raise ValueError(
                f"{table.where(index)}: classification {row['classification']!r} is neither "
                "Benign nor Malignant"
            )
        abnormality = row.get("abnormality", "").lower()
        yield BreastLabel(
            patient_id=row["ID1"],
            laterality=side_of(table, index, row["LeftRight"]),
            malignant=outcome,
            group=abnormality or None,
        )


FORMAT = LabelFormat("CMMD", frozenset({"ID1", "LeftRight", "classification"}), breast_rows)
