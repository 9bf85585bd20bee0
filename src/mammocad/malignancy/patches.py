"""Training windows for the lesion classifier, cut once from detector training samples.

Each annotated lesion with known malignancy gives a :class:`LesionPatch`: the region of the
model input around it, :data:`PATCH_EXTENT` × its window side, kept as float16 with the lesion
box in patch pixels. Training jitters the box inside the patch (shift and scale, as a
detector's regressed box would be off) and reads the window with the same
:func:`~mammocad.malignancy.model.crop_windows` as inference, so the patch only has to be large
enough that the jittered window stays inside it.

Background patches (label 0) are drawn on tissue away from every annotated box, sized like
lesions: at inference the classifier also sees the detector's false positives, and a box of
plain tissue should read as not malignant, which lowers those false positives in the
``score × malignancy`` ranking.

Hard negatives (label 0) are the detector's own false positives on the training images: its
highest-scoring boxes that touch no annotated lesion. Random tissue is mostly easy; what the
classifier meets at inference are dense-tissue crossings and other lesion look-alikes that
the detector proposed, and those are what it must learn to call not malignant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mammocad.detect.containers import Detections
from mammocad.malignancy.model import ClassifierConfig, window_boxes
from mammocad.train.data import DetectionSample

#: jitter bounds used in training: the box scales by up to ×1.25 and shifts by up to 0.15 of
#: its side, so the jittered window reaches at most 0.625 + 0.075 = 0.7 window sides from the
#: lesion centre; a patch of PATCH_EXTENT = 1.6 window sides (0.8 each way) holds it
MAX_SCALE = 1.25
MAX_SHIFT = 0.15
PATCH_EXTENT = 1.6
#: background boxes: side drawn log-uniformly in this range of input pixels (lesion-like)
BACKGROUND_SIDES = (16.0, 128.0)
BACKGROUND = "background"
HARD_NEGATIVE = "hard_negative"
#: kinds of patch that are not lesions (label 0 by construction)
NOT_LESION = frozenset({BACKGROUND, HARD_NEGATIVE})
#: tissue: first input channel above this (the preprocessed background is 0)
TISSUE_LEVEL = 0.05


@dataclass(frozen=True, kw_only=True)
class LesionPatch:
    patch: Tensor  # float16[C, h, w], a region of the model input
    box: tuple[float, float, float, float]  # the lesion box in patch pixels
    malignant: int  # 1 or 0
    kind: str  # the lesion class, or "background"
    image_id: str
    source: str


def _region(
    box: Tensor, config: ClassifierConfig, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Integer ``(x0, y0, x1, y1)`` of the patch around ``box``, clipped to the image."""
    window = window_boxes(box.view(1, 4).float(), config)[0]
    centre_x, centre_y = float(window[0] + window[2]) / 2, float(window[1] + window[3]) / 2
    half = float(window[2] - window[0]) * PATCH_EXTENT / 2
    rows, cols = shape
    return (
        max(0, math.floor(centre_x - half)),
        max(0, math.floor(centre_y - half)),
        min(cols, math.ceil(centre_x + half)),
        min(rows, math.ceil(centre_y + half)),
    )


def _patch(
    sample: DetectionSample, box: Tensor, config: ClassifierConfig, *, malignant: int, kind: str
) -> LesionPatch:
    x0, y0, x1, y1 = _region(box, config, tuple(sample.image.shape[1:]))  # type: ignore[arg-type]
    region = sample.image[:, y0:y1, x0:x1].to(torch.float16).clone()
    b = box.tolist()
    return LesionPatch(
        patch=region,
        box=(b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0),
        malignant=malignant,
        kind=kind,
        image_id=sample.image_id,
        source=sample.source,
    )


def _touches(boxes: Tensor, box: Tensor) -> bool:
    """Whether ``box`` overlaps (or touches) any of ``boxes`` (``[N, 4]``)."""
    if not len(boxes):
        return False
    gap = torch.maximum(  # ≤ 0 on both axes: the boxes meet
        torch.maximum(boxes[:, 0] - box[2], box[0] - boxes[:, 2]),
        torch.maximum(boxes[:, 1] - box[3], box[1] - boxes[:, 3]),
    )
    return bool((gap <= 0).any())


