"""A seconds-fast toy detection set: smoke tests of the training loop, not phantoms.

Each image is a half-disc "breast" against the left edge with smooth texture and noise, and up
to two lesions: a **mass** is a bright Gaussian blob (malignant ones larger, brighter and with
an irregular, spiky edge), a **calcification** is a cluster of 1–2 px bright dots (malignant
ones denser). A **nipple** bump sits on the skin line at mid-height. Channel 1 is a local
contrast image (the input minus its blurred self), in the spirit of the preprocessed second
channel. Realistic phantoms are :mod:`mammocad.synthetic`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import torch

from mammocad.detect.config import DEFAULT_CLASSES, NIPPLE
from mammocad.detect.containers import DetectionTarget
from mammocad.train.data import DetectionSample

Array = npt.NDArray[np.float32]


def make_toy_samples(
    count: int,
    *,
    size: tuple[int, int] = (256, 208),
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_CLASSES,
    source: str = "toy",
    empty_fraction: float = 0.25,
) -> list[DetectionSample]:
    """``count`` samples of ``size`` (rows, columns); ``empty_fraction`` have no lesion."""
    rng = np.random.default_rng(seed)
    return [
        _sample(f"{source}-{i:05d}", size, rng, tuple(classes), source, empty_fraction)
        for i in range(count)
    ]


def _sample(
    image_id: str,
    size: tuple[int, int],
    rng: np.random.Generator,
    classes: tuple[str, ...],
    source: str,
    empty_fraction: float,
) -> DetectionSample:
    rows, cols = size
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    radius = rng.uniform(0.8, 0.95) * min(rows / 2, cols)
    centre_y = rows / 2 + rng.uniform(-0.05, 0.05) * rows
    breast = ((xx**2 + (yy - centre_y) ** 2) <= radius**2).astype(np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 1, size).astype(np.float32), (0, 0), 6)
    image = breast * (0.35 + 0.08 * texture / (np.abs(texture).max() + 1e-6))
    count = int(rng.integers(1, 3)) if rng.random() >= empty_fraction else 0
    boxes, labels, malignant = _draw_lesions(image, xx, yy, rng, classes, count, centre_y, radius)
    if NIPPLE in classes:
        boxes.append(_nipple(image, xx, yy, centre_y, radius))
        labels.append(classes.index(NIPPLE))
        malignant.append(-1)
    image = np.clip(image + rng.normal(0, 0.01, size).astype(np.float32), 0, 1) * (breast > 0)
    contrast = np.clip(0.5 + 4 * (image - cv2.GaussianBlur(image, (0, 0), 4)), 0, 1) * breast
    box_array = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    box_array[:, 0::2] = box_array[:, 0::2].clip(0, cols)
    box_array[:, 1::2] = box_array[:, 1::2].clip(0, rows)
    target = DetectionTarget(
        boxes=torch.from_numpy(box_array),
        labels=torch.tensor(labels, dtype=torch.int64),
        malignant=torch.tensor(malignant, dtype=torch.int64),
        annotated=torch.ones(len(classes), dtype=torch.bool),
    )
    pixels = torch.from_numpy(np.stack([image, contrast]).astype(np.float32))
    return DetectionSample(image_id=image_id, image=pixels, target=target, source=source)


def _draw_lesions(
    image: Array,
    xx: Array,
    yy: Array,
    rng: np.random.Generator,
    classes: tuple[str, ...],
    count: int,
    centre_y: float,
    radius: float,
) -> tuple[list[list[float]], list[int], list[int]]:
    """Draw ``count`` masses or calcification clusters, half of them malignant, into ``image``."""
    boxes: list[list[float]] = []
    labels: list[int] = []
    malignant: list[int] = []
    kinds = [k for k in ("mass", "calcification") if k in classes]
    for _ in range(count if kinds else 0):
        kind = kinds[int(rng.integers(len(kinds)))]
        bad = int(rng.random() < 0.5)
        draw = _mass if kind == "mass" else _calcification
        boxes.append(draw(image, xx, yy, rng, centre_y, radius * 0.75, bad))
        labels.append(classes.index(kind))
        malignant.append(bad)
    return boxes, labels, malignant


def _place(
    rng: np.random.Generator, centre_y: float, reach: float, margin: float
) -> tuple[float, float]:
    """A point well inside the breast half-disc."""
    angle = rng.uniform(-1.2, 1.2)
    distance = rng.uniform(0.25, 1.0) * (reach - margin)
    return distance * np.cos(angle) + margin, centre_y + distance * np.sin(angle)


def _mass(
    image: Array,
    xx: Array,
    yy: Array,
    rng: np.random.Generator,
    centre_y: float,
    reach: float,
    malignant: int,
) -> list[float]:
    r = rng.uniform(9, 16) if malignant else rng.uniform(6, 11)
    cx, cy = _place(rng, centre_y, reach, r * 1.5)
    angle = np.arctan2(yy - cy, xx - cx)
    # spiculated edge for malignant masses: the radius wobbles with angle
    edge = r * (1 + (0.35 * np.cos(7 * angle + rng.uniform(0, 6)) if malignant else 0))
    blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (edge / 1.6) ** 2)))
    image += (0.35 if malignant else 0.25) * blob
    extent = r * (1.35 if malignant else 1.0) * 1.3
    return [cx - extent, cy - extent, cx + extent, cy + extent]


def _calcification(
    image: Array,
    xx: Array,
    yy: Array,
    rng: np.random.Generator,
    centre_y: float,
    reach: float,
    malignant: int,
) -> list[float]:
    spread = rng.uniform(5, 9)
    cx, cy = _place(rng, centre_y, reach, spread * 2)
    dots = rng.normal(0, spread / 2, size=(int(rng.integers(8, 14) if malignant else 4), 2))
    for dx, dy in dots:
        image += 0.5 * np.exp(-(((xx - cx - dx) ** 2 + (yy - cy - dy) ** 2) / (2 * 0.8**2)))
    lo = dots.min(axis=0) - 3
    hi = dots.max(axis=0) + 3
    return [cx + lo[0], cy + lo[1], cx + hi[0], cy + hi[1]]


def _nipple(image: Array, xx: Array, yy: Array, centre_y: float, radius: float) -> list[float]:
    size = 7.0
    cx = radius - size * 0.6
    bump = np.exp(-(((xx - cx) ** 2 + (yy - centre_y) ** 2) / (2 * (size / 1.5) ** 2)))
    image += 0.25 * bump
    return [cx - size, centre_y - size, cx + size, centre_y + size]
