"""One function per quality issue: measurements (and preprocessing's own findings) in, an
:data:`Issue` or None out. Codes are stable; texts say what is wrong and what to do."""

from __future__ import annotations

from mammocad.quality.measure import Measurements
from mammocad.quality.params import QualityParams
from mammocad.structures import PreprocessedImage, Severity, ViewPosition

Issue = tuple[str, Severity, str]

#: Views on which the pectoral muscle should show (lateral projections).
LATERAL_VIEWS = frozenset({ViewPosition.MLO, ViewPosition.ML, ViewPosition.LM})
#: Views whose field need not hold the whole breast: OTHER (magnification and spot-compression
#: views, by their View Modifier, and projections without a value of their own) and the
#: axillary tail view.
PARTIAL_VIEWS = frozenset({ViewPosition.OTHER, ViewPosition.AT})


def no_anatomy(m: Measurements, params: QualityParams) -> Issue | None:
    if m.neighbour_correlation >= params.min_neighbour_correlation:
        return None
    return (
        "no_anatomy",
        Severity.ERROR,
        "The image shows noise, not breast anatomy (neighbouring pixels are unrelated); check "
        "that the exposure reached the detector and re-send or repeat the image.",
    )


def blank(m: Measurements, params: QualityParams) -> Issue | None:
    if m.p95 - m.p5 >= params.min_spread:
        return None
    return (
        "blank",
        Severity.ERROR,
        "The image is nearly uniform, so nothing can be read on it; check the exposure and the "
        "VOI window of the file, and repeat the image if it is blank.",
    )


def overexposed(m: Measurements, params: QualityParams) -> Issue | None:
    if m.black_share < params.clipped_share and m.p95 > params.max_dark_p95:
        return None
    return (
        "overexposed",
        Severity.ERROR,
        "The breast is burned out (over-exposed): the tissue is nearly black and its contrast "
        "is lost; check the exposure settings and repeat the image.",
    )


def underexposed(m: Measurements, params: QualityParams) -> Issue | None:
    if m.white_share < params.clipped_share and m.p5 < params.min_bright_p5:
        return None
    return (
        "underexposed",
        Severity.ERROR,
        "The breast is under-exposed: even the fatty tissue is nearly white, so dense tissue "
        "and lesions cannot be told apart; check the exposure settings and repeat the image.",
    )


def breast_cut_off(
    m: Measurements, prepared: PreprocessedImage, params: QualityParams
) -> Issue | None:
    """Preprocessing checks the edge opposite the chest wall; this adds the top and bottom.

    A breast touching the front edge is an error only when no nipple was found: a large breast
    may touch the edge with its nipple still in view (a warning, as preprocessing says). On a
    view that need not show the whole breast (:data:`PARTIAL_VIEWS`: a spot or magnification
    view shows a detail by design) a cut-off is said, never refused.
    """
    issue = _breast_cut_off(m, prepared, params)
    view = prepared.image.view
    if issue is None or issue[1] is not Severity.ERROR or view is None or view not in PARTIAL_VIEWS:
        return issue
    return (
        "breast_cut_off",
        Severity.WARNING,
        f"The breast runs off the edge of the image; this {view.value} view (a spot or "
        "magnification view, the axillary tail or another projection) need not show the whole "
        "breast, so this is not refused: check that the view is the one intended.",
    )