def hard_negative_boxes(
    sample: DetectionSample, found: Detections, *, count: int, landmark: int
) -> list[Tensor]:
    """Up to ``count`` of the detector's boxes ``found`` on ``sample`` (best score first) that
    touch no annotated lesion box of the sample, of a lesion class its source annotates (a box
    of an unannotated class may be a real lesion nobody outlined). A lesion box on the nipple
    is a false positive like any other: the nipple is a hard negative by design."""
    target = sample.target
    annotated = target.annotated
    lesions = target.boxes[target.labels != landmark]
    boxes: list[Tensor] = []
    for index in torch.argsort(found.scores, descending=True).tolist():
        if len(boxes) == count:
            break
        label = int(found.labels[index])
        if label == landmark or not bool(annotated[label]):
            continue
        box = found.boxes[index].float().cpu()
        if _touches(lesions, box):
            continue
        boxes.append(box)
    return boxes


def _background_boxes(
    sample: DetectionSample, count: int, rng: np.random.Generator
) -> list[Tensor]:
    tissue = (sample.image[0] > TISSUE_LEVEL).nonzero()
    if len(tissue) == 0 or count <= 0:
        return []
    truths = sample.target.boxes
    boxes: list[Tensor] = []
    for _ in range(count * 4):  # a few tries each: draws landing on a lesion are discarded
        if len(boxes) == count:
            break
        y, x = (float(v) for v in tissue[int(rng.integers(len(tissue)))])
        low, high = BACKGROUND_SIDES
        half = math.exp(rng.uniform(math.log(low), math.log(high))) / 2
        box = torch.tensor([x - half, y - half, x + half, y + half])
        if _touches(truths, box):
            continue
        boxes.append(box)
    return boxes


def sample_patches(
    samples: Iterable[DetectionSample],
    *,
    classes: Sequence[str],
    landmark: int,
    config: ClassifierConfig,
    background_per_image: int = 1,
    detect: Callable[[DetectionSample], Detections] | None = None,
    hard_negatives_per_image: int = 0,
    seed: int = 0,
) -> list[LesionPatch]:
    """Lesion patches (known malignancy, landmark excluded), background patches and, with
    ``detect`` (a detector's boxes on a sample, input pixels), up to
    ``hard_negatives_per_image`` hard negatives (:func:`hard_negative_boxes`)."""
    rng = np.random.default_rng(seed)
    patches: list[LesionPatch] = []
    for sample in samples:
        target = sample.target
        for box, label, malignant in zip(
            target.boxes, target.labels.tolist(), target.malignant.tolist(), strict=True
        ):
            if label == landmark or malignant < 0:
                continue
            patches.append(
                _patch(sample, box, config, malignant=int(malignant), kind=classes[label])
            )
        for box in _background_boxes(sample, background_per_image, rng):
            patches.append(_patch(sample, box, config, malignant=0, kind=BACKGROUND))
        if detect is not None and hard_negatives_per_image > 0:
            found = detect(sample)
            for box in hard_negative_boxes(
                sample, found, count=hard_negatives_per_image, landmark=landmark
            ):
                patches.append(_patch(sample, box, config, malignant=0, kind=HARD_NEGATIVE))
    return patches


def jittered_boxes(patches: Sequence[LesionPatch], rng: np.random.Generator | None) -> list[Tensor]:
    """One box per patch, moved and rescaled at random (``rng`` None: the boxes as they are)."""
    boxes = []
    for item in patches:
        x0, y0, x1, y1 = item.box
        if rng is not None:
            side = max(x1 - x0, y1 - y0)
            scale = math.exp(rng.uniform(-math.log(MAX_SCALE), math.log(MAX_SCALE)))
            dx, dy = rng.uniform(-MAX_SHIFT, MAX_SHIFT, 2) * side
            cx, cy = (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy
            hw, hh = (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
            x0, y0, x1, y1 = cx - hw, cy - hh, cx + hw, cy + hh
        boxes.append(torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32))
    return boxes


def save_patches(patches: Sequence[LesionPatch], path: str) -> None:
    torch.save([vars_of(p) for p in patches], path)


def load_patches(path: str) -> list[LesionPatch]:
    return [LesionPatch(**item) for item in torch.load(path, weights_only=True)]


def vars_of(patch: LesionPatch) -> dict[str, object]:
    return {
        "patch": patch.patch,
        "box": patch.box,
        "malignant": patch.malignant,
        "kind": patch.kind,
        "image_id": patch.image_id,
        "source": patch.source,
    }
