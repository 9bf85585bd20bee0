"""Read any supported image file, choosing the reader from the file's content."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mammocad.errors import RejectionCode
from mammocad.io.dicom import not_dicom_error, read_dicom
from mammocad.io.options import DEFAULT_OPTIONS, ReadOptions
from mammocad.io.raster import RasterInput, read_raster
from mammocad.io.sources import HEAD_SIZE, FileKind, Source, sniff
from mammocad.structures import Image


def _head(source: RasterInput) -> bytes:
    if isinstance(source, bytes):
        return source[:HEAD_SIZE]
    if isinstance(source, Source):
        return source.head()
    with Path(source).open("rb") as stream:
        return stream.read(HEAD_SIZE)


def _label(source: RasterInput, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, bytes):
        return "<bytes>"
    return source.name if isinstance(source, Source) else os.fspath(source)


def read_image(
    source: RasterInput,
    *,
    name: str | None = None,
    options: ReadOptions = DEFAULT_OPTIONS,
    sidecar: Mapping[str, Any] | None = None,
    **raster_metadata: Any,
) -> Image:
    """:func:`read_dicom` or :func:`read_raster`, whichever the first bytes call for.

    DICOM is recognised by its ``DICM`` marker (or a bare data set, see
    :func:`mammocad.io.sources.sniff`), rasters by their PNG/PGM/TIFF/JPEG signature; anything
    else is rejected ``not_dicom``. ``sidecar`` and ``raster_metadata`` (``laterality``,
    ``view``, ``patient_id``... as in :func:`read_raster`) apply to raster files only: a DICOM
    file's own tags are authoritative. Never raises for a bad file.
    """
    try:
        kind = sniff(_head(source))
    except OSError:
        kind = FileKind.DICOM  # read_dicom reports the unreadable file with its sentence
    if kind in (FileKind.DICOM, FileKind.DICOM_RAW):
        return read_dicom(source, name=name, options=options)
    if kind is FileKind.RASTER:
        return read_raster(source, name=name, sidecar=sidecar, options=options, **raster_metadata)
    label = _label(source, name)
    image = Image(source=label)
    if kind is FileKind.ZIP:
        image.reject(
            RejectionCode.NOT_DICOM,
            f"{label} is a zip archive, not an image, and archives inside archives are not "
            "opened: give that zip itself (or its extracted folder) as an input.",
        )
    else:
        image.reject(RejectionCode.NOT_DICOM, not_dicom_error(label).message)
    return image
