"""A contact sheet of a phantom study for eyes: the four views hung RCC | LCC over
RMLO | LMLO (as stored), truth boxes drawn (red malignant, green benign), nipples marked."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.structures import Laterality, ViewPosition
from mammocad.synthetic.study import PhantomStudy, PhantomView

HANGING = (
    ((Laterality.R, ViewPosition.CC), (Laterality.L, ViewPosition.CC)),
    ((Laterality.R, ViewPosition.MLO), (Laterality.L, ViewPosition.MLO)),
)
_RED, _GREEN, _CYAN, _YELLOW = (40, 40, 230), (60, 200, 60), (230, 200, 40), (40, 220, 240)


def _tile(view: PhantomView, scale: float) -> npt.NDArray[np.uint8]:
    rows, cols = view.pixels.shape
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    grey = cv2.resize(view.pixels, size, interpolation=cv2.INTER_AREA)
    tile = cv2.cvtColor(np.round(grey * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    for lesion in view.truth.lesions:
        x1, y1, x2, y2 = (round(v * scale) for v in lesion.box)
        colour = _RED if lesion.malignant else _GREEN
        cv2.rectangle(tile, (x1 - 2, y1 - 2), (x2 + 2, y2 + 2), colour, 1, cv2.LINE_AA)
        label = f"{lesion.lesion_id} {lesion.label.value}"
        cv2.putText(
            tile,
            label,
            (x1, max(y1 - 5, 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            _YELLOW,
            1,
            cv2.LINE_AA,
        )
    if view.truth.nipple is not None:
        x, y = (round(v * scale) for v in view.truth.nipple)
        cv2.circle(tile, (x, y), 3, _CYAN, -1, cv2.LINE_AA)
    name = f"{view.laterality.value}{view.view.value}"
    cv2.putText(
        tile, name, (size[0] // 2 - 16, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _CYAN, 1, cv2.LINE_AA
    )
    return np.asarray(tile, dtype=np.uint8)


def contact_sheet(study: PhantomStudy, *, tile_width: int = 320) -> npt.NDArray[np.uint8]:
    """``uint8[H, W, 3]`` BGR image (for ``cv2.imwrite``) of the four views with truth."""
    columns = study.truth.variant.grid.columns
    scale = tile_width / columns
    rows = [
        np.concatenate([_tile(study.view(*key), scale) for key in row], axis=1) for row in HANGING
    ]
    gap = np.full((4, rows[0].shape[1], 3), 80, dtype=np.uint8)
    return np.concatenate([rows[0], gap, rows[1]], axis=0)
