"""Coded notes preprocessing attaches to an image (laterality and pectoral muscle)."""

from __future__ import annotations

from mammocad.preprocess.orientation import laterality_from_chest_wall
from mammocad.structures import Image, Message, Severity, TagSource


def laterality_messages(image: Image, chest_wall_right: bool) -> list[Message]:
    """Fill a missing laterality from the chest-wall side, or flag a tag that contradicts it.

    Side effect: ``image.laterality`` / ``laterality_source`` are set when laterality is None.
    A present tag is never overwritten: the image may be stored mirrored (as the DDSM
    tissue-mask set's A_ and D_ cases are) and a person has to decide which is wrong.
    """
    side = "right" if chest_wall_right else "left"
    implied = laterality_from_chest_wall(chest_wall_right)
    if image.laterality is None:
        image.laterality = implied
        image.laterality_source = TagSource.IMAGE
        return [
            Message(
                code="laterality_from_image",
                severity=Severity.WARNING,
                text=f"The file gives no laterality; {implied.value} was inferred from the "
                f"chest wall on the image's {side} (standard storage), so check it before "
                "reporting.",
                sop_instance_uid=image.sop_instance_uid,
            )
        ]
    if image.laterality is not implied:
        return [
            Message(
                code="laterality_mismatch",
                # some vendors store breasts this way on purpose; the chest-wall side found in
                # the image drives the mirroring, so this informs rather than warns
                severity=Severity.INFO,
                text=f"Laterality is {image.laterality.value} but the chest wall is on the "
                f"image's {side}, where a {implied.value} breast is usually stored; the image "
                "was oriented by its content. If this vendor does not store images this way, "
                "check the laterality tag.",
                sop_instance_uid=image.sop_instance_uid,
            )
        ]
    return []


def pectoral_not_found(image: Image) -> Message:
    return Message(
        code="pectoral_not_found",
        severity=Severity.INFO,
        text="No pectoral-muscle edge was found on this lateral view; the muscle may be out of "
        "view (check the positioning) or too faint to outline.",
        sop_instance_uid=image.sop_instance_uid,
    )
