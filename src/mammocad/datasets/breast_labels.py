"""Breast-level truth from the label files of public mammography datasets (or a site's own
per-patient CSV).

Each file's dataset is recognised by its columns, so ``mammocad eval study --level breast
--dataset-labels FILE…`` needs no format flag:

=============  ==========================================  ===================================
dataset        file                                        malignant breast
=============  ==========================================  ===================================
CBIS-DDSM      ``mass_`` / ``calc_case_description_*.csv``  any abnormality ``MALIGNANT``
CMMD           ``CMMD_clinicaldata_revision.xlsx`` (or a    ``classification`` ``Malignant``
               CSV with its columns)
RSNA 2023      ``train.csv``                                any image with ``cancer`` 1
INbreast       ``INbreast.csv`` (``;``-separated)           an image with BI-RADS 4a–6
VinDr-Mammo    ``breast-level_annotations.csv`` or          an image with BI-RADS 4–5
               ``finding_annotations.csv``
mini-MIAS      ``Info.txt``                                 an abnormality of severity ``M``
a site's own   ``patient_id,laterality,label[,group]``      ``label`` 1
=============  ==========================================  ===================================

Most datasets key labels by patient ID and side; INbreast (whose patient IDs are removed),
VinDr-Mammo and mini-MIAS label images, keyed by the image's file ID (``22614097``,
``mdb001``). A breast listed in several rows or files (several abnormalities, both views,
CBIS-DDSM's mass and calcification files) is malignant when any row says so. Each label also
carries the subgroup reports break down by (density where the dataset gives one). Only label
files are read, never an image.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mammocad.structures import Laterality

SIDES = {"L": Laterality.L, "LEFT": Laterality.L, "R": Laterality.R, "RIGHT": Laterality.R}


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastLabel:
    """One breast of a public dataset and its truth."""

    patient_id: str
    laterality: Laterality
    malignant: bool
    group: str | None = None  # e.g. "density 2"; None where the dataset says nothing
    #: the labelled image's file ID where the dataset labels images, not patients (INbreast,
    #: VinDr-Mammo, mini-MIAS); ``patient_id`` is then the dataset's woman where it has one
    #: (VinDr-Mammo's study), else ""
    image_id: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetLabels:
    """What the label files say: breasts by (patient ID, side), and the breasts of images by
    the image's file ID (datasets that label images)."""

    breasts: dict[tuple[str, Laterality], BreastLabel]
    images: dict[str, BreastLabel]


@dataclass(frozen=True, slots=True)
class LabelFile:
    """A label file's rows as (column → text) dicts, whatever its format."""

    path: Path
    columns: frozenset[str]
    rows: list[dict[str, str]]
    #: each row's number in the file (its first row is 1), blank rows counted; empty: the
    #: rows follow a header in row 1 with none left out
    numbers: tuple[int, ...] = ()

    def where(self, index: int) -> str:
        """Where row ``index`` (0-based, of ``rows``) is in the file, for error messages."""
        number = self.numbers[index] if self.numbers else index + 2
        return f"{self.path} row {number}"


@dataclass(frozen=True, slots=True)
class LabelFormat:
    """A dataset's label file: recognised by ``columns``, read by ``breast_rows``."""

    dataset: str
    columns: frozenset[str]
    breast_rows: Callable[[LabelFile], Iterator[BreastLabel]]


def read_table(path: Path) -> LabelFile:
    """A CSV (any line ends, quoted newlines; ``,`` or, where the header has ``;`` and no
    ``,``, ``;`` as INbreast's) or the first sheet of an ``.xlsx`` workbook.

    Raises:
        ValueError: the file cannot be read (missing, not UTF-8, a broken workbook, an
            ``.xlsx`` file without openpyxl) or is empty; the message names it.
    """
    try:
        if path.suffix.lower() == ".xlsx":
            rows = _xlsx_rows(path)
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                # the header's line: a sheet whose table starts lower down is exported with
                # empty rows (";;" or "") above it
                first_line = next((line for line in handle if line.strip(' \t\r\n;,"')), "")
                handle.seek(0)
                delimiter = ";" if ";" in first_line and "," not in first_line else ","
                reader = csv.reader(handle, delimiter=delimiter)
                rows = [[cell or "" for cell in row] for row in reader]
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: save it as a UTF-8 CSV") from None
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    # empty rows above the header (a sheet whose table starts lower down) are no header
    start = next((index for index, row in enumerate(rows) if any(c.strip() for c in row)), None)
    if start is None:
        raise ValueError(f"{path} is empty")
    header = [name.strip() for name in rows[start]]
    # a row cut short (trailing cells dropped by hand or by a tool) reads its missing cells as
    # empty, so the row is refused by its values with its file and row named, not a KeyError
    width = len(header)
    records = [
        (
            number,
            dict(
                zip(
                    header,
                    [cell.strip() for cell in row[:width]] + [""] * (width - len(row)),
                    strict=True,
                )
            ),
        )
        for number, row in enumerate(rows[start + 1 :], start=start + 2)
    ]
    # blank rows are dropped, but an error must name the row a user finds counting the file's
    # rows (a blank line included), so each kept row keeps its number
    kept = [(number, record) for number, record in records if any(record.values())]
    return LabelFile(
        path=path,
        columns=frozenset(header),
        rows=[record for _, record in kept],
        numbers=tuple(number for number, _ in kept),
    )


