"""What a phantom study will contain, decided before any pixel is drawn.

A plan fixes the variant, the patient and UIDs, each breast's shape, density and lesions (in
the breast frame), and each image's defects. Rendering a view then needs nothing else, so a
single view can be rendered without the other three.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydicom.uid import generate_uid

from mammocad.errors import SynthesisError
from mammocad.structures import FindingLabel, Laterality, ViewPosition
from mammocad.synthetic import lesions as catalog
from mammocad.synthetic._random import stream
from mammocad.synthetic.anatomy import Appearance, sample_appearance
from mammocad.synthetic.enum import Defect, Density
from mammocad.synthetic.geometry import BreastShape, sample_breast_shape, view_geometry
from mammocad.synthetic.truth import BreastLesion, Patient
from mammocad.synthetic.variants import Grid, Variant, choose_variant

BOTH_VIEWS: tuple[ViewPosition, ...] = (ViewPosition.CC, ViewPosition.MLO)
#: Hanging order of a screening study: RCC | LCC over RMLO | LMLO.
STANDARD_ORDER: tuple[tuple[Laterality, ViewPosition], ...] = (
    (Laterality.R, ViewPosition.CC),
    (Laterality.L, ViewPosition.CC),
    (Laterality.R, ViewPosition.MLO),
    (Laterality.L, ViewPosition.MLO),
)
# Screening population shares of BI-RADS density A-D (about 10/40/40/10 %)
_DENSITY_SHARES = (0.1, 0.4, 0.4, 0.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionRequest:
    """A lesion asked for explicitly; ``None`` fields are drawn at random.

    ``subtype`` picks an appearance (see ``mammocad.synthetic.lesions.CATALOG``); ``contrast``
    is in that appearance's unit; ``views`` lists where it is visible (lymph nodes: MLO only).
    """

    label: FindingLabel
    malignant: bool = False
    subtype: str | None = None
    size_mm: float | None = None
    contrast: float | None = None
    views: tuple[ViewPosition, ...] = BOTH_VIEWS


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastPlan:
    laterality: Laterality
    density: Density
    shape: BreastShape
    appearance: Appearance
    lesions: tuple[BreastLesion, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewPlan:
    laterality: Laterality
    view: ViewPosition
    sop_instance_uid: str
    defects: tuple[Defect, ...]
    cut_off: str | None  # "anterior" / "vertical" when Defect.CUT_OFF is present


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyPlan:
    seed: int
    size: str
    variant: Variant
    patient: Patient
    study_instance_uid: str
    series_instance_uid: str
    accession_number: str
    study_date: str
    breasts: dict[Laterality, BreastPlan] = field(default_factory=dict)
    views: tuple[ViewPlan, ...] = ()

    def view(self, laterality: Laterality, view: ViewPosition) -> ViewPlan:
        for item in self.views:
            if item.laterality is laterality and item.view is view:
                return item
        raise KeyError(f"the plan has no {laterality.value} {view.value} view")


def uid(seed: int, *parts: str) -> str:
    """A UID that depends only on the seed and ``parts`` (PS3.5 Section 9, under pydicom's
    root), so re-running a seed reproduces the same study, series and instances."""
    return str(generate_uid(entropy_srcs=["mammocad-phantom", str(seed), *parts]))


def make_patient(rng: np.random.Generator, seed: int) -> tuple[Patient, str]:
    """Made-up patient (screening age 40-75) and a study date."""
    study_date = dt.date(2020, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2200)))
    age = int(rng.integers(40, 76))
    birth = study_date - dt.timedelta(days=int(age * 365.25 + rng.integers(1, 360)))
    patient = Patient(
        patient_id=f"PH{seed & 0xFFFFFFFFFF:010X}",
        name=f"PHANTOM^{seed & 0xFFFFFF:06X}",
        birth_date=birth.strftime("%Y%m%d"),
        sex="F",
        age_years=age,
    )
    return patient, study_date.strftime("%Y%m%d")


def draw_defects(
    rng: np.random.Generator, rate: float, explicit: Sequence[Defect] | None
) -> tuple[tuple[Defect, ...], str | None]:
    """Defects of one image (explicit, or one drawn with probability ``rate``) and the kind of
    cut-off when the breast is to run off the image."""
    if explicit is not None:
        defects = tuple(explicit)
    elif rng.random() < rate:
        defects = (Defect(rng.choice([d.value for d in Defect])),)
    else:
        defects = ()
    cut_off = str(rng.choice(["anterior", "vertical"])) if Defect.CUT_OFF in defects else None
    return defects, cut_off


def check_request(seed: int, **rates: float) -> None:
    """Refuse a negative seed or a rate outside [0, 1]."""
    if seed < 0:
        raise SynthesisError(f"seed must be a non-negative integer, got {seed}")
    for name, value in rates.items():
        if not 0.0 <= value <= 1.0:
            raise SynthesisError(f"{name} must lie in [0, 1], got {value}")


def plan_breast(
    *,
    seed: int,
    laterality: Laterality,
    grid: Grid,
    density: Density,
    requests: Sequence[LesionRequest],
) -> BreastPlan:
    """Shape, appearance and placed lesions of one breast."""
    rng = stream(seed, "breast", laterality.value)
    shape = sample_breast_shape(rng, grid)
    appearance = sample_appearance(rng, density.glandular_fraction)
    maps = {view: catalog.RoomMap.of(view_geometry(shape, grid, view)) for view in BOTH_VIEWS}
    placed = [
        _place(stream(seed, "lesion", laterality.value, k), f"{laterality.value}{k}", r, maps)
        for k, r in enumerate(requests, start=1)
    ]
    return BreastPlan(
        laterality=laterality,
        density=density,
        shape=shape,
        appearance=appearance,
        lesions=tuple(placed),
    )


def _place(
    rng: np.random.Generator,
    lesion_id: str,
    request: LesionRequest,
    maps: dict[ViewPosition, catalog.RoomMap],
) -> BreastLesion:
    types = catalog.lesion_types(request.label, request.malignant, request.subtype)
    kind = types[int(rng.integers(len(types)))]
    size = catalog.log_uniform(rng, kind.size_mm) if request.size_mm is None else request.size_mm
    contrast = (
        catalog.log_uniform(rng, kind.contrast) if request.contrast is None else request.contrast
    )
    if size <= 0 or contrast <= 0:
        raise SynthesisError(f"size_mm and contrast must be positive, got {size} and {contrast}")
    views: tuple[ViewPosition, ...] = request.views
    if kind.label is FindingLabel.LYMPH_NODE:
        if ViewPosition.MLO not in views:
            raise SynthesisError("axillary lymph nodes show on MLO only; ask for views=(MLO,)")
        views = (ViewPosition.MLO,)
        depth, lateral, superior = catalog.place_in_axilla(rng, maps[ViewPosition.MLO], size)
    elif kind.label is FindingLabel.SKIN_THICKENING:
        depth, lateral, superior = catalog.place_on_skin(rng, maps, size)
    else:
        depth, lateral, superior = catalog.place_in_breast(rng, maps, kind.clearance * size + 2.0)
    if not views or any(v not in BOTH_VIEWS for v in views):
        raise SynthesisError(f"views must be a non-empty subset of CC, MLO; got {views}")
    return BreastLesion(
        lesion_id=lesion_id,
        label=kind.label,
        malignant=kind.malignant,
        subtype=kind.subtype,
        depth_mm=depth,
        lateral_mm=lateral,
        superior_mm=superior,
        size_mm=size,
        contrast=contrast,
        views=tuple(v for v in BOTH_VIEWS if v in views),
    )


def _request(rng: np.random.Generator, malignant: bool, one_view_rate: float) -> LesionRequest:
    kind = catalog.draw_type(rng, malignant)
    views = BOTH_VIEWS
    if kind.label is not FindingLabel.LYMPH_NODE and rng.random() < one_view_rate:
        views = (BOTH_VIEWS[int(rng.integers(2))],)
    return LesionRequest(label=kind.label, malignant=malignant, subtype=kind.subtype, views=views)


def draw_requests(
    rng: np.random.Generator, *, malignant: bool, benign_rate: float, one_view_rate: float
) -> dict[Laterality, list[LesionRequest]]:
    """Study composition: one malignant lesion in one breast when ``malignant``; benign
    findings (one, sometimes two) in a share ``benign_rate`` of studies; else nothing."""
    requests: dict[Laterality, list[LesionRequest]] = {side: [] for side in Laterality}
    if malignant:
        side = Laterality.R if rng.random() < 0.5 else Laterality.L
        requests[side].append(_request(rng, True, one_view_rate))
    if rng.random() < benign_rate:
        for _ in range(1 if rng.random() < 0.7 else 2):
            side = Laterality.R if rng.random() < 0.5 else Laterality.L
            requests[side].append(_request(rng, False, one_view_rate))
    return requests


def plan_study(
    *,
    seed: int,
    size: str = "small",
    malignant: bool | None = None,
    malignant_rate: float = 0.3,
    benign_rate: float = 0.4,
    density: Density | None = None,
    lesions: Mapping[Laterality, Sequence[LesionRequest]] | None = None,
    one_view_rate: float = 0.0,
    defect_rate: float = 0.0,
    defects: Mapping[tuple[Laterality, ViewPosition], Sequence[Defect]] | None = None,
    variant: Variant | None = None,
) -> StudyPlan:
    """Decide everything about one study; see :func:`mammocad.synthetic.generate_study`."""
    check_request(
        seed,
        malignant_rate=malignant_rate,
        benign_rate=benign_rate,
        one_view_rate=one_view_rate,
        defect_rate=defect_rate,
    )
    rng = stream(seed, "study")
    if variant is None:
        variant = choose_variant(size, stream(seed, "variant"))
    size = "small" if variant.grid.name == "small" else "full"
    patient, study_date = make_patient(rng, seed)
    if density is None:
        density = Density(rng.choice([d.value for d in Density], p=_DENSITY_SHARES))
    if malignant is None:
        malignant = bool(rng.random() < malignant_rate)
    if lesions is None:
        lesions = draw_requests(
            rng, malignant=malignant, benign_rate=benign_rate, one_view_rate=one_view_rate
        )
    grid = variant.grid
    breasts = {
        side: plan_breast(
            seed=seed, laterality=side, grid=grid, density=density, requests=lesions.get(side, ())
        )
        for side in Laterality
    }
    return StudyPlan(
        seed=seed,
        size=size,
        variant=variant,
        patient=patient,
        study_instance_uid=uid(seed, "study"),
        series_instance_uid=uid(seed, "series"),
        accession_number=f"A{int(rng.integers(10**9)):09d}",
        study_date=study_date,
        breasts=breasts,
        views=plan_views(seed, defect_rate, defects),
    )


def plan_views(
    seed: int,
    defect_rate: float,
    defects: Mapping[tuple[Laterality, ViewPosition], Sequence[Defect]] | None,
) -> tuple[ViewPlan, ...]:
    """SOP Instance UIDs and defects of the four views, in hanging order."""
    views = []
    for side, view in STANDARD_ORDER:
        explicit = None if defects is None else defects.get((side, view), ())
        found, cut_off = draw_defects(
            stream(seed, "defect", side.value, view.value), defect_rate, explicit
        )
        views.append(
            ViewPlan(
                laterality=side,
                view=view,
                defects=found,
                cut_off=cut_off,
                sop_instance_uid=uid(seed, "sop", side.value, view.value),
            )
        )
    return tuple(views)
