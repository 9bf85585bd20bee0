"""Fixtures for the phantom tests: a few small studies rendered once per session, and a
reader that turns a written file back into its display image with pydicom alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from mammocad.synthetic import PhantomStudy, generate_study

DisplayReader = Callable[[Path], npt.NDArray[np.float64]]


def read_display(path: Path) -> npt.NDArray[np.float64]:
    """Stored values → Modality LUT → VOI LUT → MONOCHROME1 inversion, in [0, 1].

    A stand-in for mammocad.io, written against pydicom only so it checks the writer
    independently. The VOI output spans the LUT's bit depth (VOI LUT Sequence) or
    [0, 2^BitsStored − 1] (windows), DICOM PS3.3 C.11.2.
    """
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds)
    if "VOILUTSequence" in ds:
        # the identity rescale gives floats; a VOI LUT indexes with integers
        values = np.rint(values).astype(np.int64)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    else:
        bits = int(ds.BitsStored)
    display = apply_voi_lut(values, ds).astype(np.float64) / (2**bits - 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        display = 1.0 - display
    return display


@pytest.fixture(scope="session")
def display_reader() -> DisplayReader:
    return read_display


@pytest.fixture(scope="session")
def malignant_study() -> PhantomStudy:
    """A small study with a malignant lesion and benign findings."""
    return generate_study(seed=11, malignant=True, benign_rate=1.0)


@pytest.fixture(scope="session")
def studies() -> list[PhantomStudy]:
    """Several small studies with lesions, for geometry checks across shapes and variants."""
    return [generate_study(seed=s, malignant=True, benign_rate=1.0) for s in range(20, 26)]
