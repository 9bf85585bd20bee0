"""Quality gate: is each image fit to read? Heuristic checks with coded reasons, combined
with a small learned model (:class:`QualityModel`, shipped as JSON).

``assess_quality(image, prepared, params)`` runs after
:func:`mammocad.preprocess.preprocess_image` (``prepared`` is None when preprocessing refused
the image) and returns an :class:`~mammocad.structures.ImageQuality`. See docs/quality.md for
the checks, their thresholds and the measured catch and refusal rates.
"""

from mammocad.quality.gate import assess_quality
from mammocad.quality.learned import QualityModel, shipped_model
from mammocad.quality.measure import Measurements, measure
from mammocad.quality.params import QualityParams

__all__ = [
    "Measurements",
    "QualityModel",
    "QualityParams",
    "assess_quality",
    "measure",
    "shipped_model",
]
