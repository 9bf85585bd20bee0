"""The analysis line for one study, stage by stage and nothing else:
preprocess → detect → fuse → aggregate → result (docs/analyze.md, docs/fusion.md).

The preprocessing is the one recorded in the model bundle, never a default. Bad input never
stops a study: an image preprocessing refuses is rejected with its code, and an unexpected
exception on one image rejects that image as ``internal_error`` (traceback logged) while the
others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import torch

from mammocad.detect.predict import Detector, ImagePrediction, reported_mask
from mammocad.errors import ModelBundleError, PreprocessError, RejectionCode
from mammocad.fuse.apply import Fuser, FusionResult
from mammocad.io.assemble import missing_view_messages
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality import QualityParams, assess_quality, shipped_model
from mammocad.report.study_json import ModelInfo, study_result
from mammocad.risk.aggregate import StudyRisk, SuspicionThresholds, aggregate
from mammocad.risk.apply import score_inputs, study_inputs, unreported_leading_candidates
from mammocad.risk.bundle import LoadedRisk, load_risk
from mammocad.risk.calibration import STUDY_CALIBRATION_FILE, Calibrator, load_calibration
from mammocad.structures import (
    Finding,
    Image,
    Laterality,
    PreprocessedImage,
    Severity,
    Study,
)

logger = logging.getLogger(__name__)

DEFAULT_INTENDED_USE = "Research use only; not for primary diagnosis."


INTERNAL_ERROR = RejectionCode.INTERNAL_ERROR


@dataclass(slots=True, kw_only=True)
class StudyAnalysis:
    """Everything :meth:`Pipeline.analyze` made for one study.

    ``preprocessed`` and ``predictions`` are keyed by image key (SOPInstanceUID) and hold only
    the images that came through their stage; prediction boxes are in ORIGINAL pixels.
    ``refused`` holds the preprocessed images the quality gate refused (rejected, pixels kept
    so that their overlay shows why).
    ``result`` is the schema object (``schemas/result.schema.json``); ``timings_ms`` has
    ``preprocess``, ``detect``, ``aggregate`` (cross-view fusion included) and ``total``.
    ``fusion`` holds the cross-view links and, with fusion weights, the fused breast
    probabilities. ``leading_candidates`` holds, per breast, the unreported detection that
    drives an intermediate or high probability of a risk model reading candidates
    (:func:`~mammocad.risk.apply.unreported_leading_candidates`).
    """

    study: Study
    preprocessed: dict[str, PreprocessedImage]
    predictions: dict[str, ImagePrediction]
    risk: StudyRisk
    result: dict[str, Any]
    timings_ms: dict[str, float]
    fusion: FusionResult | None = None
    leading_candidates: dict[Laterality, Finding] = field(default_factory=dict)
    refused: dict[str, PreprocessedImage] = field(default_factory=dict)

    def findings(self, key: str) -> list[Finding]:
        prediction = self.predictions.get(key)
        return prediction.findings if prediction else []

    def unreported_candidates(self, key: str) -> list[Finding]:
        """The leading candidates drawn on image ``key`` (at most one per breast)."""
        return [f for f in self.leading_candidates.values() if f.sop_instance_uid == key]


def _findings_at(prediction: ImagePrediction, floor: float, cap: int | None) -> list[Finding]:
    """The detections of ``prediction`` that the detector would report with finding
    threshold ``floor`` and per-image cap ``cap`` (:func:`~mammocad.detect.predict.
    reported_mask` on the same float32 values)."""
    found = prediction.candidates or prediction.findings
    mask = reported_mask(
        torch.tensor([f.score for f in found], dtype=torch.float32),
        torch.tensor([f.malignancy_probability for f in found], dtype=torch.float32),
        floor=floor,
        cap=cap,
    )
    return [f for f, keep in zip(found, mask.tolist(), strict=True) if keep]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = perf_counter()
    try:
        yield
    finally:
        timings[stage] = (perf_counter() - start) * 1000.0


def _reject_internal(image: Image, stage: str, error: Exception) -> None:
    logger.exception("%s of image %s (%s) failed", stage, image.key, image.source)
    image.reject(
        INTERNAL_ERROR,
        f"mammocad failed during {stage} of this image ({type(error).__name__}: {error}); the "
        "other images were read — please report this with the log.",
    )


class Pipeline:
    """One detector bundle and the preprocessing it was trained with. Build it with
    :meth:`from_bundle`; :meth:`analyze` runs one study."""

    def __init__(
        self,
        *,
        detector: Detector,
        preprocessing: PreprocessParams,
        thresholds: SuspicionThresholds | None = None,
        prior: float = 0.0,
        quality: QualityParams | None = None,
        calibrator: Calibrator | None = None,
        fuser: Fuser | None = None,
        risk: LoadedRisk | None = None,
        study_calibrator: Calibrator | None = None,
    ) -> None:
        expected = tuple(detector.model.config.input_size)
        if tuple(preprocessing.input_size) != expected:
            raise ValueError(
                f"preprocessing input_size {preprocessing.input_size} differs from the "
                f"detector's {expected}: use the bundle's preprocessing (Pipeline.from_bundle)"
            )
        manifest = detector.manifest
        self.detector = detector
        self.preprocessing = preprocessing
        self.thresholds = thresholds or SuspicionThresholds.from_manifest(manifest.thresholds)
        # the heuristic gate's thresholds are not yet part of the bundle: its defaults until
        # the learned quality model ships with its own
        self.quality = quality or QualityParams()
        self.prior = prior
        # None: the probabilities stay the uncalibrated aggregate (bundle without calibration.json)
        self.calibrator = calibrator
        # None: the study probability uses the breast map (bundles before study calibration)
        self.study_calibrator = study_calibrator
        # linking needs no weights; refinement only where the bundle has fusion weights
        self.fuser = fuser or Fuser()
        # None: breast probabilities from the noisy-OR or fusion, as before the risk model
        self.risk = risk
        recorded = None if risk is None else risk.quality_model
        if recorded is not None and recorded != shipped_model().digest:
            # the gate's scores are risk features: another quality model shifts every probability
            logger.warning(
                "the risk model of bundle %s %s was trained on the scores of another learned "
                "quality model (sha256 %s…) than the one installed (%s…): its probabilities "
                "and thresholds may be off; install the mammocad version the bundle was made "
                "with, or retrain it with `mammocad train risk`",
                manifest.name,
                manifest.version,
                recorded[:12],
                shipped_model().digest[:12],
            )
        # fusion and the risk model's candidate features see detections below the finding
        # threshold: detect down to the lower of their candidate scores
        wanted = [self.fuser.candidate_score, None if risk is None else risk.candidate_score]
        if risk is not None and risk.finding_score is not None:
            # a risk model that counted findings from below the reported ones reads those too
            wanted.append(min(risk.finding_score, detector.finding_threshold))
        if any(score is not None for score in wanted):
            detector.set_candidate_threshold(min(s for s in wanted if s is not None))
        self.model_info = ModelInfo(
            name=manifest.name,
            version=manifest.version,
            sha256=manifest.sha256,
            intended_use=manifest.intended_use or DEFAULT_INTENDED_USE,
        )

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        num_threads: int | None = None,
    ) -> Pipeline:
        """Load the bundle at ``path``; preprocessing and thresholds come from its manifest,
        the calibration from its ``calibration.json`` when it has one (and the study
        probability's from ``study_calibration.json``), cross-view fusion
        weights from its ``fusion.pt`` when the manifest has a ``fusion`` section, the risk
        model from its ``risk.json`` when the manifest has a ``risk`` section.

        Raises:
            ModelBundleError: the bundle is missing, corrupt, or its preprocessing does not
                match this mammocad version, or its ``calibration.json`` is invalid.
        """
        detector = Detector.from_bundle(path, device=device, num_threads=num_threads)
        calibrator = load_calibration(path)
        study_calibrator = load_calibration(path, STUDY_CALIBRATION_FILE)
        fuser = Fuser.from_bundle(path, detector.manifest)
        risk = load_risk(path, detector.manifest)
        try:
            params = PreprocessParams.from_dict(detector.manifest.preprocessing)
            return cls(
                detector=detector,
                preprocessing=params,
                calibrator=calibrator,
                fuser=fuser,
                risk=risk,
                study_calibrator=study_calibrator,
            )
        except ValueError as error:  # the manifest's preprocessing does not fit: not a default
            raise ModelBundleError(f"{path}: {error}") from error

    def analyze(self, study: Study) -> StudyAnalysis:
        """Preprocess, detect, aggregate and build the result of ``study``.

        Mutates ``study``: images that fail a stage are rejected (pixels dropped), preprocessing
        messages are added to their images, and the study's ``missing_view`` messages are
        brought up to date with those rejections.
        """
        timings: dict[str, float] = {}
        start = perf_counter()
        with _timed(timings, "preprocess"):
            preprocessed = self._preprocess(study)
            refused = _reject_unacceptable_images(preprocessed)
        with _timed(timings, "detect"):
            predictions = self._detect(preprocessed)
        _prefer_detected_nipples(preprocessed, predictions)
        study.messages = [m for m in study.messages if m.code != "missing_view"]
        study.messages.extend(missing_view_messages(study))
        findings = {key: prediction.findings for key, prediction in predictions.items()}
        with _timed(timings, "aggregate"):
            fusion = self.fuser.fuse(study, preprocessed, predictions)
            breast_raw, sideless_raw = fusion.breast_probabilities, None
            inputs = {}
            if self.risk is not None:
                candidates = {key: p.candidates for key, p in predictions.items()}
                evidence, links = self._risk_findings(
                    study, preprocessed, predictions, findings, fusion
                )
                inputs = study_inputs(study, preprocessed, evidence, links, candidates)
                scores = score_inputs(self.risk, inputs)
                breast_raw = {side: p for side, p in scores.items() if side is not None}
                sideless_raw = scores.get(None)
            risk = aggregate(
                study,
                findings,
                thresholds=self.thresholds,
                prior=self.prior,
                calibrator=self.calibrator,
                breast_raw=breast_raw,
                sideless_raw=sideless_raw,
                method=None if self.risk is None else self.risk.method,
                study_calibrator=self.study_calibrator,
            )
        leading = {}
        if self.risk is not None and self.risk.reads_candidates:
            leading = unreported_leading_candidates(inputs, risk, findings)
        timings["total"] = (perf_counter() - start) * 1000.0
        result = study_result(
            study,
            preprocessed={**preprocessed, **refused},  # a refused view keeps its geometry
            findings=findings,
            risk=risk,
            model=self.model_info,
            timings_ms=timings,
            leading_candidates=leading,
        )
        return StudyAnalysis(
            study=study,
            preprocessed=preprocessed,
            predictions=predictions,
            risk=risk,
            result=result,
            timings_ms=timings,
            fusion=fusion,
            leading_candidates=leading,
            refused=refused,
        )

    def _risk_findings(
        self,
        study: Study,
        preprocessed: dict[str, PreprocessedImage],
        predictions: dict[str, ImagePrediction],
        findings: dict[str, list[Finding]],
        fusion: FusionResult,
    ) -> tuple[dict[str, list[Finding]], FusionResult]:
        """The findings and links the risk model reads: the detections from the score, and
        under the per-image cap, its finding features were trained with, which may differ
        from those the findings are reported with (a bundle's reporting rules are chosen for
        the reader, its risk model keeps the inputs it learned from; docs/risk.md "Two
        thresholds")."""
        detector = self.detector
        floor = detector.finding_threshold
        cap = None  # risk models saved before caps existed were trained without one
        if self.risk is not None:
            if self.risk.finding_score is not None:
                floor = self.risk.finding_score
            cap = self.risk.findings_per_image
        if floor == detector.finding_threshold and cap == detector.findings_per_image:
            return findings, fusion
        kept = {key: _findings_at(p, floor, cap) for key, p in predictions.items()}
        ids = {f.id for items in kept.values() for f in items}
        links = self.fuser.links_from(study, preprocessed, predictions, keep=ids.__contains__)
        return kept, replace(fusion, links=links)

    def _preprocess(self, study: Study) -> dict[str, PreprocessedImage]:
        prepared: dict[str, PreprocessedImage] = {}
        for image in list(study.processed_images()):
            try:
                item = preprocess_image(image, self.preprocessing)
            except PreprocessError as error:
                # the gate names what was found (blank or no_anatomy: noise) while the pixels
                # are still there; the result lists it beside preprocessing's rejection
                verdict = assess_quality(image, None, self.quality)
                image.reject(error.code, error.message)
                image.messages.extend(verdict.issues)
                continue
            except Exception as error:  # one image's bug must not cost the study
                _reject_internal(image, "preprocessing", error)
                continue
            image.messages.extend(item.messages)
            # the gate keeps preprocessing's technical findings and adds its own
            item.quality = assess_quality(image, item, self.quality)
            prepared[image.key] = item
        return prepared

    def _detect(self, prepared: dict[str, PreprocessedImage]) -> dict[str, ImagePrediction]:
        """One image per call (the detector does the same inside), so one failure stays one."""
        predictions: dict[str, ImagePrediction] = {}
        for key, item in list(prepared.items()):
            try:
                (predictions[key],) = self.detector.predict([item])
            except Exception as error:
                _reject_internal(item.image, "detection", error)
                del prepared[key]
        return predictions


def _reject_unacceptable_images(
    preprocessed: dict[str, PreprocessedImage],
) -> dict[str, PreprocessedImage]:
    """Reject every image the quality gate found unfit to read, so it adds nothing to the
    study's findings or probability and the study says what is missing: ``partial`` when a
    standard view is gone, ``rejected`` with no probability when no image is left, as the
    result schema defines the statuses. A view of no diagnostic value (blurred, under-exposed,
    cut off) is one a radiologist would have repeated, not read. Returns the refused images,
    whose pixels are kept for their overlay.
    """
    unfit = [key for key, item in preprocessed.items() if not item.quality.acceptable]
    none_left = len(unfit) == len(preprocessed)
    for key in unfit:
        image = preprocessed[key].image
        errors = [i for i in preprocessed[key].quality.issues if i.severity is Severity.ERROR]
        codes = ", ".join(issue.code for issue in errors)
        why = f"failed the quality gate ({codes}): {errors[0].text if errors else ''}".rstrip(": ")
        if none_left:
            text = f"No image of this study is fit to read; this one {why}"
        else:
            ended = why if why.endswith(".") else f"{why}."
            text = f"This view {ended} It is left out of the study's reading."
        image.reject(RejectionCode.QUALITY, text, keep_pixels=True)
        image.messages.extend(errors)  # each by its own code in the result, too
    return {key: preprocessed.pop(key) for key in unfit}


#: the detector's nipple is kept only in the front of the breast: at least this share of the
#: breast box's depth from its chest-wall side (benchmarks/nipple_depth.py: on mini-MIAS,
#: the CBIS-DDSM sample and WG04 MG1, the 4 detected nipples below it lay at the chest wall
#: or in the axilla, every other at 0.91 or more)
NIPPLE_MIN_DEPTH = 0.8


def nipple_depth(prepared: PreprocessedImage, nipple: tuple[float, float]) -> float:
    """How far ``nipple`` lies from the chest-wall side of the breast box, as a share of the
    box's depth (1: at its front edge)."""
    x1, _, x2, _ = prepared.breast_box
    depth = (x2 - nipple[0]) if prepared.chest_wall_on_right else (nipple[0] - x1)
    return depth / max(x2 - x1, 1e-6)


def _prefer_detected_nipples(
    preprocessed: dict[str, PreprocessedImage], predictions: dict[str, ImagePrediction]
) -> None:
    """Replace the contour estimate of the nipple by the detector's, where it found one in
    the front of the breast (:data:`NIPPLE_MIN_DEPTH`).

    The detector is trained on the nipple as a landmark and sees the nipple itself; the
    preprocessing estimate only takes the breast outline's most anterior point, which misses
    on MLO views and on nipples not in profile. The estimate stays where the detector is silent
    or puts the nipple where no nipple is (at the chest wall, in the axilla: the WG04 MG1 MLO),
    which would skew every nipple distance the two views' findings are linked by.
    """
    for key, prediction in predictions.items():
        prepared = preprocessed.get(key)
        if prediction.nipple is None or prepared is None:
            continue
        if nipple_depth(prepared, prediction.nipple) >= NIPPLE_MIN_DEPTH:
            prepared.nipple = prediction.nipple
