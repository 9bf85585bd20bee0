"""Annotated images → detector training samples, through the same preprocessing as inference.

Boxes go from ORIGINAL pixels to INPUT pixels with the image's own
:class:`~mammocad.structures.Transform`, so a model trained here sees lesions exactly where
inference will map its detections back from.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from mammocad.datasets.records import NIPPLE, LesionAnnotation
from mammocad.detect.containers import UNKNOWN_MALIGNANCY, DetectionTarget
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Image, PreprocessedImage
from mammocad.train.data import DetectionSample

#: Side of the square box that stands for the nipple landmark, in mm of breast.
NIPPLE_BOX_MM = 10.0
#: Boxes that shrink below this many input pixels after clipping carry no learnable signal.
MIN_BOX_PX = 2.0


def _nipple_box(prepared: PreprocessedImage, nipple: tuple[float, float]) -> list[float]:
    spacing = prepared.image.pixel_spacing_mm
    half_px = NIPPLE_BOX_MM / 2 / (spacing[1] if spacing else 0.2)
    x, y = nipple
    return [x - half_px, y - half_px, x + half_px, y + half_px]


def target_for(
    prepared: PreprocessedImage,
    *,
    lesions: Sequence[LesionAnnotation],
    nipple: tuple[float, float] | None,
    annotated: frozenset[str],
    classes: Sequence[str],
) -> DetectionTarget:
    """Ground truth in INPUT pixels for one preprocessed image.

    A lesion of a class the detector does not have (``classes`` a subset of the lesion
    classes, a mini-MIAS asymmetry) is left out, as one of a class its source does not mark
    would be: the ``annotated`` mask, built over ``classes`` only, has no entry for it.
    """
    lesions = [lesion for lesion in lesions if lesion.label.value in classes]
    original: list[list[float]] = [list(lesion.box) for lesion in lesions]
    labels = [classes.index(lesion.label.value) for lesion in lesions]
    malignant = [
        UNKNOWN_MALIGNANCY if lesion.malignant is None else int(lesion.malignant)
        for lesion in lesions
    ]
    if nipple is not None and NIPPLE in classes and NIPPLE in annotated:
        original.append(_nipple_box(prepared, nipple))
        labels.append(classes.index(NIPPLE))
        malignant.append(UNKNOWN_MALIGNANCY)
    mask = torch.tensor([name in annotated for name in classes], dtype=torch.bool)
    if not original:
        return DetectionTarget.empty(len(classes), mask)
    transform = prepared.transform
    boxes = transform.clip_to_content(transform.boxes_to_input(np.array(original)))
    keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_PX) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX)
    return DetectionTarget(
        boxes=torch.as_tensor(boxes[keep], dtype=torch.float32),
        labels=torch.as_tensor(np.array(labels)[keep], dtype=torch.int64),
        malignant=torch.as_tensor(np.array(malignant)[keep], dtype=torch.int64),
        annotated=mask,
    )


def make_sample(
    image: Image,
    *,
    image_id: str,
    source: str,
    lesions: Sequence[LesionAnnotation],
    nipple: tuple[float, float] | None,
    annotated: frozenset[str],
    classes: Sequence[str],
    params: PreprocessParams,
) -> DetectionSample:
    """Preprocess ``image`` and pair its input with the ground truth.

    Raises:
        PreprocessError: the image shows no breast (the caller decides whether to skip it).
    """
    prepared = preprocess_image(image, params)
    target = target_for(
        prepared, lesions=lesions, nipple=nipple, annotated=annotated, classes=classes
    )
    # float16 halves memory; the input carries 8-12 bits after the resize
    pixels = torch.from_numpy(np.ascontiguousarray(prepared.input)).to(torch.float16)
    return DetectionSample(image_id=image_id, image=pixels, target=target, source=source)


T = TypeVar("T")
#: ``make(item, classes, params)`` → the samples of one item (a study, a record); a
#: module-level function (or a partial of one), so a worker process can unpickle it.
SampleMaker = Callable[[T, Sequence[str], PreprocessParams], list[DetectionSample]]


def _to_arrays(samples: list[DetectionSample]) -> list[dict[str, Any]]:
    # numpy crosses process boundaries by plain pickling; torch tensors would go through
    # shared-memory file descriptors, one per tensor, which runs out at thousands of samples
    return [
        {
            "image_id": s.image_id,
            "source": s.source,
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
            source=item["source"],
        )


def _arrays_of(
    make: SampleMaker[T], item: T, classes: Sequence[str], params: PreprocessParams
) -> list[dict[str, Any]]:
    return _to_arrays(make(item, classes, params))


def prepare_samples(
    make: SampleMaker[T],
    items: Sequence[T],
    *,
    classes: Sequence[str],
    params: PreprocessParams,
    workers: int = 1,
) -> Iterator[DetectionSample]:
    """The samples of every item, in item order; ``workers`` > 1 prepares them in that many
    processes (reading, rendering and preprocessing are CPU-bound and single-threaded)."""
    if workers <= 1:
        for item in items:
            yield from make(item, classes, params)
        return
    # forkserver: a forked child inherits the parent's OpenCV and OpenMP thread pools in a
    # locked state once the parent has used them, and hangs
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_arrays_of, make, item, classes, params) for item in items]
        for future in futures:
            yield from _from_arrays(future.result())
