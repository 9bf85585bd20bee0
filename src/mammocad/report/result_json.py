"""Build the ``image`` objects of the result schema from pipeline containers.

Coordinates written here are always ORIGINAL pixel coordinates (see :mod:`mammocad.structures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mammocad.structures import Finding, Image, ImageQuality, Message, PreprocessedImage, Severity


def rejected_quality(image: Image, *, score: float = 0.0) -> ImageQuality:
    """Quality block of a rejected image: not acceptable, the rejection as the first issue,
    then the image's other errors — the quality gate's codes behind a rejection (``blank`` or
    ``no_anatomy`` beside ``no_tissue``; ``motion_blur`` and the like beside
    ``unacceptable_quality``), so a reader of codes need not parse the text. ``score`` is the
    gate's, where it assessed the image (a view refused for its quality); 0 where no gate ran."""
    issue = Message(
        code=image.rejection_code.value if image.rejection_code else "rejected",
        severity=Severity.ERROR,
        text=image.rejection_text or "The image was not processed.",
        sop_instance_uid=image.sop_instance_uid,
    )
    causes = tuple(
        message
        for message in image.messages
        if message.severity is Severity.ERROR and message.code != issue.code
    )
    return ImageQuality(score=score, acceptable=False, issues=(issue, *causes))


def has_known_size(image: Image) -> bool:
    """Whether the image can be written as a schema ``image`` (rows, columns ≥ 1)."""
    return image.rows >= 1 and image.columns >= 1


def image_to_dict(
    image: Image,
    *,
    preprocessed: PreprocessedImage | None = None,
    findings: Sequence[Finding] = (),
    quality: ImageQuality | None = None,
) -> dict[str, Any]:
    """The schema's ``image`` object for one image.

    ``quality`` overrides the preprocessing stage's technical checks (the full quality gate);
    a rejected image always reports its rejection as its quality issue.
    """
    if not has_known_size(image):
        raise ValueError(f"{image.source}: image size unknown; it cannot be a schema image object")
    if not image.is_processed:
        # a view the gate refused keeps the gate's score, so a reader sees how far it fell short
        quality = rejected_quality(image, score=preprocessed.quality.score if preprocessed else 0.0)
    elif quality is None:
        quality = preprocessed.quality if preprocessed else ImageQuality(score=1.0, acceptable=True)
    result: dict[str, Any] = {
        "sop_instance_uid": image.key,
        "series_instance_uid": image.series_instance_uid,
        "source": image.source,
        "laterality": image.laterality.value if image.laterality else None,
        "laterality_source": image.laterality_source.value if image.laterality_source else None,
        "view": image.view.value if image.view else None,
        "view_source": image.view_source.value if image.view_source else None,
        "rows": image.rows,
        "columns": image.columns,
        "status": image.status.value,
        "rejection_code": image.rejection_code.value if image.rejection_code else None,
        "quality": quality.to_dict(),
        "findings": [finding.to_dict() for finding in findings],
        "pixel_spacing_mm": list(image.pixel_spacing_mm) if image.pixel_spacing_mm else None,
        "manufacturer": image.manufacturer,
    }
    if preprocessed is not None:
        result["flipped"] = preprocessed.flipped
        result["breast_box"] = [round(float(v), 1) for v in preprocessed.breast_box]
        result["nipple"] = (
            [round(float(v), 1) for v in preprocessed.nipple] if preprocessed.nipple else None
        )
    if image.messages:
        result["x_messages"] = [message.to_dict() for message in image.messages]
    return result
