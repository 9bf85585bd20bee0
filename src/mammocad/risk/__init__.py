"""Risk: breast- and study-level malignancy probability.

For now only the interim, uncalibrated noisy-OR aggregate of the detector's findings
(:mod:`mammocad.risk.aggregate`, docs/analyze.md); the calibrated risk model replaces it.
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

__all__ = [
    "DEFAULT_HIGH",
    "DEFAULT_INTERMEDIATE",
    "BreastRisk",
    "StudyRisk",
    "Suspicion",
    "SuspicionThresholds",
    "aggregate",
    "noisy_or",
    "rounded",
]
