"""Public entry points: a whole phantom study in memory, or one view of it.

>>> study = generate_study(seed=7)                      # doctest: +SKIP
>>> view = study.view(Laterality.L, ViewPosition.MLO)    # doctest: +SKIP
>>> view.pixels.shape, view.truth.lesions                 # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mammocad.errors import SynthesisError
from mammocad.structures import FindingLabel, FloatArray, Laterality, ViewPosition
from mammocad.synthetic import defects as defect_ops
from mammocad.synthetic import marks
from mammocad.synthetic._random import stream
from mammocad.synthetic.enum import ChestWallSide, Defect, Density
from mammocad.synthetic.geometry import view_geometry
from mammocad.synthetic.plan import (
    BOTH_VIEWS,
    LesionRequest,
    StudyPlan,
    ViewPlan,
    plan_study,
)
from mammocad.synthetic.render import DrawnLesion, mirror_box, render_canonical
from mammocad.synthetic.truth import (
    BreastTruth,
    BurnedIn,
    LesionTruth,
    StudyTruth,
    ViewTruth,
)
from mammocad.synthetic.variants import Variant


@dataclass(frozen=True, slots=True, kw_only=True)
class PhantomView:
    """One rendered image: ``pixels`` is ``float32[rows, columns]`` in [0, 1], the ideal display
    image (0 black, 1 white) in the STORED orientation, with its truth."""

    pixels: FloatArray
    truth: ViewTruth

    @property
    def laterality(self) -> Laterality:
        return self.truth.laterality

    @property
    def view(self) -> ViewPosition:
        return self.truth.view


@dataclass(frozen=True, slots=True, kw_only=True)
class PhantomStudy:
    """Four views (RCC, LCC, RMLO, LMLO) and the study truth; ``views[i].truth`` is
    ``truth.views[i]``."""

    views: tuple[PhantomView, ...]
    truth: StudyTruth

    def view(self, laterality: Laterality, view: ViewPosition) -> PhantomView:
        for item in self.views:
            if item.laterality is laterality and item.view is view:
                return item
        raise KeyError(f"the study has no {laterality.value} {view.value} view")


def chest_wall_side(variant: Variant, laterality: Laterality) -> ChestWallSide:
    """Usual hanging: right breasts with the chest wall on the right, left ones on the left;
    the quirk variant stores right breasts like left ones."""
    if laterality is Laterality.R and not variant.right_chest_wall_left:
        return ChestWallSide.RIGHT
    return ChestWallSide.LEFT


def _lesion_truth(
    drawn: list[DrawnLesion], columns: int, mirrored: bool
) -> tuple[LesionTruth, ...]:
    return tuple(
        LesionTruth(
            lesion_id=item.lesion.lesion_id,
            label=item.lesion.label,
            malignant=item.lesion.malignant,
            box=mirror_box(item.box, columns) if mirrored else item.box,
            nipple_distance_mm=item.lesion.depth_mm,
        )
        for item in drawn
    )


def _burn_in(
    image: FloatArray, plan: StudyPlan, view_plan: ViewPlan, side: ChestWallSide
) -> tuple[BurnedIn, ...]:
    items: list[BurnedIn] = []
    if plan.variant.burned_in_label:
        text = f"{view_plan.laterality.value} {view_plan.view.value}"
        items.append(marks.burn_in_label(image, text, side))
    if plan.variant.lead_marker:
        rng = stream(plan.seed, "marker", view_plan.laterality.value, view_plan.view.value)
        avoid = items[0].box if items else None
        items.append(marks.burn_in_marker(image, view_plan.laterality.value, side, rng, avoid))
    return tuple(items)


def render_view(plan: StudyPlan, view_plan: ViewPlan) -> PhantomView:
    """Render one planned view with its truth, in the stored orientation."""
    breast = plan.breasts[view_plan.laterality]
    grid = plan.variant.grid
    geom = view_geometry(breast.shape, grid, view_plan.view, cut_off=view_plan.cut_off)
    image, drawn = render_canonical(
        seed=plan.seed,
        laterality=view_plan.laterality,
        view=view_plan.view,
        geom=geom,
        lesions=breast.lesions,
        grid_shape=(grid.rows, grid.columns),
        spacing_mm=grid.spacing_mm,
        appearance=breast.appearance,
    )
    rng = stream(plan.seed, "defects", view_plan.laterality.value, view_plan.view.value)
    image = defect_ops.apply_to_anatomy(image, view_plan.defects, rng, grid.spacing_mm)
    side = chest_wall_side(plan.variant, view_plan.laterality)
    mirrored = side is ChestWallSide.RIGHT
    if mirrored:
        image = np.ascontiguousarray(image[:, ::-1])
    image = defect_ops.replace_anatomy(image, view_plan.defects, rng)
    has_anatomy = not defect_ops.NO_ANATOMY.intersection(view_plan.defects)
    nipple_x, nipple_y = geom.nipple[0] / grid.spacing_mm, geom.nipple[1] / grid.spacing_mm
    nipple_in = 0 <= nipple_x <= grid.columns and 0 <= nipple_y <= grid.rows and has_anatomy
    if mirrored:
        nipple_x = grid.columns - nipple_x
    truth = ViewTruth(
        sop_instance_uid=view_plan.sop_instance_uid,
        file_name=None,
        laterality=view_plan.laterality,
        view=view_plan.view,
        rows=grid.rows,
        columns=grid.columns,
        pixel_spacing_mm=grid.spacing_mm,
        chest_wall_side=side,
        nipple=(nipple_x, nipple_y) if nipple_in else None,
        lesions=_lesion_truth(drawn, grid.columns, mirrored) if has_anatomy else (),
        defects=view_plan.defects,
        burned_in=_burn_in(image, plan, view_plan, side),
    )
    return PhantomView(pixels=image, truth=truth)


def study_truth(plan: StudyPlan, views: Sequence[ViewTruth]) -> StudyTruth:
    """The truth of a rendered study."""
    breasts = tuple(
        BreastTruth(
            laterality=side, density=plan.breasts[side].density, lesions=plan.breasts[side].lesions
        )
        for side in (Laterality.R, Laterality.L)
    )
    return StudyTruth(
        study_instance_uid=plan.study_instance_uid,
        series_instance_uid=plan.series_instance_uid,
        accession_number=plan.accession_number,
        study_date=plan.study_date,
        patient=plan.patient,
        seed=plan.seed,
        size=plan.size,
        variant=plan.variant,
        breasts=breasts,
        views=tuple(views),
    )


def generate_study(
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
) -> PhantomStudy:
    """Render a four-view phantom study; the same arguments always give the same study.

    Args:
        seed: non-negative integer; everything (pixels, UIDs, truth) follows from it.
        size: ``"small"`` (640×512, 0.364 mm) or ``"full"`` (3328×2560 at 0.07 mm or
            2294×1914 at 0.1 mm, chosen by the seed). Ignored when ``variant`` is given.
        malignant: force a malignant lesion (True) or none (False); ``None`` draws it with
            ``malignant_rate``. Ignored when ``lesions`` is given.
        benign_rate: share of studies with benign findings (independent of malignancy).
        density: BI-RADS density of both breasts; ``None`` draws it (10/40/40/10 %).
        lesions: explicit lesions per breast instead of the random composition.
        one_view_rate: share of (random) lesions visible in one view only.
        defect_rate: probability that an image gets one random defect.
        defects: explicit defects per (laterality, view), instead of ``defect_rate``.
        variant: vendor variant; ``None`` draws it from the seed.

    Raises:
        SynthesisError: for requests the phantom cannot produce (bad size, rates outside
            [0, 1], a lesion that does not fit).
    """
    plan = plan_study(
        seed=seed,
        size=size,
        malignant=malignant,
        malignant_rate=malignant_rate,
        benign_rate=benign_rate,
        density=density,
        lesions=lesions,
        one_view_rate=one_view_rate,
        defect_rate=defect_rate,
        defects=defects,
        variant=variant,
    )
    views = tuple(render_view(plan, view_plan) for view_plan in plan.views)
    return PhantomStudy(views=views, truth=study_truth(plan, [v.truth for v in views]))


def generate_view(
    *,
    seed: int,
    laterality: Laterality = Laterality.L,
    view: ViewPosition = ViewPosition.CC,
    size: str = "small",
    density: Density | None = None,
    lesions: Sequence[LesionRequest] = (),
    defects: Sequence[Defect] = (),
    variant: Variant | None = None,
) -> PhantomView:
    """Render one view only (about a quarter of the cost of a study), for unit tests.

    ``lesions`` all go into this breast; the view shows those whose ``views`` include it.
    """
    if view not in BOTH_VIEWS:
        raise SynthesisError(f"the phantom renders CC and MLO views only, not {view.value}")
    for request in lesions:
        if view is ViewPosition.CC and request.label is FindingLabel.LYMPH_NODE:
            raise SynthesisError(
                "axillary lymph nodes show on MLO only; render view=ViewPosition.MLO"
            )
    plan = plan_study(
        seed=seed,
        size=size,
        malignant=False,
        density=density,
        lesions={laterality: lesions},
        defects={(laterality, view): defects},
        variant=variant,
    )
    return render_view(plan, plan.view(laterality, view))
