"""CBIS-DDSM case descriptions → per-breast pathology labels.

CBIS-DDSM (Lee et al. 2017, TCIA) ships four CSVs — ``mass_case_description_{train,test}_set``
and ``calc_case_description_{train,test}_set`` — with one row per abnormality of one view:
``patient_id`` (``P_00173``), ``left or right breast``, ``image view``, ``pathology``
(``MALIGNANT``, ``BENIGN``, ``BENIGN_WITHOUT_CALLBACK``), the density (``breast_density`` in the
mass files, ``breast density`` in the calcification files; BI-RADS 1–4, a few rows 0) and the
file paths. Quirks handled here: CRLF line ends and quoted paths with an embedded newline
(the csv module with ``newline=""`` reads both), the two spellings of the density column, and
a breast listed in several rows (several abnormalities, both views, both files).

A breast is **malignant** when any of its abnormalities is; otherwise benign. CBIS-DDSM holds
only breasts with a verified abnormality (the normal DDSM cases are not in it), so its labels
ask "malignant or benign lesion", not "abnormal or normal". Only the CSVs are read here, no
image, so nothing of the dataset is copied.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mammocad.structures import Laterality

PATHOLOGIES = {"MALIGNANT": True, "BENIGN": False, "BENIGN_WITHOUT_CALLBACK": False}
_SIDES = {"LEFT": Laterality.L, "RIGHT": Laterality.R}
_DENSITY_COLUMNS = ("breast_density", "breast density")
_NEEDED = ("patient_id", "left or right breast", "pathology")


@dataclass(frozen=True, slots=True)
class _Abnormality:
    """One row: an abnormality seen on one view."""

    patient_id: str
    laterality: Laterality
    malignant: bool
    density: str | None
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastPathology:
    """One breast of CBIS-DDSM and what its abnormalities were."""

    patient_id: str  # "P_00173"
    laterality: Laterality
    malignant: bool
    #: BI-RADS density 1–4 as written, ``None`` where missing or 0
    density: str | None
    abnormality_types: frozenset[str]  # "mass", "calcification"


def read_breast_pathology(paths: Iterable[Path]) -> dict[tuple[str, Laterality], BreastPathology]:
    """Every breast listed in the case description CSVs ``paths``, by (patient, side).

    Raises:
        ValueError: a file lacks a needed column, or a row has a side or pathology that is not
            one of CBIS-DDSM's values (its file and line are named).
    """
    rows: dict[tuple[str, Laterality], list[_Abnormality]] = {}
    for path in paths:
        for row in _read_rows(path):
            rows.setdefault((row.patient_id, row.laterality), []).append(row)
    breasts = {}
    for (patient, side), entries in rows.items():
        densities = sorted({entry.density for entry in entries if entry.density})
        breasts[(patient, side)] = BreastPathology(
            patient_id=patient,
            laterality=side,
            malignant=any(entry.malignant for entry in entries),
            density=densities[-1] if densities else None,  # rows of a breast agree in practice
            abnormality_types=frozenset(entry.kind for entry in entries),
        )
    return breasts


def _read_rows(path: Path) -> Iterator[_Abnormality]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        missing = [name for name in _NEEDED if name not in columns]
        if missing:
            raise ValueError(
                f"{path}: not a CBIS-DDSM case description (no column {', '.join(missing)})"
            )
        density_column = next((c for c in _DENSITY_COLUMNS if c in columns), None)
        for row in reader:
            where = f"{path} line {reader.line_num}"
            side = _SIDES.get(row["left or right breast"].strip().upper())
            if side is None:
                raise ValueError(
                    f"{where}: side {row['left or right breast']!r} is not LEFT or RIGHT"
                )
            pathology = row["pathology"].strip().upper()
            if pathology not in PATHOLOGIES:
                raise ValueError(
                    f"{where}: pathology {row['pathology']!r} is none of {', '.join(PATHOLOGIES)}"
                )
            density = (row.get(density_column) or "").strip() if density_column else ""
            kind = (row.get("abnormality type") or "").strip().lower() or "unknown"
            yield _Abnormality(
                patient_id=row["patient_id"].strip().upper(),
                laterality=side,
                malignant=PATHOLOGIES[pathology],
                density=density if density not in {"", "0"} else None,
                kind=kind,
            )
