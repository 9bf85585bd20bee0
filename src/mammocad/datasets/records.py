"""The internal record every dataset adapter produces.

Boxes and points are in ORIGINAL pixel coordinates of the image file the record names.
``annotated_labels`` is the class set the source labels at all: a class outside it is unknown on
that image, never background (mini-MIAS, for example, marks no lymph nodes or nipples).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammocad.structures import FindingLabel, Laterality, ViewPosition

NIPPLE = "nipple"


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionAnnotation:
    """One annotated lesion; ``malignant`` is None when the source does not say."""

    label: FindingLabel
    box: tuple[float, float, float, float]
    malignant: bool | None
    lesion_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotatedImage:
    """One image with its annotations, as a dataset adapter yields it."""

    path: Path
    image_id: str
    patient_id: str
    source: str
    laterality: Laterality | None
    view: ViewPosition | None
    lesions: tuple[LesionAnnotation, ...] = ()
    nipple: tuple[float, float] | None = None
    annotated_labels: frozenset[str] = field(default_factory=frozenset)
    #: False when the image has an abnormality the source could not localise (e.g. mini-MIAS
    #: rows without coordinates): detector training must not treat the image as lesion-free.
    fully_localised: bool = True
    density: str | None = None
    study_id: str | None = None

    @property
    def malignant(self) -> bool | None:
        """Image-level malignancy: True if any lesion is malignant, None when unknown."""
        if any(lesion.malignant for lesion in self.lesions):
            return True
        if any(lesion.malignant is None for lesion in self.lesions) or not self.fully_localised:
            return None
        return False
