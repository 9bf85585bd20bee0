"""Phantom studies (:mod:`mammocad.synthetic`) as a detector data source.

Phantoms annotate every class, the nipple included, so nothing on them is unknown. Views with
an acquisition defect (noise, blank, burn-out…) are left out: they train the quality gate, not
the detector.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mammocad.datasets.records import NIPPLE, LesionAnnotation
from mammocad.datasets.samples import make_sample
from mammocad.detect.containers import DetectionTarget
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


def _to_arrays(samples: list[DetectionSample]) -> list[dict[str, Any]]:
    # numpy crosses process boundaries by plain pickling; torch tensors would go through
    # shared-memory file descriptors, one per tensor, which runs out at thousands of samples
    return [
        {
            "image_id": s.image_id,
            "image": s.image.numpy(),
            "boxes": s.target.boxes.numpy(),
            "labels": s.target.labels.numpy(),
            "malignant": s.target.malignant.numpy(),
            "annotated": s.target.annotated.numpy(),
        }
        for s in samples
    ]


def _from_arrays(arrays: list[dict[str, Any]]) -> Iterator[DetectionSample]:
    for item in arrays:
        target = DetectionTarget(
            boxes=torch.from_numpy(item["boxes"]),
            labels=torch.from_numpy(item["labels"]),
            malignant=torch.from_numpy(item["malignant"]),
            annotated=torch.from_numpy(item["annotated"]),
        )
        yield DetectionSample(
            image_id=item["image_id"],
            image=torch.from_numpy(item["image"]),
            target=target,
            source=SOURCE,
        )


def _study_arrays(
    spec: PhantomSpec, index: int, classes: Sequence[str], params: PreprocessParams
) -> list[dict[str, Any]]:
    return _to_arrays(_study_samples(spec, index, classes, params))


def phantom_samples(
    spec: PhantomSpec,
    *,
    classes: Sequence[str],
    params: PreprocessParams,
    workers: int = 1,
) -> Iterator[DetectionSample]:
    """Training samples of ``spec``'s studies, in study order; ``workers`` processes render."""
    indices = range(spec.n_studies)
    if workers <= 1:
        for index in indices:
            yield from _study_samples(spec, index, classes, params)
        return
    # forkserver: a forked child inherits the parent's OpenCV and OpenMP thread pools in a
    # locked state once the parent has used them, and hangs
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_study_arrays, spec, i, classes, params) for i in indices]
        for future in futures:
            yield from _from_arrays(future.result())
