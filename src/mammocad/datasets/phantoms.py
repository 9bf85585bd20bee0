"""Phantom studies (:mod:`mammocad.synthetic`) as a detector data source.

Phantoms annotate every class, the nipple included, so nothing on them is unknown. Views with
an acquisition defect (noise, blank, burn-out…) are left out: they train the quality gate, not
the detector.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from mammocad.datasets.records import NIPPLE, LesionAnnotation
from mammocad.datasets.samples import make_sample, prepare_samples
from mammocad.errors import PreprocessError
from mammocad.preprocess import PreprocessParams
from mammocad.structures import FindingLabel, Image
from mammocad.synthetic import PhantomView, generate_study
from mammocad.train.data import DetectionSample

SOURCE = "phantom"
ANNOTATED_LABELS = frozenset({*(label.value for label in FindingLabel), NIPPLE})


@dataclass(frozen=True, kw_only=True)
class PhantomSpec:
    """Which phantom studies: ``n_studies`` from ``seed`` at ``size`` (small or full)."""

    n_studies: int
    seed: int
    size: str = "full"
    malignant_rate: float = 0.4
    benign_rate: float = 0.4
    one_view_rate: float = 0.0


def study_seed(seed: int, index: int) -> int:
    """Seed of study ``index`` of a phantom set: independent streams per (seed, index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


def view_image(view: PhantomView, *, source: str) -> Image:
    truth = view.truth
    return Image(
        source=source,
        sop_instance_uid=truth.sop_instance_uid,
        laterality=truth.laterality,
        view=truth.view,
        rows=truth.rows,
        columns=truth.columns,
        pixel_spacing_mm=(truth.pixel_spacing_mm, truth.pixel_spacing_mm),
        pixels=view.pixels,
    )


def view_lesions(view: PhantomView) -> tuple[LesionAnnotation, ...]:
    return tuple(
        LesionAnnotation(
            label=lesion.label,
            box=tuple(lesion.box),  # type: ignore[arg-type]
            malignant=lesion.malignant,
            lesion_id=lesion.lesion_id,
        )
        for lesion in view.truth.lesions
    )


def _study_samples(
    spec: PhantomSpec, index: int, classes: Sequence[str], params: PreprocessParams
) -> list[DetectionSample]:
    study = generate_study(
        seed=study_seed(spec.seed, index),
        size=spec.size,
        malignant_rate=spec.malignant_rate,
        benign_rate=spec.benign_rate,
        one_view_rate=spec.one_view_rate,
    )
    samples = []
    for view in study.views:
        if view.truth.defects:
            continue
        image = view_image(view, source=f"{SOURCE}:{spec.seed}:{index}")
        try:
            samples.append(
                make_sample(
                    image,
                    image_id=view.truth.sop_instance_uid,
                    source=SOURCE,
                    lesions=view_lesions(view),
                    nipple=view.truth.nipple,
                    annotated=ANNOTATED_LABELS,
                    classes=classes,
                    params=params,
                )
            )
        except PreprocessError:
            continue
    return samples


def phantom_samples(
    spec: PhantomSpec,
    *,
    classes: Sequence[str],
    params: PreprocessParams,
    workers: int = 1,
) -> Iterator[DetectionSample]:
    """Training samples of ``spec``'s studies, in study order; ``workers`` processes render."""
    return prepare_samples(
        partial(_study_samples, spec),
        range(spec.n_studies),
        classes=classes,
        params=params,
        workers=workers,
    )
