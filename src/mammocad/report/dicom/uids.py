"""Deterministic UIDs for the DICOM outputs, so that processing a study again replaces objects.

A UID is :func:`pydicom.uid.generate_uid` with ``entropy_srcs`` = the study's StudyInstanceUID,
the model name and version, what the object is (``sr``, ``sc``, ``gsps``, plus ``series`` for a
series UID) and, for a per-image object, the source image's SOPInstanceUID. The same study
analysed by the same model version therefore gets the same SR, SC and GSPS UIDs, and a receiving
PACS overwrites the earlier objects instead of piling up copies; a new model version makes new
objects beside the old ones. The UID root is pydicom's (``1.2.826.0.1.3680043.8.498.``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import generate_uid


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputUids:
    """UID factory for one study and one model version."""

    study_instance_uid: str
    model_name: str
    model_version: str

    def derive(self, kind: str, *parts: str) -> str:
        """The UID of ``kind`` (and ``parts``, e.g. a source SOPInstanceUID) for this study."""
        sources = [self.study_instance_uid, self.model_name, self.model_version, kind, *parts]
        return str(generate_uid(entropy_srcs=sources))

    def series(self, kind: str, *parts: str) -> str:
        """SeriesInstanceUID of the new series holding the objects of ``kind`` (and ``parts``,
        e.g. the breast of a series that holds one breast's objects)."""
        return self.derive(kind, "series", *parts)

    def instance(self, kind: str, source_sop_instance_uid: str | None = None) -> str:
        """SOPInstanceUID of the object of ``kind`` (per source image when one is given)."""
        parts = (source_sop_instance_uid,) if source_sop_instance_uid else ()
        return self.derive(kind, "instance", *parts)