def _breast_cut_off(
    m: Measurements, prepared: PreprocessedImage, params: QualityParams
) -> Issue | None:
    anterior = [i for i in prepared.quality.issues if i.code == "breast_cut_off"]
    if anterior:
        severity = Severity.ERROR if prepared.nipple is None else Severity.WARNING
        return ("breast_cut_off", severity, anterior[0].text)
    # the axilla runs off the top of a lateral view by design: there only the fold counts
    lateral_cut = m.bottom_touch >= params.cut_off_mlo_bottom
    cc_cut = max(m.top_touch, m.bottom_touch) >= params.cut_off_cc_edge
    view = prepared.image.view
    if view is None and cc_cut and not lateral_cut:
        # no tag or file name says the view (a bare PNG): a cut-off CC is a normal MLO, so
        # it is said, not refused
        return (
            "breast_cut_off",
            Severity.WARNING,
            "The breast runs off the top or bottom edge of the image; the view is not known, "
            "so this is a defect if it is a CC view (an MLO shows the axilla running off the "
            "top); check the positioning, or name the view (View Position, or CC / MLO in the "
            "file name).",
        )
    # an unknown view cut off even by the lateral rule is cut off whatever it is
    if not (lateral_cut if view is None or view in LATERAL_VIEWS else cc_cut):
        return None
    return (
        "breast_cut_off",
        Severity.ERROR,
        "The breast runs off the top or bottom edge of the image, so part of it is missing; "
        "check the positioning and repeat the view.",
    )


def pectoral_not_shown(
    m: Measurements, prepared: PreprocessedImage, params: QualityParams
) -> Issue | None:
    if prepared.image.view not in LATERAL_VIEWS or m.pectoral_share >= params.min_pectoral_share:
        return None
    return (
        "pectoral_not_shown",
        Severity.WARNING,
        "No pectoral muscle shows on this lateral view, so the back of the breast may be out "
        "of view; check the positioning (the muscle should reach the nipple level).",
    )


def motion_blur(
    m: Measurements, prepared: PreprocessedImage, params: QualityParams
) -> Issue | None:
    """Fine detail lost AND the fine residual smeared along one direction only.

    Low fine-band energy alone fires on most digitised films (soft, but not moved), so the
    directional smear of the residual is required too, and it must remain once the row- and
    column-aligned lines of a film digitiser are taken out (docs/quality.md). All are measured
    at a fixed physical scale: without a pixel spacing (a bare PNG) that scale is a guess
    (``assumed_field_mm``), and the smear of scanner line artefacts changes sign with it, so
    there the finding is a warning, not a refusal.
    """
    smeared = (
        m.smear_along >= params.min_smear_along
        and m.smear_along - m.smear_across >= params.min_smear_anisotropy
        and m.smear_across >= params.min_smear_across
        # a film digitiser's scanner lines correlate the residual along the rows as a smear
        # would (framed mini-MIAS mdb225, mdb295): the smear must hold without them
        and m.smear_along_no_lines >= params.min_smear_along
    )
    if m.sharpness >= params.max_blur_sharpness or not smeared:
        return None
    if prepared.image.pixel_spacing_mm is None:
        return (
            "motion_blur",
            Severity.WARNING,
            "The tissue looks smeared along one direction, as when the breast moves during the "
            "exposure; the file gives no pixel spacing, so the blur was measured at a guessed "
            "scale: check the image, and send it with its spacing (DICOM Pixel Spacing).",
        )
    return (
        "motion_blur",
        Severity.ERROR,
        "The tissue is smeared along one direction, as when the breast moves during the "
        "exposure; calcifications may be hidden, so check the "
        "compression and repeat the view.",
    )


def implant(m: Measurements, params: QualityParams) -> Issue | None:
    if m.implant_share < params.implant_share:
        return None
    return (
        "implant",
        Severity.INFO,
        "A large uniform radiopaque region suggests a breast implant; the tissue it covers "
        "cannot be read, so consider implant-displaced views.",
    )


def unexpected_view(prepared: PreprocessedImage, params: QualityParams) -> Issue | None:
    view = prepared.image.view
    if view is not None and view.value in params.expected_views:
        return None
    name = "unknown" if view is None else view.value
    return (
        "unexpected_view",
        Severity.WARNING,
        f"The view is {name}, not one of {', '.join(params.expected_views)} that the model was "
        "made for; check the View Position tag, results on other views are less reliable.",
    )
