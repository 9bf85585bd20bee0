"""Coded values of the phantom generator, named after the DICOM attributes they end up in."""

from __future__ import annotations

from enum import StrEnum


class Density(StrEnum):
    """BI-RADS breast composition (ACR BI-RADS Atlas, 5th ed.): A almost entirely fatty,
    B scattered fibroglandular, C heterogeneously dense, D extremely dense."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def glandular_fraction(self) -> float:
        """Share of the breast area rendered as fibroglandular tissue (middle of the category)."""
        return {"A": 0.12, "B": 0.35, "C": 0.60, "D": 0.84}[self.value]


class Defect(StrEnum):
    """Technical defects an image can carry; each one should make a quality check complain."""

    NOISE = "noise"  # white noise, no anatomy at all
    BLANK = "blank"  # uniform image, nothing exposed
    BURNED_OUT = "burned_out"  # over-exposed: tissue washed out to near white
    CUT_OFF = "cut_off"  # the breast runs off the image edge
    MOTION_BLUR = "motion_blur"  # the breast moved during the exposure


class PhotometricInterpretation(StrEnum):
    """Photometric Interpretation (0028,0004), DICOM PS3.3 C.7.6.3.1.2."""

    MONOCHROME1 = "MONOCHROME1"  # minimum stored value is displayed white
    MONOCHROME2 = "MONOCHROME2"  # minimum stored value is displayed black


class VoiKind(StrEnum):
    """How a file carries its VOI transformation, DICOM PS3.3 C.11.2."""

    WINDOW = "window"  # Window Center/Width with VOI LUT Function LINEAR (or absent)
    SIGMOID = "sigmoid"  # Window Center/Width with VOI LUT Function SIGMOID
    LUT = "lut"  # VOI LUT Sequence (LUT Descriptor + LUT Data)


class TagStyle(StrEnum):
    """Which of the laterality / view attributes a vendor variant fills in."""

    FULL = "full"  # Image Laterality, View Position and View Code Sequence
    CODE_SEQUENCE_ONLY = "code_sequence_only"  # Image Laterality + View Code Sequence only
    SERIES_LATERALITY = "series_laterality"  # Laterality (0020,0060) + View Position only


class ChestWallSide(StrEnum):
    """Image edge the chest wall touches, in the stored pixel grid."""

    LEFT = "left"
    RIGHT = "right"


class BurnedInKind(StrEnum):
    """Things burned into the pixels besides anatomy."""

    TEXT = "text"  # a view label such as "L MLO"
    MARKER = "marker"  # a lead marker blob
