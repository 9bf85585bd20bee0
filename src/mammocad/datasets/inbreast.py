"""INbreast (Moreira et al., Acad. Radiol. 2012): image labels and lesion boxes as distributed.

``INbreast.csv``: one row per image, ``;``-separated — ``Patient ID`` and ``Patient age``
(both literally ``removed``), ``Laterality`` (``L``/``R``), ``View``, ``Acquisition date``,
``File Name`` (the number the DICOM file's name starts with: ``22614097`` for
``22614097_<hash>_MG_L_CC_ANON.dcm``), ``ACR`` (density 1–4, sometimes blank) and ``Bi-Rads``
(1, 2, 3, 4a, 4b, 4c, 5, 6). INbreast gives no biopsy result per image, so a breast counts as
malignant when one of its images has BI-RADS 4a–6 (suspicious or known cancer) and as not
malignant at 1–3: a reading label, as the dataset's own papers use it.

``AllXML/<File Name>.xml``: an OsiriX ROI export (an Apple property list) with the image's
ROIs, each a ``Name`` and its ``Point_px`` outline (``"(x, y)"`` strings, original pixels).
Names seen in the distributed files vary in spelling (``Assymetry``, ``Espiculated Region``,
``Calcifications``); :data:`ROI_LABELS` maps them. A ROI of one or two points is a single
calcification speck, which INbreast marks by the dozen: it is not a lesion of its own here (a
``Cluster`` ROI outlines the group), nor are ROIs of other names (``Point 1``, ``Unnamed``).
INbreast gives no pathology per ROI: every box's malignancy is unknown.
"""

from __future__ import annotations

import plistlib
import re
from collections.abc import Iterator
from pathlib import Path
from xml.parsers.expat import ExpatError

from mammocad.datasets.breast_labels import (
    BreastLabel,
    LabelFile,
    LabelFormat,
    birads_outcome,
    side_of,
)
from mammocad.datasets.records import LesionAnnotation
from mammocad.structures import FindingLabel

#: INbreast ROI names (lower case, as spelt in the files) → mammocad's lesion classes
ROI_LABELS = {
    "mass": FindingLabel.MASS,
    "spiculated region": FindingLabel.MASS,
    "espiculated region": FindingLabel.MASS,
    "calcification": FindingLabel.CALCIFICATION,
    "calcifications": FindingLabel.CALCIFICATION,
    "cluster": FindingLabel.CALCIFICATION,
    "distortion": FindingLabel.ARCHITECTURAL_DISTORTION,
    "asymmetry": FindingLabel.ASYMMETRY,
    "assymetry": FindingLabel.ASYMMETRY,
}
#: what INbreast's radiologists outlined; skin thickening and lymph nodes are not marked
ANNOTATED_LABELS = frozenset(label.value for label in ROI_LABELS.values())
#: a ROI needs this many outline points to be a lesion (fewer: a single calcification speck)
MIN_POINTS = 3

_POINT = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)")


def breast_rows(table: LabelFile) -> Iterator[BreastLabel]:
    """One label per image row, keyed by its File Name; grouped by ACR density."""
    for index, row in enumerate(table.rows):
        malignant = birads_outcome(table, index, "Bi-Rads")
        density = row.get("ACR", "")
        yield BreastLabel(
            patient_id="",  # removed in the distributed file
            laterality=side_of(table, index, row["Laterality"]),
            malignant=malignant,
            group=f"ACR {density}" if density else None,
            image_id=row["File Name"],
        )


FORMAT = LabelFormat("INbreast", frozenset({"File Name", "Laterality", "Bi-Rads"}), breast_rows)


def read_roi_file(path: Path) -> list[LesionAnnotation]:
    """The lesion boxes of one ``AllXML`` file (see the module doc for what counts).

    Raises:
        ValueError: the file is not an OsiriX ROI property list, or a point cannot be read
            (the file and ROI are named).
    """
    try:
        with path.open("rb") as handle:
            plist = plistlib.load(handle)
        rois = [roi for image in plist["Images"] for roi in image.get("ROIs", [])]
    except (plistlib.InvalidFileException, ExpatError, KeyError, TypeError, ValueError):
        raise ValueError(f"{path} is not an INbreast ROI file (an OsiriX XML export)") from None
    boxes = []
    for number, roi in enumerate(rois, start=1):
        label = ROI_LABELS.get(str(roi.get("Name", "")).strip().lower())
        points = roi.get("Point_px") or []
        if label is None or len(points) < MIN_POINTS:
            continue
        matches = [_POINT.match(str(point)) for point in points]
        if not all(matches):
            raise ValueError(f"{path}: ROI {number} has a point that is not '(x, y)'")
        xs = [float(m.group(1)) for m in matches if m]
        ys = [float(m.group(2)) for m in matches if m]
        if max(xs) > min(xs) and max(ys) > min(ys):
            box = (min(xs), min(ys), max(xs), max(ys))
            boxes.append(LesionAnnotation(label=label, box=box, malignant=None))
    return boxes


def lesion_boxes(folder: Path) -> dict[str, list[LesionAnnotation]]:
    """Every ``<File Name>.xml`` under ``folder`` (INbreast's ``AllXML``) by its File Name.

    Raises:
        ValueError: no XML file is under ``folder``, or one cannot be read.
    """
    paths = sorted(folder.rglob("*.xml"))
    if not paths:
        raise ValueError(f"no .xml file under {folder}: give INbreast's AllXML folder")
    return {path.stem: read_roi_file(path) for path in paths}
