"""``assess_quality``: is one preprocessed mammogram fit to read, and if not, why.

It runs after :func:`mammocad.preprocess.preprocess_image` and before detection. It keeps the
technical findings preprocessing already made (tissue share, clipping, contrast, anterior
cut-off, pectoral muscle) and adds the heuristic checks of :mod:`mammocad.quality.checks`.
"""

from __future__ import annotations

import numpy as np

from mammocad.quality import checks
from mammocad.quality.measure import measure
from mammocad.quality.params import QualityParams
from mammocad.structures import Image, ImageQuality, Message, PreprocessedImage, Severity

#: preprocessing's codes that a quality issue replaces (same fault, better named).
_REPLACES = {
    "breast_cut_off": {"breast_cut_off"},
    "overexposed": {"clipped_tissue", "low_contrast"},
    "underexposed": {"clipped_tissue", "low_contrast"},
    "blank": {"low_contrast"},
    "no_anatomy": {"low_contrast", "no_background"},
}


def assess_quality(
    image: Image, prepared: PreprocessedImage | None, params: QualityParams
) -> ImageQuality:
    """Score in [0, 1] (1 = good), ``acceptable`` (no error-level issue) and coded issues.

    ``prepared`` is None when preprocessing refused the image (it found no tissue): such an
    image is never fit to read and gets a ``blank`` error when its pixels are uniform, else a
    ``no_anatomy`` error. The score drops by
    ``params.error_penalty`` per error and ``params.warning_penalty`` per warning.
    """
    if prepared is None:
        return _result([_refused(image, params)], (), image.sop_instance_uid, params)
    m = measure(prepared, params)
    candidates = (
        checks.no_anatomy(m, params),
        checks.blank(m, params),
        checks.overexposed(m, params),
        checks.underexposed(m, params),
        checks.breast_cut_off(m, prepared, params),
        checks.motion_blur(m, params),
        checks.pectoral_not_shown(m, prepared, params),
        checks.implant(m, params),
        checks.unexpected_view(prepared, params),
    )
    found = [issue for issue in candidates if issue is not None]
    for code in ("blank", "no_anatomy"):  # a flat image has no neighbour correlation either
        if any(issue[0] == code for issue in found):
            # no anatomy to judge: exposure, blur and positioning findings would be noise
            found = [issue for issue in found if issue[0] == code]
            break
    replaced = set().union(*(_REPLACES.get(code, set()) for code, _, _ in found))
    kept = tuple(issue for issue in prepared.quality.issues if issue.code not in replaced)
    return _result(found, kept, image.sop_instance_uid, params)


def _refused(image: Image, params: QualityParams) -> checks.Issue:
    if image.pixels is not None:
        low, high = np.percentile(image.pixels, [1, 99])
        if high - low < params.min_spread:
            return (
                "blank",
                Severity.ERROR,
                "The image is uniform: nothing was exposed or the VOI window is blank; check "
                "the exposure and the file, and repeat the image.",
            )
    return (
        "no_anatomy",
        Severity.ERROR,
        "No breast was found on the image; check that the file is a mammogram with the "
        "breast in view and repeat or re-send it.",
    )


def _result(
    found: list[checks.Issue],
    kept: tuple[Message, ...],
    sop_instance_uid: str | None,
    params: QualityParams,
) -> ImageQuality:
    issues = kept + tuple(
        Message(code=code, severity=severity, text=text, sop_instance_uid=sop_instance_uid)
        for code, severity, text in found
    )
    penalty = {Severity.ERROR: params.error_penalty, Severity.WARNING: params.warning_penalty}
    score = max(0.0, 1.0 - sum(penalty.get(issue.severity, 0.0) for issue in issues))
    acceptable = not any(issue.severity is Severity.ERROR for issue in issues)
    return ImageQuality(score=score, acceptable=acceptable, issues=issues)
