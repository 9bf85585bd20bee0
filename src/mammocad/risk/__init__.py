"""Risk: breast- and study-level malignancy probability.

The interim noisy-OR aggregate of the detector's findings (:mod:`mammocad.risk.aggregate`,
docs/analyze.md), mapped by the bundle's calibration when it has one
(:mod:`mammocad.risk.calibration`, docs/calibration.md). Choosing suspicion operating points
is fitting-time code in :mod:`mammocad.risk.operating_points`, not exported here.

The learned risk model (:mod:`mammocad.risk.features`, :mod:`~mammocad.risk.model`,
:mod:`~mammocad.risk.bundle`, :mod:`~mammocad.risk.apply`, docs/risk.md) replaces the
aggregate's breast probabilities when the bundle has one; it is imported from its modules
(it reads the fuse stage's outputs, which import this package).
"""

from mammocad.risk.aggregate import (
    DEFAULT_HIGH,
    DEFAULT_INTERMEDIATE,
    BreastRisk,
    StudyRisk,
    Suspicion,
    SuspicionThresholds,
    aggregate,
    noisy_or,
    rounded,
)
from mammocad.risk.calibration import (
    CALIBRATION_FILE,
    STUDY_CALIBRATION_FILE,
    CalibrationError,
    CalibrationMethod,
    Calibrator,
    fit_calibrator,
    load_calibration,
    save_calibration,
)

__all__ = [
    "CALIBRATION_FILE",
    "DEFAULT_HIGH",
    "DEFAULT_INTERMEDIATE",
    "STUDY_CALIBRATION_FILE",
    "BreastRisk",
    "CalibrationError",
    "CalibrationMethod",
    "Calibrator",
    "StudyRisk",
    "Suspicion",
    "SuspicionThresholds",
    "aggregate",
    "fit_calibrator",
    "load_calibration",
    "noisy_or",
    "rounded",
    "save_calibration",
]
