"""Small synthetic mammograms for the preprocessing tests, built with numpy and OpenCV.

A half-ellipse breast hangs from one vertical edge, brighter towards the chest wall (it is
thicker there) with blurred-noise texture; MLO views add a bright pectoral triangle at the
top of the chest wall. Film-like extras: a noisy grey background, a burned-in label with text,
a lead marker. Everything is returned with its truth so tests can measure against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from mammocad.structures import BoolArray, FloatArray, Image, Laterality, ViewPosition


@dataclass(frozen=True, slots=True, kw_only=True)
class Phantom:
    """Pixels plus truth, all in the stored (original) grid."""

    pixels: FloatArray
    breast: BoolArray  # tissue truth, pectoral included
    pectoral: BoolArray  # empty on CC views
    label_box: tuple[int, int, int, int] | None  # [x1, y1, x2, y2)
    marker_centre: tuple[int, int] | None
    apex: tuple[float, float]  # the breast's point furthest from the chest wall (x, y)
    chest_wall_right: bool

    def image(
        self,
        *,
        view: ViewPosition,
        laterality: Laterality | None,
        padding_mask: BoolArray | None = None,
    ) -> Image:
        return Image(
            source="phantom.png",
            sop_instance_uid="1.2.826.0.1.3680043.8.498.1",
            laterality=laterality,
            view=view,
            rows=self.pixels.shape[0],
            columns=self.pixels.shape[1],
            pixels=self.pixels,
            padding_mask=padding_mask,
        )


PhantomFactory = Callable[..., Phantom]


def make_phantom(
    *,
    rows: int = 1200,
    cols: int = 960,
    chest_wall_right: bool = False,
    pectoral: bool = False,
    label: bool = True,
    marker: bool = True,
    depth: float = 0.62,
    seed: int = 0,
) -> Phantom:
    """A breast whose chest wall is the left (or right) image edge; see the module docstring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    # work chest-wall-left, mirror at the end; an MLO breast runs off the top edge (axilla)
    half_height, reach = (0.52 if pectoral else 0.42) * rows, depth * cols
    centre_y = (0.45 if pectoral else 0.5) * rows
    radius = np.sqrt((xx / reach) ** 2 + ((yy - centre_y) / half_height) ** 2)
    breast = radius < 1.0
    thickness = np.sqrt(np.clip(1.0 - radius**2, 0.0, 1.0))
    texture = cv2.GaussianBlur(rng.normal(0.0, 1.0, (rows, cols)).astype(np.float32), (0, 0), 9)
    texture *= 0.08 / max(float(texture.std()), 1e-6)
    pixels = np.where(breast, 0.25 + 0.4 * thickness + texture * thickness, 0.0)
    muscle = np.zeros((rows, cols), dtype=bool)
    if pectoral:
        triangle = np.array([[0, 0], [int(0.2 * cols), 0], [0, int(0.5 * rows)]], np.int32)
        canvas = np.zeros((rows, cols), np.uint8)
        cv2.fillPoly(canvas, [triangle], 1)
        muscle = (canvas > 0) & breast
        pixels = np.where(muscle, 0.82 + 0.3 * texture, pixels)
    background = 0.04 + rng.normal(0.0, 0.012, (rows, cols)).astype(np.float32)
    pixels = np.where(breast, pixels, background)
    label_box = None
    if label:
        x1, y1 = int(0.74 * cols), int(0.04 * rows)
        label_box = (x1, y1, x1 + int(0.2 * cols), y1 + int(0.06 * rows))
        plate = np.full((label_box[3] - y1, label_box[2] - x1), 242, np.uint8)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(plate, "L CC", (8, plate.shape[0] - 14), font, 1.4, 25, 3)  # uint8 only
        pixels[y1 : label_box[3], x1 : label_box[2]] = plate.astype(np.float32) / 255
    marker_centre = None
    if marker:
        marker_centre = (int(0.92 * cols), int(0.86 * rows))
        cv2.circle(pixels, marker_centre, max(4, cols // 80), 0.98, -1)
    apex = (reach, centre_y)
    pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    if chest_wall_right:
        pixels, breast, muscle = pixels[:, ::-1], breast[:, ::-1], muscle[:, ::-1]
        apex = (cols - apex[0], apex[1])
        if label_box is not None:
            label_box = (cols - label_box[2], label_box[1], cols - label_box[0], label_box[3])
        if marker_centre is not None:
            marker_centre = (cols - 1 - marker_centre[0], marker_centre[1])
    return Phantom(
        pixels=np.ascontiguousarray(pixels),
        breast=np.ascontiguousarray(breast),
        pectoral=np.ascontiguousarray(muscle),
        label_box=label_box,
        marker_centre=marker_centre,
        apex=apex,
        chest_wall_right=chest_wall_right,
    )


@pytest.fixture
def phantom() -> PhantomFactory:
    """``phantom(chest_wall_right=..., pectoral=..., ...)`` → :class:`Phantom`."""
    return make_phantom


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 1.0


@pytest.fixture
def mask_iou() -> Callable[[np.ndarray, np.ndarray], float]:
    return iou
