"""Outputs of one analysis: result JSON (per the shared schema), pictures, DICOM objects."""
