"""CBIS-DDSM case descriptions → breast labels, and lesion boxes from the ROI masks.

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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pydicom

from mammocad.datasets.breast_labels import (
    BreastLabel,
    LabelFile,
    LabelFormat,
    read_table,
    side_of,
)
from mammocad.datasets.records import LesionAnnotation
from mammocad.structures import FindingLabel, Laterality

PATHOLOGIES = {"MALIGNANT": True, "BENIGN": False, "BENIGN_WITHOUT_CALLBACK": False}
_DENSITY_COLUMNS = ("breast_density", "breast density")


def breast_rows(table: LabelFile) -> Iterator[BreastLabel]:
    """One label per row (an abnormality on one view); grouped by BI-RADS density."""
    density_column = next((c for c in _DENSITY_COLUMNS if c in table.columns), None)
    for index, row in enumerate(table.rows):
        density = row.get(density_column, "") if density_column else ""
        yield BreastLabel(
            patient_id=row["patient_id"].upper(),
            laterality=side_of(table, index, row["left or right breast"]),
            malignant=_malignant(table, index),
            group=f"density {density}" if density not in {"", "0"} else None,
        )


def _malignant(table: LabelFile, index: int) -> bool:
    text = table.rows[index]["pathology"]
    pathology = PATHOLOGIES.get(text.upper())
    if pathology is None:
        raise ValueError(
            f"{table.where(index)}: pathology {text!r} is none of {', '.join(PATHOLOGIES)}"
        )
    return pathology


FORMAT = LabelFormat(
    "CBIS-DDSM", frozenset({"patient_id", "left or right breast", "pathology"}), breast_rows
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CbisBoxes:
    #: lesions by the full mammogram's SOP Instance UID, each boxed by the bounding box of its
    #: ROI mask in the mammogram's pixels; a view stored as several copies (its masses in the
    #: mass files, its calcifications in the calcification files) gives every copy all of them
    lesions: dict[str, list[LesionAnnotation]]
    #: full mammograms of a view with an abnormality whose ROI mask (of that mammogram's
    #: size) is not under the folder
    unlocated: frozenset[str]
    #: case description rows whose full mammogram is not under the folder
    rows_without_image: int
    #: the classes the rows read are of (``mass``, ``calcification``): a mass file annotates
    #: no calcification, so with it alone a calcification finding is neither hit nor miss
    annotated: frozenset[str]
    #: views (patient ID, side, view) whose copies differ in size, so no box of one copy can
    #: be drawn on another: each copy keeps the lesions of its own file's rows
    unmerged: frozenset[tuple[str, Laterality, str]]


@dataclass(frozen=True, slots=True)
class _Stored:
    path: Path
    sop_instance_uid: str
    shape: tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Abnormality:
    """One case description row: its full mammogram (None: not under the folder)."""

    mammogram: _Stored | None
    masks: list[_Stored]  # the files of its ROI mask's series (the cropped lesion too)
    label: FindingLabel
    malignant: bool


_View = tuple[str, Laterality, str]
_LABELS = {"mass": FindingLabel.MASS, "calcification": FindingLabel.CALCIFICATION}
_PATH_COLUMNS = frozenset({"image view", "abnormality type", "image file path"})


def lesion_boxes(case_descriptions: Sequence[Path], images: Path) -> CbisBoxes:
    """Each abnormality's box, from its ROI mask image under ``images`` (the dataset as
    downloaded, in any folder layout).

    The CSV paths (``<case>/<StudyInstanceUID>/<SeriesInstanceUID>/00000N.dcm``) follow a
    layout TCIA's downloads no longer keep, so files are found by the Series Instance UID the
    path names, read from the DICOM headers. The cropped lesion and the ROI mask share a
    series (about a hundred rows name two series: both are searched), and their ``000000`` /
    ``000001`` names are not consistent: the mask is the image of the full mammogram's size.
    A view with both masses and calcifications is stored twice, under other UIDs, in the Mass
    and the Calc collections: rows are grouped by patient, side and view, and every copy of
    one size gets the lesions of all.

    Raises:
        ValueError: a file is not a case description, or a row's values are not CBIS-DDSM's.
    """
    series = _index(images)
    views: dict[_View, list[_Abnormality]] = {}
    for path in case_descriptions:
        for view, abnormality in _abnormalities(path, series):
            views.setdefault(view, []).append(abnormality)
    lesions: dict[str, list[LesionAnnotation]] = {}
    unlocated: set[str] = set()
    unmerged: set[_View] = set()
    for view, abnormalities in views.items():
        shapes = {a.mammogram.shape for a in abnormalities if a.mammogram is not None}
        if len(shapes) > 1:
            unmerged.add(view)
        for shape in shapes:
            _place(abnormalities, shape, lesions=lesions, unlocated=unlocated)
    rows = [a for abnormalities in views.values() for a in abnormalities]
    return CbisBoxes(
        lesions=lesions,
        unlocated=frozenset(unlocated),
        rows_without_image=sum(a.mammogram is None for a in rows),
        annotated=frozenset(a.label.value for a in rows),
        unmerged=frozenset(unmerged),
    )


def _abnormalities(
    path: Path, series: dict[str, list[_Stored]]
) -> Iterator[tuple[_View, _Abnormality]]:
    table = read_table(path)
    if not table.columns >= FORMAT.columns | _PATH_COLUMNS | {"ROI mask file path"}:
        raise ValueError(f"{path}: not a CBIS-DDSM case description with its file paths")
    for index, row in enumerate(table.rows):
        kind = row["abnormality type"]
        label = _LABELS.get(kind.lower())
        if label is None:
            raise ValueError(
                f"{table.where(index)}: abnormality type {kind!r} is none of {', '.join(_LABELS)}"
            )
        full = series.get(_series_uid(row["image file path"]), [])
        view = (
            row["patient_id"].upper(),
            side_of(table, index, row["left or right breast"]),
            row["image view"].upper(),
        )
        yield (
            view,
            _Abnormality(
                mammogram=full[0] if len(full) == 1 else None,
                masks=_mask_candidates(row, series),
                label=label,
                malignant=_malignant(table, index),
            ),
        )


def _mask_candidates(row: dict[str, str], series: dict[str, list[_Stored]]) -> list[_Stored]:
    """The files of the series the ROI mask path names, then of the one the cropped image
    path names where that is another: in about a hundred rows the two paths name different
    series, and which holds the mask is not told by the name (the mask is told by its size)."""
    roi = _series_uid(row["ROI mask file path"])
    cropped = _series_uid(row.get("cropped image file path", ""))
    found = list(series.get(roi, []))
    if cropped and cropped != roi:
        found += series.get(cropped, [])
    return found


def _place(
    abnormalities: list[_Abnormality],
    shape: tuple[int, int],
    *,
    lesions: dict[str, list[LesionAnnotation]],
    unlocated: set[str],
) -> None:
    """Box the abnormalities of one view on its copies of ``shape``: those copies' own, and
    those whose copy is not under the folder (one of the view's lesions all the same)."""
    copies = {
        a.mammogram.sop_instance_uid
        for a in abnormalities
        if a.mammogram is not None and a.mammogram.shape == shape
    }
    found: list[LesionAnnotation] = []
    for abnormality in abnormalities:
        if abnormality.mammogram is not None and abnormality.mammogram.shape != shape:
            continue  # a copy of another size: kept apart (CbisBoxes.unmerged)
        masks = [m for m in abnormality.masks if m.shape == shape]
        box = _mask_box(masks[0].path) if masks else None
        if box is None:  # a lesion no box says where: the copies cannot be judged
            unlocated.update(copies)
            return
        found.append(
            LesionAnnotation(label=abnormality.label, box=box, malignant=abnormality.malignant)
        )
    for uid in copies:
        lesions[uid] = list(found)


def _series_uid(path_text: str) -> str:
    parts = PurePosixPath(path_text.strip().replace("\\", "/")).parts
    return parts[-2] if len(parts) >= 2 else ""


def _index(images: Path) -> dict[str, list[_Stored]]:
    """Every DICOM file under ``images`` by its Series Instance UID (headers only)."""
    series: dict[str, list[_Stored]] = {}
    for path in sorted(images.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(
                path,
                stop_before_pixels=True,
                specific_tags=["SeriesInstanceUID", "SOPInstanceUID", "Rows", "Columns"],
            )
            stored = _Stored(
                path=path,
                sop_instance_uid=str(ds.SOPInstanceUID),
                shape=(int(ds.Rows), int(ds.Columns)),
            )
        except Exception:  # not a readable DICOM image: not one of the dataset's
            continue
        series.setdefault(str(ds.SeriesInstanceUID), []).append(stored)
    return series


def _mask_box(path: Path) -> tuple[float, float, float, float] | None:
    """The bounding box of a mask's non-zero pixels (edges included), or None if empty."""
    mask = pydicom.dcmread(path).pixel_array
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))