def _xlsx_rows(path: Path) -> list[list[str]]:
    try:
        import openpyxl
    except ImportError as error:  # an optional dependency: the [ml] extra has it
        raise ValueError(
            f"{path}: reading .xlsx needs openpyxl (pip install 'mammocad[ml]'), or save the "
            "sheet as CSV"
        ) from error
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except OSError:
        raise  # a missing file: said by read_table
    except Exception as error:  # openpyxl and zipfile raise several types on broken files
        raise ValueError(f"{path} is not a readable .xlsx workbook ({error})") from None
    try:
        sheet = workbook.worksheets[0]
        return [
            ["" if cell is None else str(cell) for cell in row]
            for row in sheet.iter_rows(values_only=True)
        ]
    finally:
        workbook.close()


def side_of(table: LabelFile, index: int, text: str) -> Laterality:
    side = SIDES.get(text.strip().upper())
    if side is None:
        raise ValueError(f"{table.where(index)}: side {text!r} is not L/LEFT or R/RIGHT")
    return side


def read_dataset_labels(paths: Iterable[Path]) -> DatasetLabels:
    """Every breast the label files list, by (patient ID, side), and every labelled image by
    its file ID; each file's dataset recognised by its columns (a mini-MIAS ``Info.txt`` by
    its rows).

    Raises:
        ValueError: a file of no known dataset (the formats are named), or a row whose side or
            outcome is not one of its dataset's values (its file and row are named).
    """
    from mammocad.datasets import cbis_ddsm, cmmd, inbreast, rsna, vindr

    formats = (
        cbis_ddsm.FORMAT,
        cmmd.FORMAT,
        rsna.FORMAT,
        inbreast.FORMAT,
        vindr.FORMAT,
        PATIENT_CSV,
    )
    breasts: dict[tuple[str, Laterality], list[BreastLabel]] = {}
    images: dict[str, list[BreastLabel]] = {}
    for path in paths:
        labels: Iterable[BreastLabel]
        if path.suffix.lower() == ".txt":  # mini-MIAS Info.txt: not a table
            from mammocad.datasets import mias  # imports the training stack: only for it

            labels = mias.breast_labels(path)
        else:
            table = read_table(path)
            found = next((f for f in formats if table.columns >= f.columns), None)
            if found is None:
                known = "; ".join(f"{f.dataset}: {', '.join(sorted(f.columns))}" for f in formats)
                raise ValueError(
                    f"{path}: not a label file of a known dataset (columns needed — {known}; "
                    "or mini-MIAS's Info.txt)"
                )
            labels = found.breast_rows(table)
        for label in labels:
            if label.image_id is not None:
                images.setdefault(label.image_id, []).append(label)
            else:
                breasts.setdefault((label.patient_id, label.laterality), []).append(label)
    return DatasetLabels(
        breasts={key: _merge(entries) for key, entries in breasts.items()},
        images={key: _merge(entries) for key, entries in images.items()},
    )


def merged_group(groups: Iterable[str | None]) -> str | None:
    """The subgroup of a label merged from several rows (a breast's findings, a study's
    breasts): the one group they name, ``"mixed"`` where they name several, ``None`` where
    none; rows without a group do not count against the others."""
    named = {group for group in groups if group}
    if len(named) > 1:
        return "mixed"
    return named.pop() if named else None


def _merge(entries: list[BreastLabel]) -> BreastLabel:
    first = entries[0]
    return BreastLabel(
        patient_id=first.patient_id,
        laterality=first.laterality,
        malignant=any(entry.malignant for entry in entries),
        group=merged_group(entry.group for entry in entries),
        image_id=first.image_id,
    )


_OUTCOMES = {
    "1": True,
    "true": True,
    "malignant": True,
    "0": False,
    "false": False,
    "benign": False,
}


def outcome_of(table: LabelFile, index: int, column: str = "label") -> bool:
    """A label cell: 1 / true / malignant, or 0 / false / benign (any case).

    Raises:
        ValueError: anything else (its file and row are named): a typo must not count as
            benign.
    """
    text = table.rows[index].get(column, "")
    malignant = _OUTCOMES.get(text.lower())
    if malignant is None:
        raise ValueError(f"{table.where(index)}: {column} {text!r} is not 1 or 0")
    return malignant


#: BI-RADS assessment → suspicious breast (4a-6), the reading label of datasets without a
#: biopsy result per image (INbreast, VinDr-Mammo); "4" alone for files that do not split it
_BIRADS_SUSPICIOUS = {
    **dict.fromkeys(("1", "2", "3"), False),
    **dict.fromkeys(("4", "4a", "4b", "4c", "5", "6"), True),
}


def birads_outcome(table: LabelFile, index: int, column: str) -> bool:
    """A BI-RADS cell (``4a``, ``BI-RADS 4``; any case): suspicious (4–6) or not (1–3).

    Raises:
        ValueError: anything else, 0 (incomplete) included (its file and row are named).
    """
    text = table.rows[index].get(column, "")
    value = text.lower().removeprefix("bi-rads").strip()
    suspicious = _BIRADS_SUSPICIOUS.get(value)
    if suspicious is None:
        raise ValueError(f"{table.where(index)}: {column} {text!r} is not a BI-RADS assessment 1–6")
    return suspicious


def _patient_rows(table: LabelFile) -> Iterator[BreastLabel]:
    for index, row in enumerate(table.rows):
        yield BreastLabel(
            patient_id=row["patient_id"],
            laterality=side_of(table, index, row["laterality"]),
            malignant=outcome_of(table, index),
            group=row.get("group") or None,
        )


#: a site's own labels per patient: ``patient_id,laterality,label[,group]`` (label 1 =
#: malignant), for studies whose UIDs the labels do not know
PATIENT_CSV = LabelFormat(
    "your own CSV", frozenset({"patient_id", "laterality", "label"}), _patient_rows
)
