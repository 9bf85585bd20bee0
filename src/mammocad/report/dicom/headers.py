"""Source image headers for the DICOM outputs, read again without pixel data.

The pipeline keeps no DICOM data set (only the decoded pixels, which the caller frees), so the
builders re-read each source's header with ``stop_before_pixels`` (a zip member is decompressed
only up to its pixel data). Raster inputs (PNG, PGM…) have no header: they get no DICOM output.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from pydicom.dataset import Dataset

from mammocad.io.dicom import quiet_dcmread
from mammocad.io.sources import FileKind, Source, sniff

logger = logging.getLogger(__name__)

#: Type 2 attributes of the Patient, General Study and General Series modules (PS3.3 C.7.1.1,
#: C.7.2.1, C.7.3.1) that the SR, SC and GSPS builders copy from a source: real files sometimes
#: leave them out, which PS3.3 does not allow and highdicom refuses.
TYPE_2_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "SeriesNumber",
    "InstanceNumber",
    "Laterality",
)


def source_of(name: str) -> Source:
    """The :class:`~mammocad.io.sources.Source` an ``Image.source`` names.

    ``archive.zip!member/path`` names a zip member; the archive part is the longest prefix before
    a ``!`` that is a file, since file names may themselves contain ``!``.
    """
    path = Path(name)
    if path.is_file():
        return Source(path=path)
    position = name.rfind("!")
    while position > 0:
        archive = Path(name[:position])
        if archive.is_file():
            return Source(path=archive, member=name[position + 1 :])
        position = name.rfind("!", 0, position)
    raise FileNotFoundError(f"{name}: no such file or archive member")


def read_header(name: str) -> Dataset | None:
    """The header (no pixel data) of the DICOM source ``name``; ``None`` for a raster file.

    Raises:
        OSError: the file cannot be opened any more (moved or deleted since it was analysed).
    """
    source = source_of(name)
    kind = sniff(source.head())
    if kind not in (FileKind.DICOM, FileKind.DICOM_RAW):
        return None
    with source.open() as stream:
        read = quiet_dcmread(stream, stop_before_pixels=True, force=kind is FileKind.DICOM_RAW)
    # a data set detached from the (closed, zip) stream it was read from, so it can be copied
    header = Dataset(read)
    header.file_meta = read.file_meta
    return header


def completed_copy(header: Dataset) -> Dataset:
    """A copy of ``header`` with every missing Type 2 attribute of :data:`TYPE_2_ATTRIBUTES`
    present and empty (the source file itself is never touched)."""
    result = copy.deepcopy(header)
    for keyword in TYPE_2_ATTRIBUTES:
        if keyword not in result:
            setattr(result, keyword, None)
    return result
