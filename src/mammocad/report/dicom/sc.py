"""Secondary Capture of an overlay picture (DICOM PS3.3 A.8.1, built with highdicom).

One SC per processed source image, in a new series of the source's study: the overlay from
:func:`mammocad.report.overlay.render_overlay` (boxes, labels, probabilities, the model name and
version and "not for primary diagnosis" burnt in) as 8-bit RGB, Burned In Annotation YES, with
the source image in Source Image Sequence and Referenced Image Sequence.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import numpy.typing as npt
from highdicom.sc import SCImage
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian

from mammocad.report.dicom.headers import completed_copy
from mammocad.report.dicom.sr import MANUFACTURER
from mammocad.report.dicom.uids import OutputUids

SC_SERIES_NUMBER = 9002
#: highdicom checks Patient Orientation against single-letter values, but mammograms carry
#: combined ones (``A\\FR``); it gets this placeholder and the source's value is copied after.
_PLACEHOLDER_ORIENTATION = ("A", "R")
#: one value of Patient Orientation: letters A, P, R, L, H, F (PS3.3 C.7.6.1.1.1), combined in
#: mammography (``FR``, C.8.11.7.1.1)
_DIRECTION = re.compile(r"[APRLHF]+")


def _reference(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item


def _patient_orientation(header: Dataset) -> list[str]:
    """The source's Patient Orientation when it is a valid row and column direction, else
    empty (Type 2C). Real files carry the view instead (CBIS-DDSM: ``CC``, ``MLO``), which the
    SC must not inherit, and a single string must not be split into letters."""
    value = header.get("PatientOrientation")
    values = [str(v) for v in value] if isinstance(value, MultiValue) else []
    valid = len(values) == 2 and all(_DIRECTION.fullmatch(v) for v in values)
    return values if valid and values[0] != values[1] else []


def build_sc(
    header: Dataset,
    picture_bgr: npt.NDArray[np.uint8],
    *,
    laterality: str | None,
    uids: OutputUids,
    instance_number: int,
    model_name: str,
    model_version: str,
) -> SCImage:
    """The SC of one source image: ``picture_bgr`` is ``uint8[H, W, 3]`` in OpenCV's BGR order;
    ``laterality`` the image's breast in the result (``L``/``R``, as the SR and GSPS name it).

    The picture may be smaller than the source (the overlay is downscaled to its long side).
    """
    if picture_bgr.ndim != 3 or picture_bgr.shape[2] != 3 or picture_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8[H, W, 3] BGR picture, got {picture_bgr.shape}")
    rgb = np.ascontiguousarray(cv2.cvtColor(picture_bgr, cv2.COLOR_BGR2RGB))
    source = completed_copy(header)
    sc = SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=uids.series("sc"),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=uids.instance("sc", str(header.SOPInstanceUID)),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=_PLACEHOLDER_ORIENTATION,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=f"CAD overlays {model_name} {model_version}"[:64],
        software_versions=model_version,
        manufacturer_model_name=model_name[:64],
    )
    # highdicom's SC copies only the Type 1/2 patient and study attributes; the SR and GSPS
    # carry the whole Patient and Study modules (Issuer of Patient ID, Study Description,
    # Patient's Age…): without them a PACS that tells patients apart by ID and issuer files
    # the overlays elsewhere, and the study's instances disagree (dcentvfy)
    sc.copy_patient_and_study_information(source)
    # the overlay keeps the source's axes (it is only downscaled): its orientation, if any
    sc.PatientOrientation = _patient_orientation(source)
    # the breast goes on the instance (General Image, PS3.3 C.7.6.1), not the series: the SC
    # series holds both breasts' overlays, and Laterality (0020,0060) is a Series attribute
    # that every instance of the series must share
    if laterality in ("L", "R"):
        sc.ImageLaterality = laterality
    sc.pop("Laterality", None)
    sc.BurnedInAnnotation = "YES"
    sc.DerivationDescription = (
        f"Display rendering of the source image with {model_name} {model_version} CAD marks "
        "burnt in; not for primary diagnosis."
    )[:1024]
    sc.SourceImageSequence = [_reference(header)]
    sc.ReferencedImageSequence = [_reference(header)]
    return sc
