"""Source image headers for the DICOM outputs, read again without pixel data.

The pipeline keeps no DICOM data set (only the decoded pixels, which the caller frees), so the
builders re-read each source's header with ``stop_before_pixels`` (a zip member is decompressed
only up to its pixel data). Raster inputs (PNG, PGM…) have no header: they get no DICOM output.
"""

from __future__ import annotations

import codecs
import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy.typing as npt
from highdicom import SpecificCharacterSetValues
from pydicom.charset import convert_encodings, decode_bytes, default_encoding, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import MAX_VALUE_LEN

from mammocad.io.checks import number_of_frames
from mammocad.io.decode import decode_stored
from mammocad.io.dicom import parse_dataset, quiet_dcmread
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
    a ``!`` that is a file, since file names may themselves contain ``!``; ``…!member#2`` the
    second member of that name (:meth:`Source.archive_member`).
    """
    path = Path(name)
    if path.is_file():
        return Source(path=path)
    position = name.rfind("!")
    while position > 0:
        archive = Path(name[:position])
        if archive.is_file():
            return Source.archive_member(archive, name[position + 1 :])
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


def read_stored_pixels(name: str) -> npt.NDArray[Any] | None:
    """The stored pixel values (``[rows, columns]``) of the DICOM source ``name``, decoded
    again as mammocad's reader decodes them (:func:`~mammocad.io.decode.decode_stored`: the
    values it displayed, e.g. bits above Bits Stored cleared, a lower-case Photometric
    Interpretation read, which pydicom's ``pixel_array`` refuses); ``None`` for a raster
    file or an image of several frames or samples.

    Raises:
        mammocad.errors.IngestError: the pixel data cannot be decoded (any more).
    """
    source = source_of(name)
    if sniff(source.head()) not in (FileKind.DICOM, FileKind.DICOM_RAW):
        return None
    with source.open() as stream:
        ds = parse_dataset(stream.read(), name)
    if int(ds.get("SamplesPerPixel") or 1) != 1 or number_of_frames(ds) != 1:
        return None
    return decode_stored(ds).stored


#: kept as the source has it even when too long: a PACS files an object under its Patient ID,
#: and an object whose ID differs from its images' would land under another patient
_KEEP_AS_IS = frozenset({"PatientID"})


def _default_repertoire(header: Dataset) -> None:
    """Spell Specific Character Set the way highdicom accepts, with the same meaning.

    An empty first value of several stands for ISO 2022 IR 6 (PS3.3 C.12.1.1.2), e.g.
    ``\\ISO 2022 IR 87`` (Japanese); a single empty value or ``ISO_IR 6`` (not a Defined Term,
    common in real files) is the default repertoire, as is leaving the attribute out.
    highdicom raises on ``""`` and ``ISO_IR 6``.
    """
    value = header.get("SpecificCharacterSet")
    if value is None:
        return
    values = [str(v) for v in value] if isinstance(value, MultiValue) else [str(value)]
    values = [v.strip() for v in values]
    if len(values) > 1 and values[0] in ("", "ISO_IR 6"):
        values[0] = "ISO 2022 IR 6"
    if len(values) == 1 and values[0] in ("", "ISO_IR 6"):
        del header.SpecificCharacterSet
    elif not all(v in _DEFINED_TERMS for v in values):
        _as_defined_term(header, values)
    else:
        header.SpecificCharacterSet = values if len(values) > 1 else values[0]


#: the Defined Terms of Specific Character Set (PS3.3 C.12.1.1.2) highdicom accepts
_DEFINED_TERMS = frozenset(term.value for term in SpecificCharacterSetValues)


def _single_byte_term(codec: str) -> str | None:
    """The Defined Term without code extensions whose Python codec is ``codec``, if any."""
    try:
        name = codecs.lookup(codec).name
    except LookupError:
        return None
    for term in sorted(_DEFINED_TERMS):
        if term.startswith("ISO 2022") or term not in python_encoding:
            continue
        if codecs.lookup(python_encoding[term]).name == name:
            return term
    return None


def _as_defined_term(header: Dataset, values: list[str]) -> None:
    """Declare a Defined Term for a source whose Specific Character Set is none (``ISO-8859-1``,
    ``UTF-8``, ``ISO_IR100``: common in real files), which highdicom refuses, so that such a
    study got no SR, SC or GSPS at all. pydicom reads such a value with the Python codec of
    that name, a corrected spelling, else its default (Latin-1); the term of that same codec
    (``ISO_IR 100``, ``ISO_IR 192``…) keeps every byte and its meaning. Without one
    (``cp1252``), :data:`BYTE_PRESERVING`, which keeps every byte."""
    read_as = _codecs(values)
    term = _single_byte_term(read_as[0]) if len(read_as) == 1 else None
    header.SpecificCharacterSet = term or BYTE_PRESERVING


def _fit_value_lengths(header: Dataset) -> None:
    """Empty each SH / LO value longer than its VR allows (PS3.5 Table 6.2-1: 16 and 64
    characters), e.g. a 23-character Study ID: the outputs would repeat the violation, and a
    cut identifier could name another study. Patient ID stays (:data:`_KEEP_AS_IS`)."""
    for element in header:
        if element.VR not in ("SH", "LO") or element.keyword in _KEEP_AS_IS:
            continue
        limit = MAX_VALUE_LEN[element.VR]
        values = element.value if isinstance(element.value, MultiValue) else [element.value]
        if any(isinstance(v, str) and len(v) > limit for v in values):
            logger.info(
                "%s of %s is longer than %s allows (%d characters): left empty in the outputs",
                element.keyword or element.tag, header.get("SOPInstanceUID"), element.VR, limit,
            )  # fmt: skip
            element.value = None


#: the value representations Specific Character Set applies to (PS3.5 6.1.2)
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})
#: ISO 8859-1 (PS3.3 C.12.1.1.2, Table C.12-2): every byte a misconfigured modality may write
#: reads as one character of it and is written back as that same byte
BYTE_PRESERVING = "ISO_IR 100"


def _codecs(value: Any) -> list[str]:
    """The Python codecs pydicom reads (or writes) a Specific Character Set ``value`` with."""
    if not value:
        return [default_encoding]
    values = [str(v) for v in value] if isinstance(value, (MultiValue, list)) else [str(value)]
    with warnings.catch_warnings():  # pydicom's "unknown encoding" warning
        warnings.simplefilter("ignore", UserWarning)
        return convert_encodings(values)


def _keeps_bytes(raw: bytes, read: list[str], write: list[str]) -> bool:
    """Whether a value of bytes ``raw``, read as pydicom reads the source (``read``) and
    written in the outputs' character set (``write``), comes out as the same bytes."""
    value = raw.rstrip(b" \x00")
    if b"\x1b" in value:  # code extensions (PS3.5 6.1.2.5): pydicom decodes each fragment
        with warnings.catch_warnings():  # and replaces what it cannot decode with U+FFFD
            warnings.simplefilter("ignore", UserWarning)
            return "\ufffd" not in decode_bytes(value, read, {0x5C, 0x5E, 0x3D})
    try:
        text = value.decode(read[0])
        return read == write or text.encode(write[0]) == value
    except (UnicodeError, LookupError):
        return False


