"""Phantom views as DICOM Digital Mammography X-Ray Images — For Presentation.

Attributes follow DICOM PS3.3 A.26 (Digital Mammography X-Ray Image IOD): the Mammography
Image Module (C.8.11.7), DX Image (C.8.11.3) and DX Detector (C.8.11.4) modules, and the VOI
LUT Module (C.11.2). Vendor variants decide which optional attributes appear.
"""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)

from mammocad.structures import Laterality, ViewPosition
from mammocad.synthetic.enum import (
    ChestWallSide,
    PhotometricInterpretation,
    TagStyle,
    VoiKind,
)
from mammocad.synthetic.truth import StudyTruth, ViewTruth
from mammocad.synthetic.voi import UInt16Array, VoiEncoding

#: SNOMED CT codes of View Code Sequence (0054,0220), DICOM PS3.16 CID 4014.
VIEW_CODES: dict[ViewPosition, tuple[str, str]] = {
    ViewPosition.CC: ("399162004", "cranio-caudal"),
    ViewPosition.MLO: ("399368009", "medio-lateral oblique"),
}
SOFTWARE_VERSION = "mammocad-synthetic 1"


def patient_orientation(view: ViewTruth) -> list[str]:
    """Patient Orientation (0020,0020) for mammograms, PS3.3 C.8.11.7.1.

    Row direction: towards the nipple (A) or the chest wall (P). Column direction: on CC
    towards the medial side (the lateral side is up), on MLO towards the feet and medially.
    """
    row = "A" if view.chest_wall_side is ChestWallSide.LEFT else "P"
    medial = "R" if view.laterality is Laterality.L else "L"
    column = medial if view.view is ViewPosition.CC else f"F{medial}"
    return [row, column]


