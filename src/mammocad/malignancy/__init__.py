"""Second-stage malignancy classifier: a small CNN that reads a context window around each
detected box of the model input and replaces the detector head's malignancy probability.

Why a separate model (docs/malignancy.md): the detector's malignancy head, trained jointly on
the box head's 7×7 RoI features, learnt nothing on the phantoms (its BCE stayed at the label
entropy and its AUC between hit malignant and benign lesions was 0.46 for bundle 0.2.0),
while the same detector localises lesions. A dedicated classifier on lesion-sized windows
sees the margin (spiculated, irregular vs circumscribed) and calcification morphology at the
input's full resolution, and is cheap to train on a CPU.
"""

from mammocad.malignancy.apply import rescore
from mammocad.malignancy.bundle import (
    MALIGNANCY_FILE,
    LoadedClassifier,
    load_classifier,
    save_classifier,
)
from mammocad.malignancy.model import ClassifierConfig, LesionClassifier, crop_windows

__all__ = [
    "MALIGNANCY_FILE",
    "ClassifierConfig",
    "LesionClassifier",
    "LoadedClassifier",
    "crop_windows",
    "load_classifier",
    "rescore",
    "save_classifier",
]
