"""The reduced working grid on which segmentation runs.

Segmenting at full resolution costs seconds for nothing: the breast outline and the pectoral
edge are large structures. The working grid divides the original grid by an INTEGER factor
``k`` (OpenCV's area resampling has a fast path for integer factors: 1.7 ms instead of 11 ms
at 3328×2560 here), so working pixel ``(i, j)`` covers original pixels ``[k·i, k·(i+1)) ×
[k·j, k·(j+1))`` and continuous coordinates map by a plain factor ``k``. The last ``< k`` rows
and columns of the original are left out of the working grid; masks are extended over them by
repeating the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.structures import BoolArray, FloatArray

U8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkingGrid:
    """Integer reduction of an original ``(rows, columns)`` grid by ``factor``."""

    original_size: tuple[int, int]
    factor: int

    @classmethod
    def for_size(cls, original_size: tuple[int, int], work_size: int) -> WorkingGrid:
        """The smallest integer factor that brings the longer side down to ``work_size``."""
        rows, cols = original_size
        factor = max(1, math.ceil(max(rows, cols) / work_size))
        return cls(original_size=(rows, cols), factor=factor)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the working grid."""
        rows, cols = self.original_size
        return rows // self.factor, cols // self.factor

    def reduce(self, pixels: FloatArray) -> U8Array:
        """Area-average ``float32`` display pixels in [0, 1] into a ``uint8`` working image."""
        small = self._reduce_float(pixels)
        # 8 bits are plenty for outlines, and uint8 unlocks OpenCV's median and histogram paths
        return np.asarray(cv2.convertScaleAbs(small, alpha=255.0), dtype=np.uint8)

    def reduce_mask(self, mask: BoolArray) -> BoolArray:
        """A working pixel is set when most of the original pixels it covers are set."""
        small = self._reduce_float(mask.astype(np.float32))
        return np.asarray(small > 0.5)

    def expand_mask(self, small: BoolArray) -> BoolArray:
        """Back to the original grid, with edges interpolated (not blocky) between pixels."""
        rows, cols = self.original_size
        k = self.factor
        hs, ws = self.shape
        mask = small.astype(np.uint8) * np.uint8(255)
        if k > 1:
            mask = np.asarray(cv2.resize(mask, (ws * k, hs * k), interpolation=cv2.INTER_LINEAR))
        if mask.shape != (rows, cols):
            bottom, right = rows - mask.shape[0], cols - mask.shape[1]
            mask = np.asarray(cv2.copyMakeBorder(mask, 0, bottom, 0, right, cv2.BORDER_REPLICATE))
        return np.asarray(mask > 127)

    def _reduce_float(self, array: FloatArray) -> FloatArray:
        hs, ws = self.shape
        k = self.factor
        view = array[: hs * k, : ws * k]
        if k == 1:
            return np.ascontiguousarray(view)
        return np.asarray(cv2.resize(view, (ws, hs), interpolation=cv2.INTER_AREA))
