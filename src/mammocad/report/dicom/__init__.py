"""DICOM outputs of one study: Comprehensive SR (TID 1500), Secondary Captures, GSPS.

See docs/dicom-outputs.md. Needs ``highdicom``.
"""

from mammocad.report.dicom.writer import DicomOutputs, PictureSource, write_dicom_outputs

__all__ = ["DicomOutputs", "PictureSource", "write_dicom_outputs"]
