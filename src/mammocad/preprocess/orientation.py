"""Which vertical image edge the breast is attached to, and laterality from it.

The chest wall is found from the image, never assumed from the laterality tag: the two
disagree on mirrored files (the DDSM tissue-mask set stores right breasts both ways).

Storage convention: mammograms are stored as they are hung. In the standard hanging the two
CC (or MLO) views are shown back to back, chest walls at the centre, so the right breast's image
has its chest wall on the image's RIGHT edge (nipple pointing left) and the left breast's on the
LEFT edge. In DICOM terms the row direction of Patient Orientation (0020,0020), PS3.3
C.7.6.1.1.1, is then "P" (towards the chest wall) for a right breast and "A" for a left one.
Checked by looking at real files: CBIS-DDSM (P_00173, P_00820: RIGHT files have the chest wall
on the right, their burned-in "RCC"/"RMLO" labels read normally) and mini-MIAS (odd numbers,
right breasts, likewise). So a chest wall on the right means, by convention, a right breast.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammocad.preprocess.grid import U8Array
from mammocad.structures import BoolArray, Laterality

_INSET = 0.02  # share of the image width: how far inside the outline brightness is read
_DECISIVE_LEVELS = 10.0  # grey levels (of 255) between the two sides that decide on their own
_EDGE_BAND = 0.02  # share of the breast width inspected at each side of its bounding box
_ATTACHED = 0.2  # share of the breast's rows touching an image border that marks the chest wall
_DETACHED = 0.02  # ... while the other border is touched by at most this share
_CORE_LEVEL = 0.4  # the core: above this share of the way from background to the 90th percentile
_CORE_OPENING = 0.014  # opening of the core, of the long side: drops specks of a grainy region
_CORE_REACH = 0.045  # share of the image width: a row end this close to the core is the breast's
_MIN_CLEAN_ROWS = 0.1  # share of the rows, both ends the breast's, that the brightness cue needs


def chest_wall_on_right(smooth: U8Array, tissue: BoolArray, *, background: float) -> bool:
    """True when the breast (working grid, not mirrored) hangs from the image's right side.

    ``smooth`` is the median-smoothed working image, ``tissue`` the breast mask on it and
    ``background`` the background grey level the mask was found against.

    Main cue, brightness just inside the outline: row by row, the breast's leftmost and
    rightmost pixels are either skin (the breast thins towards the skin, so the tissue just
    inside is dark fat) or the chest-wall cut (the image or film edge, where the breast is at
    its thickest and brightest). The mean over rows decides. Unlike the outline's shape,
    this holds when the chest-wall cut is slanted (mini-MIAS mdb075, mdb220: bounding-box
    occupancy got those five wrong, brightness gets all 316 test images right).

    A dim region that joins the mask (film base, a painted-over label) moves a row's end off
    the breast, and that end then reads dim whichever side it is on. Such an end lies far from
    the breast's bright core (:func:`_ends_near_core`); rows whose two ends both lie near it
    decide when there are enough of them. The mean, not the median: a row whose chest-wall end
    is covered reads about alike at both ends and only dilutes the difference, where under the
    median such rows outvote the rest once they are half of them (docs/preprocessing.md).

    Fallback when both sides are about as bright: the side of the bounding box that the breast
    fills over more of its height (the chest-wall cut is long and straight).

    Before either: when the breast runs into one vertical image border over a long stretch and
    does not touch the other at all, that border is the chest wall — the detector's edge cuts
    the breast there. Only ends near the core count: a dim strip running off the image on the
    nipple side is not the breast. (A skin line brighter than the fat behind it can mislead the
    brightness cue on digital images; film is usually framed with a margin, so this rule rarely
    applies to it.)
    """
    rows = np.flatnonzero(tissue.any(axis=1))
    if rows.size == 0:
        raise ValueError("the tissue mask is empty; segment the breast before orienting it")
    band = tissue[rows]
    left = band.argmax(axis=1)
    right = band.shape[1] - 1 - band[:, ::-1].argmax(axis=1)
    near_left, near_right = _ends_near_core(smooth, tissue, background, rows, (left, right))
    attached = _attached_border(tissue.shape[1], left, right, near_left, near_right)
    if attached is not None:
        return attached
    clean = near_left & near_right
    if np.count_nonzero(clean) >= _MIN_CLEAN_ROWS * rows.size:
        rows, left, right = rows[clean], left[clean], right[clean]
    inset = max(2, round(_INSET * tissue.shape[1]))
    wide = right - left > 2 * inset + 2
    if wide.any():
        left_level = float(np.mean(smooth[rows[wide], left[wide] + inset]))
        right_level = float(np.mean(smooth[rows[wide], right[wide] - inset]))
        if abs(right_level - left_level) >= _DECISIVE_LEVELS:
            return right_level > left_level
    return _fuller_side_is_right(tissue, np.flatnonzero(tissue.any(axis=1)))


def _ends_near_core(
    smooth: U8Array,
    tissue: BoolArray,
    background: float,
    rows: np.ndarray,
    ends: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, whether its left and right ends lie within reach of the breast's bright core.

    The core is the tissue well above the background (opened, so that the specks of a grainy
    dim region drop out); a skin end lies a skin ramp away from it, the end of a dim region
    that joined the mask lies as far as the region is wide.
    """
    top = float(np.percentile(smooth[tissue], 90))
    bright = tissue & (smooth >= background + _CORE_LEVEL * (top - background))
    size = max(3, round(_CORE_OPENING * max(tissue.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    core = cv2.morphologyEx(bright.view(np.uint8), cv2.MORPH_OPEN, kernel)
    if not core.any():
        return np.ones(rows.size, dtype=bool), np.ones(rows.size, dtype=bool)
    distance = cv2.distanceTransform(1 - core, cv2.DIST_L2, 3)
    reach = _CORE_REACH * tissue.shape[1]
    left, right = ends
    return distance[rows, left] <= reach, distance[rows, right] <= reach


def _attached_border(
    width: int, left: np.ndarray, right: np.ndarray, near_left: np.ndarray, near_right: np.ndarray
) -> bool | None:
    """True/False when the breast hangs from the right/left image border alone, else None."""
    on_left = float(np.mean((left == 0) & near_left))
    on_right = float(np.mean((right == width - 1) & near_right))
    if on_left >= _ATTACHED and on_right <= _DETACHED:
        return False
    if on_right >= _ATTACHED and on_left <= _DETACHED:
        return True
    return None


def _fuller_side_is_right(tissue: BoolArray, rows: np.ndarray) -> bool:
    columns = np.flatnonzero(tissue.any(axis=0))
    x0, x1 = int(columns[0]), int(columns[-1]) + 1
    height = int(rows[-1]) + 1 - int(rows[0])
    edge = max(1, round(_EDGE_BAND * (x1 - x0)))
    left = tissue[:, x0 : x0 + edge].any(axis=1).sum() / height
    right = tissue[:, x1 - edge : x1].any(axis=1).sum() / height
    return bool(right > left)


def laterality_from_chest_wall(chest_wall_right: bool) -> Laterality:
    """Laterality implied by the chest-wall side under the standard storage convention."""
    return Laterality.R if chest_wall_right else Laterality.L