def _identity_bytes_kept(header: Dataset) -> bool:
    """Whether each text value of ``header`` will be written with the source's bytes once its
    Specific Character Set is declared as :func:`_default_repertoire` spells it. Every root
    value, not only those the outputs copy (the Patient and Study modules, whose attributes
    vary with the IOD): a value elsewhere that fails costs no identity, as the declaration
    that keeps bytes keeps them all. Only values still as read (raw) are checked: a
    sequence's items are decoded with the declaration the copy ends up with."""
    declared = header.get("SpecificCharacterSet")
    probe = Dataset()
    if declared is not None:
        probe.SpecificCharacterSet = declared
    _default_repertoire(probe)
    read, write = _codecs(declared), _codecs(probe.get("SpecificCharacterSet"))
    # keys(), not the data set: iterating it converts each element; get_item leaves it raw
    for tag in header.keys():  # noqa: SIM118
        element = header.get_item(tag)
        if not isinstance(element, RawDataElement) or not element.value:
            continue
        vr = element.VR or dictionary_VR(element.tag)
        if vr in _TEXT_VRS and not _keeps_bytes(element.value, read, write):
            return False
    return True


def completed_copy(header: Dataset) -> Dataset:
    """A copy of ``header`` ready for highdicom: every missing Type 2 attribute of
    :data:`TYPE_2_ATTRIBUTES` present and empty, Specific Character Set in a spelling highdicom
    accepts, and no SH / LO value longer than its VR allows (the source file itself is never
    touched).

    The patient's and the study's identity (Patient ID, Issuer of Patient ID, Patient's Name,
    Accession Number, Study ID…) keep the source's exact bytes: a PACS files an object under
    its Patient ID and issuer. highdicom copies them decoded, and pydicom writes them again in
    the declared character set, so the declaration must be one those bytes decode in and
    encode back from. Real modalities declare ``ISO_IR 192`` (UTF-8) and write Latin-1 bytes,
    which pydicom reads with replacement characters (U+FFFD), a Patient ID of another
    patient once written. Such a copy declares :data:`BYTE_PRESERVING` (``ISO_IR 100``, a
    Defined Term of PS3.3 C.12.1.1.2 without code extensions, PS3.5 6.1.2.3) instead: every
    byte is one character of it, so each value is written back byte for byte, and is shown as
    the Latin-1 the modality wrote."""
    result = copy.deepcopy(header)
    if _identity_bytes_kept(header):
        _default_repertoire(result)
    else:  # before anything decodes the copy's values: they decode as Latin-1 from here
        logger.info(
            "%s declares Specific Character Set %s but its patient or study values are not "
            "written in it: the outputs declare %s, which keeps their bytes",
            header.get("SOPInstanceUID"), header.get("SpecificCharacterSet"), BYTE_PRESERVING,
        )  # fmt: skip
        result.SpecificCharacterSet = BYTE_PRESERVING
    _fit_value_lengths(result)
    for keyword in TYPE_2_ATTRIBUTES:
        if keyword not in result:
            setattr(result, keyword, None)
    return result
