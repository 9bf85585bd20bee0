"""``preprocess_image``: one :class:`Image` in, one :class:`PreprocessedImage` out.

Segmentation (tissue, chest-wall side, pectoral muscle, nipple) runs on the reduced working
grid (:mod:`mammocad.preprocess.grid`); only the masks handed out and the final crop touch the
full-resolution grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mammocad.preprocess.channels import second_channel
from mammocad.preprocess.checks import technical_quality
from mammocad.preprocess.geometry import breast_box, make_transform, mask_to_input, to_input
from mammocad.preprocess.grid import U8Array, WorkingGrid
from mammocad.preprocess.landmarks import find_nipple
from mammocad.preprocess.messages import laterality_messages, pectoral_not_found
from mammocad.preprocess.orientation import chest_wall_on_right
from mammocad.preprocess.params import PreprocessParams
from mammocad.preprocess.pectoral import PectoralBoundary, find_pectoral
from mammocad.preprocess.tissue import segment_tissue
from mammocad.structures import (
    BoolArray,
    FloatArray,
    Image,
    PreprocessedImage,
    Transform,
    ViewPosition,
)

#: Views that show the pectoral muscle (lateral projections).
LATERAL_VIEWS = frozenset({ViewPosition.MLO, ViewPosition.ML, ViewPosition.LM})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Analysis:
    """Everything found on the working grid. ``tissue`` is as stored; ``oriented`` is mirrored
    when ``on_right`` (chest wall left), the frame of ``pectoral`` and ``nipple``."""

    grid: WorkingGrid
    small: U8Array
    valid: BoolArray | None
    tissue: BoolArray
    on_right: bool
    oriented: BoolArray
    pectoral: PectoralBoundary | None
    nipple: tuple[float, float] | None


def preprocess_image(image: Image, params: PreprocessParams) -> PreprocessedImage:
    """Segment, orient, crop and resize one mammogram for the model.

    Side effect: when ``image.laterality`` is None it is set from the chest-wall side (standard
    storage convention, :mod:`mammocad.preprocess.orientation`) with ``laterality_source =
    TagSource.IMAGE``, and a ``laterality_from_image`` warning is returned in ``messages``.

    Raises:
        PreprocessError: ``NO_TISSUE`` when no breast is found (blank image, pure noise).
        ValueError: the image has no pixels, they are not a 2-D array, some are NaN or
            infinite, or the padding mask does not match them.
    """
    pixels = _checked_pixels(image)
    found = _analyse(image, pixels, params)
    tissue = found.grid.expand_mask(found.tissue)
    box = breast_box(tissue)
    transform = make_transform(
        box=box,
        original_size=(pixels.shape[0], pixels.shape[1]),
        flipped=found.on_right,
        margin=params.crop_margin,
        input_size=params.input_size,
    )
    messages = laterality_messages(image, found.on_right)
    lateral = image.view in LATERAL_VIEWS
    if lateral and found.pectoral is None:
        messages.append(pectoral_not_found(image))
    return PreprocessedImage(
        image=image,
        input=_model_input(pixels, found, transform, params),
        transform=transform,
        tissue_mask=tissue,
        pectoral_mask=_pectoral_mask(found, tissue) if lateral else None,
        breast_box=box,
        nipple=_nipple_original(found),
        chest_wall_on_right=found.on_right,
        quality=technical_quality(
            small=found.small,
            tissue=found.tissue,
            valid=found.valid,
            chest_wall_right=found.on_right,
            sop_instance_uid=image.sop_instance_uid,
        ),
        messages=messages,
    )


def _checked_pixels(image: Image) -> FloatArray:
    if image.pixels is None:
        raise ValueError(
            f"image {image.key} has no pixels (status {image.status.value}); "
            "only processed images can be preprocessed"
        )
    pixels = np.asarray(image.pixels, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 16:
        raise ValueError(f"pixels must be a 2-D grey image, got shape {pixels.shape}")
    if not np.isfinite(pixels).all():
        # one NaN spreads through every filter: a NaN quality score, a NaN model input
        raise ValueError(
            f"image {image.key} has {np.count_nonzero(~np.isfinite(pixels))} NaN or infinite "
            "pixels; display pixels must be finite values in [0, 1]: render the file again "
            "or replace them (e.g. with 0, as padding is) before preprocessing"
        )
    if image.padding_mask is not None and image.padding_mask.shape != pixels.shape:
        raise ValueError(
            f"padding_mask has shape {image.padding_mask.shape} but pixels {pixels.shape}; "
            "build both from the same frame"
        )
    return pixels


def _analyse(image: Image, pixels: FloatArray, params: PreprocessParams) -> _Analysis:
    grid = WorkingGrid.for_size(pixels.shape, params.tissue.work_size)
    small = grid.reduce(pixels)
    padding = None if image.padding_mask is None else grid.reduce_mask(image.padding_mask)
    segmentation = segment_tissue(small, padding=padding, params=params.tissue)
    on_right = chest_wall_on_right(
        segmentation.smooth, segmentation.mask, background=segmentation.background_level
    )
    smooth, oriented = segmentation.smooth, segmentation.mask
    if on_right:
        smooth, oriented = smooth[:, ::-1], oriented[:, ::-1]
    oriented = np.ascontiguousarray(oriented)
    pectoral = None
    if image.view in LATERAL_VIEWS:
        # a light Gaussian on top of the median smooths the 8-bit steps for edge sampling
        edges = cv2.GaussianBlur(np.ascontiguousarray(smooth), (0, 0), 1.5)
        edges = edges.astype(np.float32) * np.float32(1 / 255)
        pectoral = find_pectoral(edges, oriented, params.pectoral)
    return _Analysis(
        grid=grid,
        small=small,
        valid=None if padding is None else ~padding,
        tissue=segmentation.mask,
        on_right=on_right,
        oriented=oriented,
        pectoral=pectoral,
        nipple=find_nipple(oriented, pectoral),
    )


def _pectoral_mask(found: _Analysis, tissue: BoolArray) -> BoolArray:
    """On the original grid; all False when no muscle was found."""
    if found.pectoral is None:
        return np.zeros_like(tissue)
    small = found.pectoral.mask(found.oriented)
    if found.on_right:
        small = np.ascontiguousarray(small[:, ::-1])
    return found.grid.expand_mask(small) & tissue


def _nipple_original(found: _Analysis) -> tuple[float, float] | None:
    """Oriented working-grid index → pixel-edge coordinates on the original grid."""
    if found.nipple is None:
        return None
    x, y = found.nipple[0] + 0.5, found.nipple[1] + 0.5  # index → edge coords: pixel centre
    if found.on_right:
        x = found.grid.shape[1] - x
    return x * found.grid.factor, y * found.grid.factor


def _model_input(
    pixels: FloatArray, found: _Analysis, transform: Transform, params: PreprocessParams
) -> FloatArray:
    display = to_input(pixels, transform)
    inside = mask_to_input(found.tissue, found.grid.factor, transform)
    # labels, markers and film background outside the breast are not for the model
    display[~inside] = 0.0
    rows, cols = transform.content_size
    result = np.zeros((2, *transform.input_size), dtype=np.float32)
    result[0] = display
    result[1, :rows, :cols] = second_channel(
        np.ascontiguousarray(display[:rows, :cols]), inside[:rows, :cols], params.second_channel
    )
    np.clip(result, 0.0, 1.0, out=result)
    return result
