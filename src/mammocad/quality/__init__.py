"""Quality gate: is each image fit to read? Heuristic checks with coded reasons.

``assess_quality(image, prepared, params)`` runs after
:func:`mammocad.preprocess.preprocess_image` (``prepared`` is None when preprocessing refused
the image) and returns an :class:`~mammocad.structures.ImageQuality`. See docs/quality.md for
the checks, their thresholds and the measured catch and refusal rates.
"""

from mammocad.quality.gate import assess_quality
from mammocad.quality.measure import Measurements, measure
from mammocad.quality.params import QualityParams

__all__ = ["Measurements", "QualityParams", "assess_quality", "measure"]
