"""Phantom mammography studies with known truth, for tests, demos, training and benchmarks.

* :func:`generate_study` renders four views (RCC, LCC, RMLO, LMLO) in memory with their truth;
  :func:`generate_view` renders a single view quickly.
* :func:`write_studies` writes ``<out>/<study>/*.dcm`` plus ``truth.json`` in vendor-style
  DICOM variants (see docs/synthetic.md for the truth format).

Everything follows from the seed: the same seed gives the same pixels, UIDs and truth.
"""

from mammocad.synthetic.enum import (
    BurnedInKind,
    ChestWallSide,
    Defect,
    Density,
    PhotometricInterpretation,
    TagStyle,
    VoiKind,
)
from mammocad.synthetic.plan import LesionRequest
from mammocad.synthetic.preview import contact_sheet
from mammocad.synthetic.study import PhantomStudy, PhantomView, generate_study, generate_view
from mammocad.synthetic.truth import (
    BreastLesion,
    BreastTruth,
    BurnedIn,
    LesionTruth,
    Patient,
    StudyTruth,
    ViewTruth,
    read_truth,
    write_truth,
)
from mammocad.synthetic.variants import GE_LIKE, HOLOGIC_LIKE, SMALL, Grid, Variant, choose_variant
from mammocad.synthetic.writer import write_studies, write_study

__all__ = [
    "GE_LIKE",
    "HOLOGIC_LIKE",
    "SMALL",
    "BreastLesion",
    "BreastTruth",
    "BurnedIn",
    "BurnedInKind",
    "ChestWallSide",
    "Defect",
    "Density",
    "Grid",
    "LesionRequest",
    "LesionTruth",
    "Patient",
    "PhantomStudy",
    "PhantomView",
    "PhotometricInterpretation",
    "StudyTruth",
    "TagStyle",
    "Variant",
    "ViewTruth",
    "VoiKind",
    "choose_variant",
    "contact_sheet",
    "generate_study",
    "generate_view",
    "read_truth",
    "write_studies",
    "write_study",
    "write_truth",
]
