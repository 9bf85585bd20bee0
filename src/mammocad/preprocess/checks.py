"""Technical checks preprocessing can make honestly, as an :class:`ImageQuality`.

These are measurements, not judgements of diagnostic quality (the learned quality gate comes
later): how much of the image is breast, whether the breast is cut by the image edge, how
much of it is clipped to black or white by the VOI window, and how much contrast it has. They
run on the working grid (area-averaged, so a clipped *region* still reads as clipped). The
score drops by 0.2 per warning and 0.5 per error; ``acceptable`` is False only when an
error-level issue was found.
"""

from __future__ import annotations

import numpy as np

from mammocad.preprocess.grid import U8Array
from mammocad.structures import BoolArray, ImageQuality, Message, Severity

_SMALL_TISSUE = 0.05  # share of the image: a spot or magnified view, or a wrong crop
_FULL_TISSUE = 0.97  # share of the image: no background left to separate the breast from
_CUT_OFF = 0.10  # share of the breast height touching the edge opposite the chest wall
_CLIPPED_WARN, _CLIPPED_ERROR = 0.05, 0.30  # share of breast pixels at either end of the window
_FLAT_WARN, _FLAT_ERROR = 0.10, 0.03  # spread of the breast's 5th-95th percentiles, display units
_PENALTY = {Severity.WARNING: 0.2, Severity.ERROR: 0.5}


def technical_quality(
    *,
    small: U8Array,
    tissue: BoolArray,
    valid: BoolArray | None,
    chest_wall_right: bool,
    sop_instance_uid: str | None = None,
) -> ImageQuality:
    """Checks on the working grid; ``valid`` marks non-padding pixels (None: all)."""
    found = (
        _tissue_share(tissue, valid),
        _cut_off(tissue, chest_wall_right),
        _clipping(small[tissue]),
        _flatness(small[tissue]),
    )
    issues = [
        Message(code=code, severity=severity, text=text, sop_instance_uid=sop_instance_uid)
        for code, severity, text in (issue for issue in found if issue is not None)
    ]
    score = max(0.0, 1.0 - sum(_PENALTY.get(issue.severity, 0.0) for issue in issues))
    acceptable = not any(issue.severity is Severity.ERROR for issue in issues)
    return ImageQuality(score=score, acceptable=acceptable, issues=tuple(issues))


_Issue = tuple[str, Severity, str] | None


def _tissue_share(tissue: BoolArray, valid: BoolArray | None) -> _Issue:
    area = tissue.size if valid is None else max(int(valid.sum()), 1)
    share = float(tissue.sum()) / area
    if share < _SMALL_TISSUE:
        return (
            "small_tissue_area",
            Severity.WARNING,
            f"Only {share:.0%} of the image is breast; check that this is a full-field view, "
            "not a spot or magnified view, before relying on the findings.",
        )
    if share > _FULL_TISSUE:
        return (
            "no_background",
            Severity.WARNING,
            "The breast fills the whole image, so its outline and crop could not be checked; "
            "make sure the image is not cropped too tightly.",
        )
    return None


def _cut_off(tissue: BoolArray, chest_wall_right: bool) -> _Issue:
    far_edge = tissue[:, 0] if chest_wall_right else tissue[:, -1]
    height = max(int(tissue.any(axis=1).sum()), 1)
    if far_edge.sum() > _CUT_OFF * height:
        return (
            "breast_cut_off",
            Severity.WARNING,
            "The breast runs off the image edge opposite the chest wall, so its front (nipple "
            "region) may be missing; check the positioning and consider a repeat view.",
        )
    return None


def _clipping(values: U8Array) -> _Issue:
    if values.size == 0:
        return None
    clipped = float(np.count_nonzero((values <= 1) | (values >= 254))) / values.size
    if clipped < _CLIPPED_WARN:
        return None
    severity = Severity.ERROR if clipped >= _CLIPPED_ERROR else Severity.WARNING
    return (
        "clipped_tissue",
        severity,
        f"{clipped:.0%} of the breast is clipped to pure black or white by the display window; "
        "check the VOI window (Window Center/Width or VOI LUT) of the file.",
    )


def _flatness(values: U8Array) -> _Issue:
    if values.size == 0:
        return None
    low, high = np.percentile(values, [5, 95])
    spread = float(high - low) / 255.0
    if spread >= _FLAT_WARN:
        return None
    severity = Severity.ERROR if spread < _FLAT_ERROR else Severity.WARNING
    return (
        "low_contrast",
        severity,
        f"The breast spans only {spread:.0%} of the display range; check the exposure and "
        "the VOI window, a flat image hides lesions.",
    )
