"""Lesion ranker: the probability that a detected box is a malignant lesion.

The detector scores "a lesion of this class here" and the lesion classifier (:mod:`mammocad.
malignancy`) "malignant, given the window"; their product ranks boxes for malignancy, but it
ignores what else is known about a box: its size and shape, where it sits in the breast, and
how it compares with the other boxes of the same image. The ranker is a small gradient-boosted
tree model over those facts, fitted on held-out detections of phantom studies against their
truth (a box hitting a malignant lesion by the FROC hit rule is positive), applied with numpy
like the risk model (:mod:`mammocad.risk.model`). It adds a number per finding; it changes no
score, box or malignancy, so the risk model reads what it was trained on.
"""

from mammocad.ranker.bundle import RANKER_FILE, load_ranker, save_ranker
from mammocad.ranker.features import candidate_features, feature_names
from mammocad.ranker.model import LesionRanker, fit_ranker

__all__ = [
    "RANKER_FILE",
    "LesionRanker",
    "candidate_features",
    "feature_names",
    "fit_ranker",
    "load_ranker",
    "save_ranker",
]
