"""Header pass of study assembly: what each input file is and which study it belongs to.

Only headers are read here (pydicom ``stop_before_pixels``; zip members are decompressed only
up to their pixel data), so a batch of hundreds of studies is scanned without holding any
pixels. A file that cannot belong to a study is turned into a rejected image at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from mammocad.errors import RejectionCode
from mammocad.io.dicom import read_dicom, read_header
from mammocad.io.image import read_image
from mammocad.io.options import ReadOptions
from mammocad.io.raster import describe_raster
from mammocad.io.sources import FileKind, Source, sniff
from mammocad.io.tags import ImageTags
from mammocad.structures import Image


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One readable input: its source, kind and a preview (identifiers only, no pixels)."""

    source: Source
    kind: FileKind
    preview: Image

    @property
    def sop_instance_uid(self) -> str:
        return str(self.preview.sop_instance_uid)

    @property
    def study_instance_uid(self) -> str:
        return str(self.preview.study_instance_uid)


def _dicom_preview(source: Source, kind: FileKind) -> Image | None:
    """Identifiers from the header alone; ``None`` when the header cannot be parsed."""
    try:
        with source.open() as stream:
            ds = read_header(stream, force=kind is FileKind.DICOM_RAW)
        tags = ImageTags.from_dataset(ds, file_name=source.file_name)
    except Exception:
        return None
    return Image(
        source=source.name,
        sop_instance_uid=tags.sop_instance_uid,
        study_instance_uid=tags.study_instance_uid,
        series_instance_uid=tags.series_instance_uid,
        patient_id=tags.patient_id,
        accession_number=tags.accession_number,
        laterality=tags.laterality,
        laterality_source=tags.laterality_source,
        view=tags.view,
        view_source=tags.view_source,
        rows=tags.rows,
        columns=tags.columns,
        pixel_spacing_mm=tags.pixel_spacing_mm,
        manufacturer=tags.manufacturer,
    )


def _missing_uid(image: Image) -> Image:
    """Reject a readable file that lacks the UIDs a study needs."""
    if image.is_processed:
        missing = "StudyInstanceUID (0020,000D)" if image.sop_instance_uid else "SOPInstanceUID"
        image.reject(
            RejectionCode.MISSING_METADATA,
            f"The file has no {missing}, so it cannot be placed in a study: re-export it from "
            "the PACS or modality, which fills it.",
        )
    return image


def scan_source(source: Source, options: ReadOptions) -> Entry | Image:
    """An :class:`Entry` for a file that belongs to a study, else a rejected image."""
    try:
        kind = sniff(source.head())
    except (OSError, KeyError, RuntimeError, ValueError):
        return read_image(source, options=options)  # rejects it with the reader's sentence
    if kind is FileKind.RASTER:
        raster, _ = describe_raster(source)
        return Entry(source=source, kind=kind, preview=raster) if raster.is_processed else raster
    if kind not in (FileKind.DICOM, FileKind.DICOM_RAW):
        return read_image(source, options=options)
    preview = _dicom_preview(source, kind)
    if preview is None or not preview.sop_instance_uid or not preview.study_instance_uid:
        # a header the streaming parse could not read, or missing UIDs: the full reader
        # decides (and says why when it rejects)
        full = read_dicom(source, options=options)
        if not (full.is_processed and full.sop_instance_uid and full.study_instance_uid):
            return _missing_uid(full)
        full.pixels, full.padding_mask = None, None  # decoded again with its study
        preview = full
    return Entry(source=source, kind=kind, preview=preview)
