"""``assess_quality``: is one preprocessed mammogram fit to read, and if not, why.

It runs after :func:`mammocad.preprocess.preprocess_image` and before detection. It keeps the
technical findings preprocessing already made (tissue share, clipping, contrast, anterior
cut-off, pectoral muscle), adds the heuristic checks of :mod:`mammocad.quality.checks` and
combines them with the learned model of :mod:`mammocad.quality.learned` (docs/quality.md):

* ``score`` = heuristic score × (1 − P(defective)) from the model;
* when the model refuses (P(defective) >= its ``refuse_probability``) and no heuristic error
  fired, an error issue with the model's most likely defect code is added, saying that the
  learned model found it. The model never removes a heuristic issue.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mammocad.quality import checks
from mammocad.quality.features import features
from mammocad.quality.learned import QualityModel, shipped_model
from mammocad.quality.measure import measure
from mammocad.quality.params import QualityParams
from mammocad.structures import (
    FloatArray,
    Image,
    ImageQuality,
    Message,
    PreprocessedImage,
    Severity,
)

#: preprocessing's codes that a quality issue replaces (same fault, better named).
_REPLACES = {
    "breast_cut_off": {"breast_cut_off"},
    "overexposed": {"clipped_tissue", "low_contrast"},
    "underexposed": {"clipped_tissue", "low_contrast"},
    "blank": {"low_contrast"},
    "no_anatomy": {"low_contrast", "no_background"},
}


def assess_quality(
    image: Image,
    prepared: PreprocessedImage | None,
    params: QualityParams,
    *,
    model: QualityModel | Literal["shipped"] | None = "shipped",
) -> ImageQuality:
    """Score in [0, 1] (1 = good), ``acceptable`` (no error-level issue) and coded issues.

    ``model``: the learned model combined with the heuristics (``"shipped"``: the one in the
    package; None: heuristics alone, as the benchmark compares).

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
        checks.motion_blur(m, prepared, params),
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
    if image.implant_present:
        # preprocessing counts the white implant as clipped tissue; this gate's exposure
        # checks measure the tissue around it (quality.measure) and speak for the exposure
        replaced.add("clipped_tissue")
    kept = tuple(issue for issue in prepared.quality.issues if issue.code not in replaced)
    learned = shipped_model() if model == "shipped" else model
    heuristic = _result(found, kept, image.sop_instance_uid, params)
    if learned is None:
        return heuristic
    x = features(prepared, params, m)
    # a spot or magnification view is cut off by design: the model cannot refuse it for that
    partial = image.view in checks.PARTIAL_VIEWS
    return _combine(heuristic, learned, x, image.sop_instance_uid, partial_view=partial)


def _combine(
    heuristic: ImageQuality,
    learned: QualityModel,
    x: FloatArray,
    sop_instance_uid: str | None,
    *,
    partial_view: bool = False,
) -> ImageQuality:
    """The documented rule: score × (1 − P(defective)); a confident model refusal the
    heuristics missed adds an error with the model's defect code (its penalty is not taken
    again: the probability already lowered the score). Where a heuristic only warned of that
    defect (it could not be sure: no pixel spacing, an unknown view), the error replaces the
    warning. On a view that need not show the whole breast (``partial_view``, a spot or
    magnification view) a ``breast_cut_off`` refusal is not added: the cut-off is by design."""
    p_defective, code = learned.assess(x)
    issues = heuristic.issues
    refuses = p_defective >= learned.refuse_probability and heuristic.acceptable
    if refuses and not (partial_view and code == "breast_cut_off"):
        code, severity, text = _learned_issue(code, p_defective)
        warned = [issue for issue in issues if issue.code == code]
        if warned:
            issues = tuple(issue for issue in issues if issue.code != code)
            text = (
                f"{warned[0].text} The learned quality model confirms it (probability "
                f"{p_defective:.2f}): the image is not fit to read."
            )
        issues += (
            Message(code=code, severity=severity, text=text, sop_instance_uid=sop_instance_uid),
        )
    return ImageQuality(
        score=heuristic.score * (1.0 - p_defective),
        acceptable=not any(issue.severity is Severity.ERROR for issue in issues),
        issues=issues,
    )


def _learned_issue(code: str, p_defective: float) -> checks.Issue:
    name = code.replace("_", " ")
    return (
        code,
        Severity.ERROR,
        f"The learned quality model finds this image defective (probability {p_defective:.2f}, "
        f"most likely: {name}) although no heuristic check fired; check the image and repeat "
        "it if it is not fit to read.",
    )


def _refused(image: Image, params: QualityParams) -> checks.Issue:
    pixels = image.pixels
    padding = image.padding_mask
    if pixels is not None and padding is not None and padding.shape == pixels.shape:
        # Pixel Padding Value pixels (a frame around the field) are not exposed: a blank field
        # inside them is still blank
        pixels = pixels[~padding]
    if pixels is not None and pixels.size:
        low, high = np.percentile(pixels, [1, 99])
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
