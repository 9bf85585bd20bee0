"""CBIS-DDSM case descriptions → breast labels.

CBIS-DDSM (Lee et al. 2017, TCIA) ships four CSVs — ``mass_case_description_{train,test}_set``
and ``calc_case_description_{train,test}_set`` — with one row per abnormality of one view:
``patient_id`` (``P_00173``), ``left or right breast``, ``image view``, ``pathology``
(``MALIGNANT``, ``BENIGN``, ``BENIGN_WITHOUT_CALLBACK``), the density (``breast_density`` in the
mass files, ``breast density`` in the calcification files; BI-RADS 1–4, a few rows 0) and the
file paths. Quirks handled: CRLF line ends and quoted paths ending in a newline (read by
:func:`~mammocad.datasets.breast_labels.read_table`), the two spellings of the density column,
and a breast listed in several rows (merged by
:func:`~mammocad.datasets.breast_labels.read_breast_labels`).

CBIS-DDSM holds only breasts with a verified abnormality (the normal DDSM cases are not in
it), so its labels ask "malignant or benign lesion", not "abnormal or normal".
"""

from __future__ import annotations

from collections.abc import Iterator

from mammocad.datasets.breast_labels import BreastLabel, LabelFile, LabelFormat, side_of

PATHOLOGIES = {"MALIGNANT": True, "BENIGN": False, "BENIGN_WITHOUT_CALLBACK": False}
_DENSITY_COLUMNS = ("breast_density", "breast density")


def breast_rows(table: LabelFile) -> Iterator[BreastLabel]:
    """One label per row (an abnormality on one view); grouped by BI-RADS density."""
    density_column = next((c for c in _DENSITY_COLUMNS if c in table.columns), None)
    for index, row in enumerate(table.rows):
        pathology = row["pathology"].upper()
        if pathology not in PATHOLOGIES:
            raise ValueError(
                f"{table.where(index)}: pathology {row['pathology']!r} is none of "
                f"{', '.join(PATHOLOGIES)}"
            )
        density = row.get(density_column, "") if density_column else ""
        yield BreastLabel(
            patient_id=row["patient_id"].upper(),
            laterality=side_of(table, index, row["left or right breast"]),
            malignant=PATHOLOGIES[pathology],
            group=f"density {density}" if density not in {"", "0"} else None,
        )


FORMAT = LabelFormat(
    "CBIS-DDSM", frozenset({"patient_id", "left or right breast", "pathology"}), breast_rows
)
