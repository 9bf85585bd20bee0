"""Full-size (3328×2560, 12-bit) decode and display: bit-exact, and how long each syntax takes.

Marked slow (about a minute on two cores, most of it in the JPEG 2000 encoder); run with
``pytest -m slow tests/io/test_io_fullsize.py -s`` to see the timing table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from pydicom.pixels import pixel_array
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from mammocad.io.decode import decode_stored
from mammocad.io.display import render

if TYPE_CHECKING:
    from conftest import DicomFactory

pytestmark = pytest.mark.slow
SYNTAXES = [
    ExplicitVRLittleEndian,
    RLELossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEG2000Lossless,
    HTJ2KLossless,
]


def _best(function: Callable[[], Any], repeats: int = 3) -> tuple[Any, float]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


@pytest.fixture(scope="module")
def full(mg: DicomFactory) -> tuple[np.ndarray, Any]:
    pixels = mg.phantom(3328, 2560, bits=12)
    return pixels, mg.mg_dataset(
        pixels, WindowCenter=[2000, 1800], WindowWidth=[3000, 2000], VOILUTFunction="SIGMOID"
    )


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda s: UID(s).keyword)
def test_full_size_decode_is_exact_and_timed(
    syntax: UID, full: tuple[np.ndarray, Any], mg: DicomFactory
) -> None:
    pixels, ds = full
    encoded = mg.encode(ds, syntax)
    ours, ours_s = _best(lambda: decode_stored(encoded))
    reference, reference_s = _best(lambda: pixel_array(encoded), repeats=2)
    np.testing.assert_array_equal(ours.stored, pixels)
    np.testing.assert_array_equal(ours.stored, reference)
    print(
        f"\n{UID(syntax).name:60s} mammocad {ours_s:6.3f} s ({ours.decoder})"
        f" | pydicom default {reference_s:6.3f} s"
    )


def test_full_size_display_lut_matches_pydicom(full: tuple[np.ndarray, Any]) -> None:
    pixels, ds = full
    rendered, ours_s = _best(lambda: render(pixels, ds))

    def pydicom_pipeline() -> np.ndarray:
        voi = apply_voi_lut(apply_modality_lut(pixels, ds), ds)
        return (voi / 4095.0).astype(np.float32)

    expected, reference_s = _best(pydicom_pipeline)
    np.testing.assert_allclose(rendered.pixels, expected, atol=1e-6)
    print(f"\ndisplay pipeline: lookup table {ours_s:.3f} s | pydicom float64 {reference_s:.3f} s")
