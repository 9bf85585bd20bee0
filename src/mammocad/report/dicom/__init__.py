"""DICOM outputs of one study: one SR (TID 1500 or Mammography CAD TID 4000), SCs, GSPS.

See docs/dicom-outputs.md. Needs ``highdicom``.
"""

from mammocad.report.dicom.writer import (
    DicomOutputs,
    PictureSource,
    SrTemplate,
    write_dicom_outputs,
)

__all__ = ["DicomOutputs", "PictureSource", "SrTemplate", "write_dicom_outputs"]
