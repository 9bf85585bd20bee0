"""Preprocessing: breast mask, chest-wall side, pectoral muscle, nipple, crop, model input.

``preprocess_image(image, params)`` turns an :class:`~mammocad.structures.Image` (display
pixels on the original grid) into a :class:`~mammocad.structures.PreprocessedImage`: a
two-channel model input with the chest wall on the left, the exact
:class:`~mammocad.structures.Transform` back to original pixels, masks on the original grid and
technical quality checks. See docs/preprocessing.md for the method and its measured accuracy.
"""

from mammocad.preprocess.core import LATERAL_VIEWS, preprocess_image
from mammocad.preprocess.params import (
    PectoralParams,
    PreprocessParams,
    SecondChannelMethod,
    SecondChannelParams,
    TissueParams,
)

__all__ = [
    "LATERAL_VIEWS",
    "PectoralParams",
    "PreprocessParams",
    "SecondChannelMethod",
    "SecondChannelParams",
    "TissueParams",
    "preprocess_image",
]
