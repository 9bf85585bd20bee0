"""Reading stage: DICOM / PNG / PGM files, folders and zip archives → Study → Image.

``read_image`` (content-dispatched), ``read_dicom`` and ``read_raster`` read one file into an
:class:`~mammocad.structures.Image` (float32 [0, 1] display pixels on the stored grid, or a
rejection with a code and a sentence; they never raise for bad input). ``iter_studies`` and
``load_studies`` assemble many inputs into :class:`~mammocad.structures.Study` objects.
See docs/ingestion.md.
"""

from mammocad.io.assemble import (
    SPLIT_PATIENT,
    GroupBy,
    IngestResult,
    StudyStream,
    iter_studies,
    load_studies,
)
from mammocad.io.dicom import read_dicom
from mammocad.io.display import Rendered, VoiChoice, VoiKind, choose_voi, render
from mammocad.io.image import read_image
from mammocad.io.options import ReadOptions
from mammocad.io.raster import read_raster

__all__ = [
    "SPLIT_PATIENT",
    "GroupBy",
    "IngestResult",
    "ReadOptions",
    "Rendered",
    "StudyStream",
    "VoiChoice",
    "VoiKind",
    "choose_voi",
    "iter_studies",
    "load_studies",
    "read_dicom",
    "read_image",
    "read_raster",
    "render",
]
