"""Ground truth of a phantom study, and its ``truth.json`` form (see docs/synthetic.md).

Boxes are ``[x1, y1, x2, y2]`` in the ORIGINAL stored pixel grid of the written file (column
``x``, row ``y``, origin at the top-left pixel's top-left corner), after any mirroring the
variant applies: exactly the frame every mammocad output uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.structures import FindingLabel, Laterality, ViewPosition
from mammocad.synthetic.enum import BurnedInKind, ChestWallSide, Defect, Density
from mammocad.synthetic.variants import Variant, variant_from_dict

TRUTH_FORMAT = "mammocad-synthetic-truth"
TRUTH_VERSION = 1

Box = tuple[float, float, float, float]


def _box(values: Any) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


def _round_box(box: Box) -> list[float]:
    return [round(v, 1) for v in box]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastLesion:
    """One lesion in the breast frame, shared by the views that show it.

    ``depth_mm`` is the distance from the nipple towards the chest wall along the nipple axis;
    it is the same in CC and MLO (radiologists match lesions across views by it).
    ``lateral_mm`` (+ lateral, − medial) places it on CC; ``superior_mm`` (+ up) with the
    obliquity places it on MLO. Axillary lymph nodes are seen on MLO only: their
    ``lateral_mm`` is 0 and ``superior_mm`` places them. A skin thickening is centred on the
    skin at these coordinates.
    """

    lesion_id: str
    label: FindingLabel
    malignant: bool
    subtype: str
    depth_mm: float
    lateral_mm: float
    superior_mm: float
    size_mm: float
    contrast: float
    views: tuple[ViewPosition, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id,
            "label": self.label.value,
            "malignant": self.malignant,
            "subtype": self.subtype,
            "depth_mm": round(self.depth_mm, 2),
            "lateral_mm": round(self.lateral_mm, 2),
            "superior_mm": round(self.superior_mm, 2),
            "size_mm": round(self.size_mm, 2),
            "contrast": round(self.contrast, 4),
            "views": [view.value for view in self.views],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BreastLesion:
        return cls(
            lesion_id=data["lesion_id"],
            label=FindingLabel(data["label"]),
            malignant=bool(data["malignant"]),
            subtype=data["subtype"],
            depth_mm=float(data["depth_mm"]),
            lateral_mm=float(data["lateral_mm"]),
            superior_mm=float(data["superior_mm"]),
            size_mm=float(data["size_mm"]),
            contrast=float(data["contrast"]),
            views=tuple(ViewPosition(v) for v in data["views"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionTruth:
    """One lesion as seen on one image: ``box`` in original stored pixels."""

    lesion_id: str
    label: FindingLabel
    malignant: bool
    box: Box
    nipple_distance_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id,
            "label": self.label.value,
            "malignant": self.malignant,
            "box": _round_box(self.box),
            "nipple_distance_mm": round(self.nipple_distance_mm, 2),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionTruth:
        return cls(
            lesion_id=data["lesion_id"],
            label=FindingLabel(data["label"]),
            malignant=bool(data["malignant"]),
            box=_box(data["box"]),
            nipple_distance_mm=float(data["nipple_distance_mm"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BurnedIn:
    """Something burned into the pixels (view label text, lead marker), box in stored pixels."""

    kind: BurnedInKind
    text: str
    box: Box

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "text": self.text, "box": _round_box(self.box)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BurnedIn:
        return cls(kind=BurnedInKind(data["kind"]), text=data["text"], box=_box(data["box"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewTruth:
    """Truth of one image. ``nipple`` is ``(x, y)`` in stored pixels, ``None`` when the nipple
    is off the image or the image shows no anatomy."""

    sop_instance_uid: str
    file_name: str | None
    laterality: Laterality
    view: ViewPosition
    rows: int
    columns: int
    pixel_spacing_mm: float
    chest_wall_side: ChestWallSide
    nipple: tuple[float, float] | None
    lesions: tuple[LesionTruth, ...]
    defects: tuple[Defect, ...]
    burned_in: tuple[BurnedIn, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "file": self.file_name,
            "laterality": self.laterality.value,
            "view": self.view.value,
            "rows": self.rows,
            "columns": self.columns,
            "pixel_spacing_mm": self.pixel_spacing_mm,
            "chest_wall_side": self.chest_wall_side.value,
            "nipple": None if self.nipple is None else [round(v, 1) for v in self.nipple],
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "defects": [defect.value for defect in self.defects],
            "burned_in": [item.to_dict() for item in self.burned_in],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViewTruth:
        nipple = data["nipple"]
        return cls(
            sop_instance_uid=data["sop_instance_uid"],
            file_name=data["file"],
            laterality=Laterality(data["laterality"]),
            view=ViewPosition(data["view"]),
            rows=int(data["rows"]),
            columns=int(data["columns"]),
            pixel_spacing_mm=float(data["pixel_spacing_mm"]),
            chest_wall_side=ChestWallSide(data["chest_wall_side"]),
            nipple=None if nipple is None else (float(nipple[0]), float(nipple[1])),
            lesions=tuple(LesionTruth.from_dict(item) for item in data["lesions"]),
            defects=tuple(Defect(item) for item in data["defects"]),
            burned_in=tuple(BurnedIn.from_dict(item) for item in data["burned_in"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastTruth:
    """Breast-level labels: malignant if any of its lesions is, and its BI-RADS density."""

    laterality: Laterality
    density: Density
    lesions: tuple[BreastLesion, ...]

    @property
    def malignant(self) -> bool:
        return any(lesion.malignant for lesion in self.lesions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "laterality": self.laterality.value,
            "malignant": self.malignant,
            "density": self.density.value,
            "lesions": [lesion.to_dict() for lesion in self.lesions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BreastTruth:
        return cls(
            laterality=Laterality(data["laterality"]),
            density=Density(data["density"]),
            lesions=tuple(BreastLesion.from_dict(item) for item in data["lesions"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    """Made-up demographics (DICOM PS3.3 C.7.1.1 Patient Module)."""

    patient_id: str
    name: str
    birth_date: str  # YYYYMMDD
    sex: str
    age_years: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.patient_id,
            "name": self.name,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "age_years": self.age_years,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Patient:
        return cls(
            patient_id=data["id"],
            name=data["name"],
            birth_date=data["birth_date"],
            sex=data["sex"],
            age_years=int(data["age_years"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyTruth:
    """Everything known about one phantom study; ``views`` in the order the files are written."""

    study_instance_uid: str
    series_instance_uid: str
    accession_number: str
    study_date: str  # YYYYMMDD
    patient: Patient
    seed: int
    size: str
    variant: Variant
    breasts: tuple[BreastTruth, ...]
    views: tuple[ViewTruth, ...]

    @property
    def malignant(self) -> bool:
        return any(breast.malignant for breast in self.breasts)

    def breast(self, laterality: Laterality) -> BreastTruth:
        for breast in self.breasts:
            if breast.laterality is laterality:
                return breast
        raise KeyError(f"the study has no {laterality.value} breast")

    def view(self, laterality: Laterality, view: ViewPosition) -> ViewTruth:
        for item in self.views:
            if item.laterality is laterality and item.view is view:
                return item
        raise KeyError(f"the study has no {laterality.value} {view.value} image")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "seed": self.seed,
            "size": self.size,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "accession_number": self.accession_number,
            "study_date": self.study_date,
            "patient": self.patient.to_dict(),
            "malignant": self.malignant,
            "variant": self.variant.to_dict(),
            "breasts": [breast.to_dict() for breast in self.breasts],
            "images": {view.sop_instance_uid: view.to_dict() for view in self.views},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyTruth:
        if data.get("format") != TRUTH_FORMAT or data.get("version") != TRUTH_VERSION:
            raise ValueError(
                f"not a version-{TRUTH_VERSION} {TRUTH_FORMAT} file; regenerate it with"
                " mammocad.synthetic.write_studies"
            )
        return cls(
            study_instance_uid=data["study_instance_uid"],
            series_instance_uid=data["series_instance_uid"],
            accession_number=data["accession_number"],
            study_date=data["study_date"],
            patient=Patient.from_dict(data["patient"]),
            seed=int(data["seed"]),
            size=data["size"],
            variant=variant_from_dict(data["variant"]),
            breasts=tuple(BreastTruth.from_dict(item) for item in data["breasts"]),
            views=tuple(ViewTruth.from_dict(item) for item in data["images"].values()),
        )


def write_truth(truth: StudyTruth, path: Path) -> None:
    """Write ``truth.json`` (UTF-8, indented, keys in a stable order)."""
    path.write_text(json.dumps(truth.to_dict(), indent=1) + "\n", encoding="utf-8")


def read_truth(path: Path) -> StudyTruth:
    """Read a ``truth.json`` written by :func:`write_truth`."""
    return StudyTruth.from_dict(json.loads(path.read_text(encoding="utf-8")))
