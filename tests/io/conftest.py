"""Fixtures for the io tests: small, realistic mammography DICOM files built in memory.

The project runs pytest with ``--import-mode=importlib``, so test modules cannot import a helper
module; the builders below reach the tests through the ``mg`` fixture instead.

``phantom`` draws a breast-like image (dense tissue near the chest wall on the left, skin line,
quantum noise, dark background); ``mg_dataset`` wraps it as a Digital Mammography X-Ray Image
For Presentation; ``encode`` re-encodes it in one transfer syntax with pydicom's encoders
(RLE, JPEG-LS, JPEG 2000) or imagecodecs (JPEG Lossless, HTJ2K, JPEG Baseline/Extended), the
way a modality or PACS would write it.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def phantom(rows: int = 192, columns: int = 160, *, bits: int = 12, seed: int = 0) -> np.ndarray:
    """uint16 ``[rows, columns]`` using ``bits`` bits: a breast on the left, background right."""
    rng = np.random.default_rng(seed)
    top = 2**bits - 1
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float64)
    radius = ((xx / (0.75 * columns)) ** 2 + ((yy - rows / 2) / (0.48 * rows)) ** 2) ** 0.5
    breast = radius < 1.0
    density = 0.35 + 0.4 * np.exp(-((xx / (0.35 * columns)) ** 2)) * (1 - radius.clip(0, 1))
    tissue = density * top + rng.normal(0, 0.015 * top, (rows, columns))
    background = 0.03 * top + rng.normal(0, 0.004 * top, (rows, columns))
    image = np.where(breast, tissue, background)
    image[rows // 3, columns // 5] = top  # a calcification-like maximum
    return image.clip(0, top).astype(np.uint16)


def mg_dataset(
    pixels: np.ndarray | None = None, *, bits_stored: int = 12, **attributes: Any
) -> Dataset:
    """An MG For Presentation data set (Explicit VR Little Endian) holding ``pixels``."""
    pixels = phantom(bits=bits_stored) if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "PHANTOM-001"
    ds.AccessionNumber = "ACC001"
    ds.Modality = "MG"
    ds.Manufacturer = "mammocad tests"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    ds.ImagerPixelSpacing = [0.07, 0.07]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if pixels.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def reread(ds: Dataset) -> Dataset:
    """Write and read back, as a receiving node would see the file."""
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def _encapsulated(ds: Dataset, syntax: UID, frame: bytes) -> Dataset:
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax in (JPEGBaseline8Bit, JPEGExtended12Bit, HTJ2K, JPEG2000):
        ds.LossyImageCompression = "01"
    return ds


def _imagecodecs_frame(syntax: UID, pixels: np.ndarray, bits: int) -> bytes:
    encoders: dict[UID, Callable[[], bytes]] = {
        JPEGLosslessSV1: lambda: imagecodecs.jpeg8_encode(
            pixels, lossless=True, predictor=1, bitspersample=bits
        ),
        HTJ2KLossless: lambda: imagecodecs.htj2k_encode(pixels, reversible=True),
        HTJ2K: lambda: imagecodecs.htj2k_encode(pixels, reversible=False),
        JPEGBaseline8Bit: lambda: imagecodecs.jpeg8_encode(pixels, level=90),
        JPEGExtended12Bit: lambda: imagecodecs.jpeg8_encode(pixels, level=90, bitspersample=12),
    }
    return bytes(encoders[syntax]())


def encode(ds: Dataset, syntax: UID | str, *, predictor: int = 1) -> Dataset:
    """A copy of ``ds`` (native pixels) written in ``syntax``, read back from bytes."""
    syntax = UID(syntax)
    out = copy.deepcopy(ds)
    pixels = out.pixel_array
    bits = int(out.BitsStored)
    if syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        out.file_meta.TransferSyntaxUID = syntax
    elif syntax == ExplicitVRBigEndian:
        out.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
        out["PixelData"].VR = "OW"
        out.file_meta.TransferSyntaxUID = syntax
    elif syntax in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        out.compress(syntax, pixels)
    elif syntax == JPEGLSNearLossless:
        out.compress(syntax, pixels, jls_error=2)
    elif syntax == JPEG2000:
        out.compress(syntax, pixels, j2k_psnr=[70])
    elif syntax == JPEGLossless:
        frame = imagecodecs.jpeg8_encode(
            pixels, lossless=True, predictor=predictor, bitspersample=bits
        )
        _encapsulated(out, syntax, bytes(frame))
    else:
        _encapsulated(out, syntax, _imagecodecs_frame(syntax, pixels, bits))
    return reread(out)


def with_frame(ds: Dataset, frame: bytes) -> Dataset:
    """``ds`` (encapsulated) with its single frame replaced, written and read back."""
    out = copy.deepcopy(ds)
    out.PixelData = encapsulate([frame])
    out["PixelData"].VR = "OB"
    return reread(out)


class DicomFactory:
    """The builders of this module, as one object (see the ``mg`` fixture)."""

    phantom = staticmethod(phantom)
    mg_dataset = staticmethod(mg_dataset)
    encode = staticmethod(encode)
    to_bytes = staticmethod(to_bytes)
    reread = staticmethod(reread)
    with_frame = staticmethod(with_frame)


@pytest.fixture(scope="session")
def mg() -> DicomFactory:
    """Builders of test files: ``mg.phantom()``, ``mg.mg_dataset()``, ``mg.encode()``..."""
    return DicomFactory()