def _file_meta(view: ViewTruth, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = UID(view.sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(PYDICOM_IMPLEMENTATION_UID)
    return meta


def _patient_study(ds: Dataset, truth: StudyTruth) -> None:
    """Patient (C.7.1.1) and General Study (C.7.2.1) modules."""
    patient = truth.patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{patient.age_years:03d}Y"
    ds.StudyInstanceUID = truth.study_instance_uid
    ds.StudyDate = truth.study_date
    ds.StudyTime = "093000"
    ds.AccessionNumber = truth.accession_number
    ds.ReferringPhysicianName = ""
    ds.StudyID = truth.accession_number[-8:]
    ds.StudyDescription = "SCREENING MAMMOGRAPHY (PHANTOM)"


def _series_equipment(ds: Dataset, truth: StudyTruth) -> None:
    """General/DX Series (C.7.3.1, C.8.11.1) and General Equipment (C.7.5.1) modules."""
    ds.Modality = "MG"
    ds.SeriesInstanceUID = truth.series_instance_uid
    ds.SeriesNumber = 1
    ds.SeriesDate = truth.study_date
    ds.SeriesDescription = "Screening views"
    ds.Manufacturer = truth.variant.grid.manufacturer
    ds.ManufacturerModelName = truth.variant.grid.model_name
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.InstitutionName = "mammocad phantom site"


def _laterality_view(ds: Dataset, view: ViewTruth, style: TagStyle) -> None:
    """Laterality and view as the vendor variant records them (C.8.11.7, C.7.3.1)."""
    if style is TagStyle.SERIES_LATERALITY:
        ds.Laterality = view.laterality.value
    else:
        ds.ImageLaterality = view.laterality.value
    if style is not TagStyle.CODE_SEQUENCE_ONLY:
        ds.ViewPosition = view.view.value
    if style is not TagStyle.SERIES_LATERALITY:
        code = Dataset()
        code.CodeValue, code.CodeMeaning = VIEW_CODES[view.view]
        code.CodingSchemeDesignator = "SCT"
        code.ViewModifierCodeSequence = DicomSequence([])
        ds.ViewCodeSequence = DicomSequence([code])
    ds.PatientOrientation = patient_orientation(view)


def _image(ds: Dataset, truth: StudyTruth, view: ViewTruth, instance_number: int) -> None:
    """SOP Common, General Image (C.7.6.1) and DX Image (C.8.11.3) modules."""
    ds.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    ds.SOPInstanceUID = view.sop_instance_uid
    ds.InstanceNumber = instance_number
    ds.ContentDate = truth.study_date
    ds.ContentTime = f"0930{10 + instance_number:02d}"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.AcquisitionContextSequence = DicomSequence([])  # Type 2, C.7.6.14
    ds.BurnedInAnnotation = "YES" if view.burned_in else "NO"
    ds.LossyImageCompression = "00"
    ds.PixelIntensityRelationship = "LOG"
    inverted = truth.variant.photometric is PhotometricInterpretation.MONOCHROME1
    # dense tissue lets less X-ray through: it is stored high in MONOCHROME2 (sign −1: higher
    # values, less intensity) and low in MONOCHROME1 (sign +1)
    ds.PixelIntensityRelationshipSign = 1 if inverted else -1
    # DX Image Module (C.8.11.3): INVERSE goes with MONOCHROME1 and IDENTITY with MONOCHROME2;
    # both state the one inversion the photometric interpretation already implies
    ds.PresentationLUTShape = "INVERSE" if inverted else "IDENTITY"
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"


def _mammography(ds: Dataset, view: ViewTruth) -> None:
    """DX Anatomy Imaged (C.8.11.2), DX Detector (C.8.11.4) and Mammography Image (C.8.11.7)
    modules, apart from laterality and view (see :func:`_laterality_view`)."""
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.BodyPartExamined = "BREAST"
    ds.OrganExposed = "BREAST"
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = (
        "76752008",
        "SCT",
        "Breast",
    )
    ds.AnatomicRegionSequence = DicomSequence([region])
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.DetectorType = "DIRECT"
    ds.ImagerPixelSpacing = [view.pixel_spacing_mm, view.pixel_spacing_mm]
    ds.PixelSpacing = [view.pixel_spacing_mm, view.pixel_spacing_mm]


def _pixels(ds: Dataset, stored: UInt16Array, truth: StudyTruth) -> None:
    """Image Pixel Module (C.7.6.3)."""
    ds.Rows, ds.Columns = (int(v) for v in stored.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = truth.variant.photometric.value
    ds.BitsAllocated = 16
    ds.BitsStored = truth.variant.bits_stored
    ds.HighBit = truth.variant.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = stored.tobytes()


def _voi(ds: Dataset, voi: VoiEncoding) -> None:
    """VOI LUT Module (C.11.2): a window (LINEAR / SIGMOID) or a VOI LUT Sequence."""
    if voi.kind is VoiKind.LUT:
        if voi.lut_data is None:
            raise ValueError("a LUT encoding needs lut_data")
        item = Dataset()
        item.LUTDescriptor = [len(voi.lut_data), voi.lut_first, voi.bits_stored]
        item.LUTExplanation = "PHANTOM S-CURVE"
        # LUT Data is US or OW (PS3.3 C.11.2.1.1); OW bytes keep a 4096-entry table compact
        item.add_new(0x00283006, "OW", voi.lut_data.astype("<u2").tobytes())
        ds.VOILUTSequence = DicomSequence([item])
        return
    windows = [(voi.centre, voi.width), *voi.extra_windows]
    ds.WindowCenter = [float(c) for c, _ in windows] if len(windows) > 1 else voi.centre
    ds.WindowWidth = [float(w) for _, w in windows] if len(windows) > 1 else voi.width
    names = ["NORMAL", "HARDER", "SOFTER"][: len(windows)]
    ds.WindowCenterWidthExplanation = names if len(names) > 1 else names[0]
    if voi.kind is VoiKind.SIGMOID:
        ds.VOILUTFunction = "SIGMOID"
    elif len(windows) > 1:
        ds.VOILUTFunction = "LINEAR"  # some vendors write it, some leave it out (the default)


def build_dataset(
    *,
    truth: StudyTruth,
    view: ViewTruth,
    stored: UInt16Array,
    voi: VoiEncoding,
    instance_number: int,
) -> Dataset:
    """The uncompressed dataset of one view (Explicit VR Little Endian in its file meta)."""
    ds = Dataset()
    ds.file_meta = _file_meta(view, ExplicitVRLittleEndian)
    _patient_study(ds, truth)
    _series_equipment(ds, truth)
    _laterality_view(ds, view, truth.variant.tag_style)
    _image(ds, truth, view, instance_number)
    _mammography(ds, view)
    _pixels(ds, stored, truth)
    _voi(ds, voi)
    return ds
