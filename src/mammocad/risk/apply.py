"""The risk model at inference and on cached fusion cases: the same features both ways."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from mammocad.fuse.agreement import two_view_contribution
from mammocad.fuse.apply import FusionResult
from mammocad.fuse.data import BreastCase
from mammocad.fuse.geometry import CC_LIKE, MLO_LIKE, PlacedFinding, ViewFrame
from mammocad.fuse.link import LinkParams, link_breast
from mammocad.risk.aggregate import StudyRisk, Suspicion, rounded
from mammocad.risk.bundle import LoadedRisk
from mammocad.risk.features import BreastInputs, feature_matrix, leading_candidate
from mammocad.structures import Finding, Image, Laterality, PreprocessedImage, Study


def study_inputs(
    study: Study,
    preprocessed: Mapping[str, PreprocessedImage],
    findings: Mapping[str, Sequence[Finding]],
    fusion: FusionResult | None = None,
    candidates: Mapping[str, Sequence[Finding]] | None = None,
) -> dict[Laterality | None, BreastInputs]:
    """Risk-model inputs of each breast of ``study`` with a processed image (R, L), and under
    ``None`` the processed images of unknown laterality when there are any (no fusion there).
    ``findings`` are the findings the risk model counts per image key (the reported ones,
    unless its training used another threshold or cap: ``Pipeline._risk_findings``);
    ``fusion`` the fuse stage's output;
    ``candidates`` the detections down to the candidate score per image key (findings
    included; ``None`` or a missing key: the findings).
    """
    candidates = candidates or {}
    links = fusion.links if fusion else []
    fused = fusion.breast_probabilities if fusion else {}
    inputs: dict[Laterality | None, BreastInputs] = {}
    for side in (Laterality.R, Laterality.L, None):
        images = [image for image in study.processed_images() if image.laterality is side]
        if not images:
            continue
        found = tuple(f for image in images for f in findings.get(image.key, ()))
        ids = {f.id for f in found}
        detected = [image for image in images if image.key in findings]
        every = {
            image.key: tuple(candidates.get(image.key) or findings.get(image.key, ()))
            for image in images
        }
        placed = [
            PlacedFinding.place(f, view=image.view, frame=ViewFrame.of(preprocessed[image.key]))
            for image in detected
            if side is not None and image.view is not None and image.key in preprocessed
            for f in every[image.key]
        ]
        seen = tuple(f for image in images for f in every[image.key])
        inputs[side] = BreastInputs(
            findings=found,
            candidates=seen,
            fused_probability=None if side is None else fused.get(side),
            n_linked_pairs=linked_pairs(
                [(cc, mlo) for cc, mlo in links if cc in ids], (*found, *seen)
            ),
            views=tuple(image.view for image in detected if image.view is not None),
            quality=tuple(
                float(preprocessed[image.key].quality.score)
                for image in _projections(detected)
                if image.key in preprocessed
            ),
            two_view_contribution=_two_view(placed),
        )
    return inputs


def linked_pairs(links: Sequence[tuple[str, str]], findings: Sequence[Finding]) -> int:
    """The risk feature ``n_linked_pairs``: the links of the breast's best-linked pair of a
    CC-like and an MLO-like image. Linking is one-to-one within each pair of images
    (:func:`~mammocad.fuse.link.link_images`), so a technical repeat links its lesions again;
    counted over every pair, an extra picture would raise the breast's probability."""
    image_of = {finding.id: finding.sop_instance_uid for finding in findings}
    per_pair = Counter((image_of.get(cc), image_of.get(mlo)) for cc, mlo in links)
    return max(per_pair.values(), default=0)


def _projections(images: Sequence[Image]) -> list[Image]:
    """The CC-like and MLO-like ``images``, whose quality scores the risk model learned from
    (its training studies have no others); all of them when there are none. A spot,
    magnification or unknown view is warned ``unexpected_view`` by the gate, and its lower
    score would otherwise lower the breast's probability for an extra picture taken."""
    standard = [image for image in images if image.view in CC_LIKE | MLO_LIKE]
    return standard or list(images)


def _two_view(placed: Sequence[PlacedFinding]) -> float:
    """:func:`~mammocad.fuse.agreement.two_view_contribution` of a breast's placed candidates
    (images of other projections take no part, as in linking)."""
    return two_view_contribution(
        [item for item in placed if item.view in CC_LIKE],
        [item for item in placed if item.view in MLO_LIKE],
    )


def case_inputs(
    case: BreastCase, *, fused_probability: float | None, link: LinkParams | None = None
) -> BreastInputs:
    """Risk-model inputs of a cached fusion case (:mod:`mammocad.fuse.collect`), as
    :func:`study_inputs` makes them at inference: reported findings only, linked with the
    fuse stage's rule; the cached candidates are the candidates. Caches without recorded
    views take them from the findings' images (candidates included, so a view with any
    candidate counts)."""
    reported = tuple(item.finding for item in case.findings if item.reported)
    views = case.processed_views or tuple(dict.fromkeys(item.view for item in case.findings))
    return BreastInputs(
        findings=reported,
        candidates=tuple(item.finding for item in case.findings),
        fused_probability=fused_probability,
        n_linked_pairs=linked_pairs(link_breast(*case.views(), link or LinkParams()), reported),
        views=views,
        quality=case.quality,
        two_view_contribution=_two_view(case.findings),
    )


def score_inputs(
    risk: LoadedRisk, inputs: Mapping[Laterality | None, BreastInputs]
) -> dict[Laterality | None, float]:
    """Raw (uncalibrated) risk score of each entry of ``inputs``."""
    keys = list(inputs)
    if not keys:
        return {}
    matrix = feature_matrix([inputs[key] for key in keys])
    scores = risk.model.predict_rows(matrix)
    return {key: float(score) for key, score in zip(keys, scores, strict=True)}


def unreported_leading_candidates(
    inputs: Mapping[Laterality | None, BreastInputs],
    risk: StudyRisk,
    findings: Mapping[str, Sequence[Finding]],
) -> dict[Laterality, Finding]:
    """For each breast whose rounded probability is intermediate or high, its
    :func:`~mammocad.risk.features.leading_candidate` where that box is not among the reported
    ``findings`` (per image key): the evidence behind the probability that the findings alone
    would not show (docs/risk.md). Low breasts get none, so overlays are not strewn with weak
    boxes."""
    reported = {finding.id for items in findings.values() for finding in items}
    shown: dict[Laterality, Finding] = {}
    for breast in risk.breasts:
        category = risk.thresholds.category(rounded(breast.malignancy_probability))
        item = inputs.get(breast.laterality)
        if item is None or category in (None, Suspicion.LOW):
            continue
        leading = leading_candidate(item)
        if leading is not None and leading.id not in reported:
            shown[breast.laterality] = leading
    return shown
