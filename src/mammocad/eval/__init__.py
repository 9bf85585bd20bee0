"""Evaluation metrics: FROC for the detector (ROC-AUC and calibration come with the risk model)."""

from mammocad.eval.froc import (
    ANY_LESION,
    DEFAULT_FP_RATES,
    HIT_IOU,
    MALIGNANT,
    FrocCurve,
    FrocReport,
    ImagePredictions,
    ImageTruth,
    evaluate_froc,
    hit_matrix,
    plot_froc,
    write_froc_csv,
)

__all__ = [
    "ANY_LESION",
    "DEFAULT_FP_RATES",
    "HIT_IOU",
    "MALIGNANT",
    "FrocCurve",
    "FrocReport",
    "ImagePredictions",
    "ImageTruth",
    "evaluate_froc",
    "hit_matrix",
    "plot_froc",
    "write_froc_csv",
]
