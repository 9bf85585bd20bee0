"""Nipple position from the breast outline, chest wall on the LEFT, working grid.

The nipple is taken as the point of the skin line furthest from the chest wall: on CC views
from the chest-wall column, on lateral views from the pectoral edge (the posterior nipple line
of positioning guidelines runs from the nipple perpendicular to the pectoral muscle). It is
an estimate of the breast's apex, not a detection of the nipple itself; a flat front takes the
middle of its flat part.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.preprocess.pectoral import PectoralBoundary
from mammocad.structures import BoolArray

_CUT_OFF_SHARE = 0.05  # breast height touching the far image edge that makes the outline unusable
_TIE = 1.0  # working pixels: points this close to the maximum distance are equally far


def find_nipple(tissue: BoolArray, pectoral: PectoralBoundary | None) -> tuple[float, float] | None:
    """(x, y) working-grid indices (pixel centres at integers) of the nipple, or None.

    None when the outline cannot be trusted: the breast runs off the image edge opposite the
    chest wall, or its furthest skin point lies on the top or bottom image edge (the breast is
    cut there, the apex is outside the image).
    """
    rows, cols = tissue.shape
    breast_rows = np.flatnonzero(tissue.any(axis=1))
    if breast_rows.size == 0:
        return None
    if tissue[:, -1].sum() > _CUT_OFF_SHARE * breast_rows.size:
        return None
    contours, _ = cv2.findContours(
        tissue.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float32)
    on_border = (
        (outline[:, 0] <= 0)
        | (outline[:, 1] <= 0)
        | (outline[:, 0] >= cols - 1)
        | (outline[:, 1] >= rows - 1)
    )
    skin = outline[~on_border]
    if skin.shape[0] < 3:
        return None
    distance = _distance_from_chest_wall(skin, pectoral, float(np.flatnonzero(tissue.any(0))[0]))
    apex = np.flatnonzero(distance >= distance.max() - _TIE)
    x, y = skin[apex[apex.size // 2]]
    if y <= 1 or y >= rows - 2:
        return None
    return float(x), float(y)


def _distance_from_chest_wall(
    points: np.ndarray, pectoral: PectoralBoundary | None, chest_wall_x: float
) -> np.ndarray:
    if pectoral is None:
        return np.asarray(points[:, 0] - chest_wall_x)
    (tx, ty), (bx, by) = pectoral.top, pectoral.bottom
    # signed distance from the line through the edge's end points, positive towards the nipple
    nx, ny = by - ty, tx - bx
    if nx < 0:
        nx, ny = -nx, -ny
    length = float(np.hypot(nx, ny)) or 1.0
    return np.asarray(((points[:, 0] - tx) * nx + (points[:, 1] - ty) * ny) / length)
