"""Identifiers, laterality, view and pixel spacing from a DICOM data set.

Laterality: Image Laterality (0020,0062), then Laterality (0020,0060) (PS3.3 C.8.11.7 / C.7.3.1),
then text evidence. View: View Position (0018,5101), then View Code Sequence (0054,0220) with the
codes of CID 4014 "View for Mammography" (SNOMED CT and their legacy SRT/SNM3 values, PS3.16),
then text evidence. Text evidence is, in order: Patient Orientation holding a view code (the
CBIS-DDSM habit), PatientID, Series Description, Protocol Name, Image Comments, the file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from mammocad.io.naming import TextEvidence, exact_view, parse_text
from mammocad.structures import Laterality, Message, Severity, TagSource, ViewPosition

# CID 4014 View for Mammography: SNOMED CT code -> view, with the legacy SRT code beside it.
VIEW_CODES: dict[str, ViewPosition] = {
    "399162004": ViewPosition.CC,  # cranio-caudal
    "R-10242": ViewPosition.CC,
    "399368009": ViewPosition.MLO,  # medio-lateral oblique
    "R-10226": ViewPosition.MLO,
    "399260004": ViewPosition.ML,  # medio-lateral
    "R-10224": ViewPosition.ML,
    "399352003": ViewPosition.LM,  # latero-medial
    "R-10228": ViewPosition.LM,
    "399192008": ViewPosition.XCCL,  # cranio-caudal exaggerated laterally
    "R-1024A": ViewPosition.XCCL,
    "399101009": ViewPosition.XCCM,  # cranio-caudal exaggerated medially
    "R-1024B": ViewPosition.XCCM,
    "399188001": ViewPosition.SIO,  # superolateral to inferomedial oblique
    "R-102D0": ViewPosition.SIO,
    # CID 4014 views without a value of their own in the result schema
    "399099002": ViewPosition.OTHER,  # latero-medial oblique
    "R-10230": ViewPosition.OTHER,
    "441555000": ViewPosition.OTHER,  # inferomedial to superolateral oblique
    "R-40AAA": ViewPosition.OTHER,
    "399196006": ViewPosition.OTHER,  # caudo-cranial (from below)
    "R-10244": ViewPosition.OTHER,
    "127457009": ViewPosition.OTHER,  # tissue specimen from breast
    "G-8310": ViewPosition.OTHER,
    "R-102CF": ViewPosition.OTHER,  # exaggerated cranio-caudal (retired)
}
_VIEW_MEANINGS: dict[str, ViewPosition] = {
    "cranio-caudal": ViewPosition.CC,
    "medio-lateral oblique": ViewPosition.MLO,
    "medio-lateral": ViewPosition.ML,
    "medial-lateral": ViewPosition.ML,
    "latero-medial": ViewPosition.LM,
    "cranio-caudal exaggerated laterally": ViewPosition.XCCL,
    "cranio-caudal exaggerated medially": ViewPosition.XCCM,
    "superolateral to inferomedial oblique": ViewPosition.SIO,
}
# CID 4015 View Modifier for Mammography that make the image something other than the
# projection named by the view code: a magnified or spot-compressed detail view is not a
# screening view, and the axillary tail view has a View Position value of its own (AT).
_MODIFIER_VIEWS: dict[str, ViewPosition] = {
    "399163009": ViewPosition.OTHER,  # magnification
    "R-102D6": ViewPosition.OTHER,
    "399055006": ViewPosition.OTHER,  # spot compression
    "R-102D7": ViewPosition.OTHER,
    "399011000": ViewPosition.AT,  # axillary tail
    "R-102D1": ViewPosition.AT,
}
#: plausible pixel spacing of a mammogram, mm (:func:`read_pixel_spacing`)
SPACING_RANGE_MM = (0.01, 10.0)
_TEXT_KEYWORDS = ("PatientID", "SeriesDescription", "ProtocolName", "ImageComments")


def text_value(ds: Dataset, keyword: str) -> str | None:
    """The element's value as one stripped string (multi-values joined by ``\\``), or ``None``.

    Never raises: real files carry malformed values that pydicom converts lazily.
    """
    try:
        value: Any = ds.get(keyword)
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _laterality_value(ds: Dataset, keyword: str) -> Laterality | None:
    value = text_value(ds, keyword)
    # U (unpaired) and B (both) are valid codes that name no single breast
    return Laterality(value.upper()) if value and value.upper() in ("L", "R") else None


def _text_evidence(ds: Dataset, file_name: str | None) -> list[tuple[TextEvidence, TagSource]]:
    found = [(parse_text(text_value(ds, keyword)), TagSource.OTHER) for keyword in _TEXT_KEYWORDS]
    found.append((parse_text(file_name), TagSource.FILENAME))
    return found


def read_laterality(
    ds: Dataset, file_name: str | None = None
) -> tuple[Laterality | None, TagSource | None, list[Message]]:
    """Breast side, where it came from, and a warning when the two laterality tags disagree."""
    image_side = _laterality_value(ds, "ImageLaterality")
    series_side = _laterality_value(ds, "Laterality")
    messages: list[Message] = []
    if image_side and series_side and image_side is not series_side:
        messages.append(
            Message(
                code="laterality_conflict",
                severity=Severity.WARNING,
                text=f"Image Laterality says {image_side.value} but Laterality says "
                f"{series_side.value}; Image Laterality is used: check the image's markers.",
            )
        )
    if image_side:
        return image_side, TagSource.IMAGE_LATERALITY, messages
    if series_side:
        return series_side, TagSource.LATERALITY, messages
    for evidence, source in _text_evidence(ds, file_name):
        if evidence.laterality:
            return evidence.laterality, source, messages
    return None, None, messages


def _code_sequence_view(ds: Dataset) -> tuple[ViewPosition | None, ViewPosition | None, list[str]]:
    """View from View Code Sequence, the view its modifiers impose (if any), modifier names."""
    try:
        items = ds.get("ViewCodeSequence") or []
        item = items[0] if len(items) else Dataset()
        code = str(item.get("CodeValue", "")).strip()
        meaning = str(item.get("CodeMeaning", "")).strip().lower()
        view = VIEW_CODES.get(code) or _VIEW_MEANINGS.get(meaning)
        # modifiers sit inside the view item (current standard) or at top level (older files)
        modifiers = list(item.get("ViewModifierCodeSequence") or [])
        modifiers += list(ds.get("ViewModifierCodeSequence") or [])
        names: list[str] = []
        imposed: ViewPosition | None = None
        for modifier in modifiers:
            modifier_code = str(modifier.get("CodeValue", "")).strip()
            names.append(str(modifier.get("CodeMeaning", modifier_code)).strip())
            imposed = imposed or _MODIFIER_VIEWS.get(modifier_code)
    except Exception:
        return None, None, []
    return view, imposed, names


def read_view(
    ds: Dataset, file_name: str | None = None
) -> tuple[ViewPosition | None, TagSource | None, list[Message]]:
    """Projection, where it came from, and notes on modifiers or disagreeing tags.

    A magnification or spot-compression modifier makes the view OTHER and an axillary-tail
    modifier makes it AT, whatever View Position says: such images are not screening views.
    """
    raw_position = text_value(ds, "ViewPosition")
    position = exact_view(raw_position) or parse_text(raw_position).view
    coded, imposed, modifiers = _code_sequence_view(ds)
    messages: list[Message] = []
    if modifiers:
        messages.append(
            Message(
                code="view_modifier",
                severity=Severity.INFO,
                text=f"View modifier(s): {', '.join(modifiers)}.",
            )
        )
    if position and coded and position is not coded and coded is not ViewPosition.OTHER:
        messages.append(
            Message(
                code="view_conflict",
                severity=Severity.WARNING,
                text=f"View Position says {position.value} but View Code Sequence says "
                f"{coded.value}; View Position is used: check the view label.",
            )
        )
    if imposed:
        return imposed, TagSource.VIEW_CODE_SEQUENCE, messages
    if position:
        return position, TagSource.VIEW_POSITION, messages
    if coded:
        return coded, TagSource.VIEW_CODE_SEQUENCE, messages
    orientation_view = exact_view(text_value(ds, "PatientOrientation"))
    if orientation_view:
        return orientation_view, TagSource.OTHER, messages
    for evidence, source in _text_evidence(ds, file_name):
        if evidence.view:
            return evidence.view, source, messages
    return None, None, messages


def read_pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """[row, column] spacing in mm: Imager Pixel Spacing (0018,1164), else Pixel Spacing
    (0028,0030), else Nominal Scanned Pixel Spacing (0018,2010) of digitised film.

    Values outside :data:`SPACING_RANGE_MM` are skipped: no detector or film scanner samples
    a mammogram finer than 10 µm (the finest scan 25 µm, detectors 50-100 µm), and a 640-pixel
    image at 1 nm would make the breast microscopic to every stage that measures it in mm."""
    for keyword in ("ImagerPixelSpacing", "PixelSpacing", "NominalScannedPixelSpacing"):
        try:
            value = ds.get(keyword)
            if value is None or len(value) != 2:
                continue
            row, column = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            continue
        low, high = SPACING_RANGE_MM
        if low <= row < high and low <= column < high:  # else a unit or encoding error
            return row, column
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageTags:
    """What :mod:`mammocad.io` needs from a data set besides the pixels."""

    sop_instance_uid: str | None
    study_instance_uid: str | None
    series_instance_uid: str | None
    patient_id: str | None
    accession_number: str | None
    manufacturer: str | None
    laterality: Laterality | None
    laterality_source: TagSource | None
    view: ViewPosition | None
    view_source: TagSource | None
    pixel_spacing_mm: tuple[float, float] | None
    rows: int
    columns: int
    messages: tuple[Message, ...] = ()

    @classmethod
    def from_dataset(cls, ds: Dataset, *, file_name: str | None = None) -> ImageTags:
        """Read the tags; ``file_name`` is the last source of laterality and view."""
        laterality, laterality_source, side_notes = read_laterality(ds, file_name)
        view, view_source, view_notes = read_view(ds, file_name)
        sop = text_value(ds, "SOPInstanceUID")
        if sop is None and getattr(ds, "file_meta", None) is not None:
            sop = text_value(ds.file_meta, "MediaStorageSOPInstanceUID")
        return cls(
            sop_instance_uid=sop,
            study_instance_uid=text_value(ds, "StudyInstanceUID"),
            series_instance_uid=text_value(ds, "SeriesInstanceUID"),
            patient_id=text_value(ds, "PatientID"),
            accession_number=text_value(ds, "AccessionNumber"),
            manufacturer=text_value(ds, "Manufacturer"),
            laterality=laterality,
            laterality_source=laterality_source,
            view=view,
            view_source=view_source,
            pixel_spacing_mm=read_pixel_spacing(ds),
            rows=_int_value(ds, "Rows"),
            columns=_int_value(ds, "Columns"),
            messages=tuple(side_notes + view_notes),
        )


def _int_value(ds: Dataset, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0
