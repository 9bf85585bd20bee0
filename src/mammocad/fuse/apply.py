"""Fusion of one study at inference: link findings across views, then (with weights) refine
each finding's malignancy and the breast probability."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mammocad.detect.bundle import BundleManifest
from mammocad.detect.predict import ImagePrediction
from mammocad.fuse.bundle import LoadedFusion, load_fusion
from mammocad.fuse.data import BreastCase, base_logit, breast_cases
from mammocad.fuse.geometry import CC_LIKE, MLO_LIKE
from mammocad.fuse.link import LinkParams, link_breast, link_images
from mammocad.fuse.train import run_fusion
from mammocad.risk.aggregate import noisy_or
from mammocad.structures import Laterality, PreprocessedImage, Study


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionResult:
    """``links`` ``(CC finding id, MLO finding id)``; ``breast_probabilities`` the fused raw
    P(malignant) per breast — empty without fusion weights (the aggregate stays as it was)."""

    links: list[tuple[str, str]] = field(default_factory=list)
    breast_probabilities: dict[Laterality, float] = field(default_factory=dict)


class Fuser:
    """Geometric linking always; the learned module when ``fusion`` is given."""

    def __init__(self, *, fusion: LoadedFusion | None = None, link: LinkParams | None = None):
        self.fusion = fusion
        self.link = link or LinkParams()

    @classmethod
    def from_bundle(cls, path: str | Path, manifest: BundleManifest) -> Fuser:
        return cls(fusion=load_fusion(path, manifest))

    @property
    def candidate_score(self) -> float | None:
        return None if self.fusion is None else self.fusion.candidate_score

    def fuse(
        self,
        study: Study,
        preprocessed: Mapping[str, PreprocessedImage],
        predictions: Mapping[str, ImagePrediction],
    ) -> FusionResult:
        """Fill ``linked_finding_ids`` of the findings in ``predictions`` (mutated) and, with
        weights, replace their ``malignancy_probability`` by the refined one."""
        cases = breast_cases(study, preprocessed, predictions)
        links = [pair for case in cases for pair in link_breast(*case.views(), self.link)]
        if self.fusion is None or not cases:
            return FusionResult(links=links)
        fused = _refine(self.fusion, cases)
        return FusionResult(
            links=links, breast_probabilities=_with_other_views(study, predictions, fused)
        )

    def links_from(
        self,
        study: Study,
        preprocessed: Mapping[str, PreprocessedImage],
        predictions: Mapping[str, ImagePrediction],
        *,
        keep: Callable[[str], bool],
    ) -> list[tuple[str, str]]:
        """The ``(CC id, MLO id)`` links among the detections whose id ``keep`` accepts, as
        :meth:`fuse` would make them were those the findings; records nothing in the findings
        (what the risk model reads when it learned from other findings than those reported:
        another threshold or cap)."""
        cases = breast_cases(study, preprocessed, predictions)
        return [pair for case in cases for pair in link_images(*case.views(keep=keep), self.link)]


def _refine(fusion: LoadedFusion, cases: list[BreastCase]) -> dict[Laterality, float]:
    probabilities = refine_cases(fusion, cases)
    return {case.laterality: p for case, p in zip(cases, probabilities, strict=True)}


def _with_other_views(
    study: Study, predictions: Mapping[str, ImagePrediction], fused: Mapping[Laterality, float]
) -> dict[Laterality, float]:
    """``fused`` (the module's P(malignant) of each breast, from its CC- and MLO-like images)
    combined by noisy-OR with the reported findings of the breast's other processed images
    (a spot compression, an axillary tail view, a view not named), which fusion does not read
    but the breast probability must: a lesion seen only there still raises it, as it does
    without fusion weights."""
    standard = CC_LIKE | MLO_LIKE
    combined = {}
    for side, probability in fused.items():
        others = [
            finding
            for image in study.breast(side)
            if image.view not in standard and image.key in predictions
            for finding in predictions[image.key].findings
        ]
        combined[side] = 1.0 - (1.0 - probability) * (1.0 - noisy_or(others))
    return combined


def refine_cases(fusion: LoadedFusion, cases: Sequence[BreastCase]) -> list[float]:
    """The fused P(malignant) of each of ``cases`` (any number of studies); replaces each
    finding's ``malignancy_probability`` by the refined one (mutated), as :meth:`Fuser.fuse`
    does at inference."""
    if not cases:
        return []
    output = run_fusion(fusion.model, cases)
    probabilities = torch.sigmoid(output.breast_logits).tolist()
    for row, case in enumerate(cases):
        for col, item in enumerate(case.findings):
            # the learned correction moves the detector's malignancy logit; the detection
            # score and box stay the detector's
            delta = float(output.finding_logits[row, col]) - base_logit(item)
            found = item.finding
            found.malignancy_probability = _sigmoid(_logit(found.malignancy_probability) + delta)
    return [float(p) for p in probabilities]


def _logit(p: float) -> float:
    p = min(1.0 - 1e-6, max(1e-6, p))
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
