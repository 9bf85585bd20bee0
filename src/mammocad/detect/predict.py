"""Inference on preprocessed images: findings in ORIGINAL pixels, the nipple as a landmark."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from mammocad.detect.bundle import BundleManifest, load_bundle
from mammocad.detect.containers import Detections
from mammocad.detect.model import MammoDetector
from mammocad.errors import ModelBundleError
from mammocad.structures import Finding, FindingLabel, PreprocessedImage

if TYPE_CHECKING:  # mammocad.malignancy imports this package: import it where it is used
    from mammocad.malignancy.model import LesionClassifier
    from mammocad.ranker.model import LesionRanker


@dataclass(slots=True, kw_only=True)
class ImagePrediction:
    """Detector output for one image, in ORIGINAL pixel coordinates.

    ``findings`` are sorted by descending score, ids ``<image key>-f1``, ``-f2``…; ``nipple``
    is the centre ``(x, y)`` of the detected nipple, ``None`` when none scored high enough.

    ``candidates`` are the detections down to :attr:`Detector.candidate_threshold` (the
    inputs of cross-view fusion): ``findings`` are those at or above the finding threshold
    (at most the bundle's ``findings_per_image``, the most suspicious), the same objects, in
    the same order. Empty means
    "same as ``findings``" (a prediction made without candidates). ``roi_features`` is
    ``float32[len(candidates), D]``, the box head's representation of each candidate box
    (:meth:`MammoDetector.detect_with_features`), ``None`` when not computed.
    """

    image_key: str
    findings: list[Finding] = field(default_factory=list)
    nipple: tuple[float, float] | None = None
    nipple_score: float | None = None
    candidates: list[Finding] = field(default_factory=list)
    roi_features: npt.NDArray[np.float32] | None = None

    def fusion_inputs(self) -> tuple[list[Finding], npt.NDArray[np.float32] | None]:
        """The candidates (or the findings when there are none) and their RoI features."""
        if self.candidates:
            return self.candidates, self.roi_features
        features = self.roi_features
        if features is not None and len(features) != len(self.findings):
            features = None
        return self.findings, features


class Detector:
    """A loaded model bundle ready to detect lesions. Build it with :meth:`from_bundle`.

    The preprocessing recorded in the bundle (:attr:`preprocessing`) is the one to use for the
    images passed to :meth:`predict`; inputs of another size are refused.
    """

    def __init__(
        self,
        *,
        model: MammoDetector,
        manifest: BundleManifest,
        device: str | torch.device = "cpu",
        channels_last: bool | None = None,
        lesion_classifier: LesionClassifier | None = None,
        ranker: LesionRanker | None = None,
    ) -> None:
        self.device = torch.device(device)
        # the bundle's lesion ranker (mammocad.ranker): P(malignant lesion) of each finding
        self.ranker = ranker
        self.manifest = manifest
        self.model = model.to(self.device).eval()
        # the bundle's second-stage malignancy classifier (mammocad.malignancy), when it has one
        self.lesion_classifier = (
            None if lesion_classifier is None else lesion_classifier.to(self.device).eval()
        )
        # NHWC convolutions were 15–17% faster on the 2-core CPU (docs/detector.md); on CUDA
        # they only pay off under reduced precision, which inference does not use
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.finding_threshold = _finding_threshold(manifest, model.config.score_threshold)
        self.candidate_threshold = self.finding_threshold
        # a bundle may report from below its config's cut-off: the RoI heads must reach it
        heads = self.model.roi_heads
        heads.score_thresh = min(heads.score_thresh, self.finding_threshold)
        self.findings_per_image = _findings_per_image(manifest)

    def set_candidate_threshold(self, threshold: float) -> None:
        """Also return detections down to ``threshold`` as ``candidates`` (fusion inputs).

        Lowers the RoI heads' score cut-off when needed; the reported ``findings`` do not
        change: NMS is greedy by score and the per-image cap keeps the best, so boxes below
        the finding threshold never displace one above it.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"candidate threshold must lie in [0, 1], got {threshold}")
        self.candidate_threshold = min(float(threshold), self.finding_threshold)
        heads = self.model.roi_heads
        heads.score_thresh = min(heads.score_thresh, self.candidate_threshold)

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        num_threads: int | None = None,
        channels_last: bool | None = None,
    ) -> Detector:
        """Load and verify the bundle at ``path``.

        On CPU, ``num_threads`` sets torch's intra-op threads (process-wide); by default it is
        the number of CPUs this process may run on, which torch's own default (all cores of
        the host) overshoots in containers and CPU-pinned workers. ``channels_last`` defaults
        to True on CPU, where it was measured faster.
        """
        if torch.device(device).type == "cpu":
            torch.set_num_threads(num_threads or _usable_cpus())
        from mammocad.malignancy.bundle import load_classifier
        from mammocad.ranker.bundle import load_ranker

        bundle = load_bundle(path, device=device)
        classifier = load_classifier(path, bundle.manifest)
        return cls(
            model=bundle.model,
            manifest=bundle.manifest,
            device=device,
            channels_last=channels_last,
            lesion_classifier=None if classifier is None else classifier.model,
            ranker=load_ranker(path, bundle.manifest),
        )

    @property
    def preprocessing(self) -> dict[str, object]:
        """The preprocessing parameters recorded in the bundle."""
        return dict(self.manifest.preprocessing)

    def predict(self, preprocessed: Sequence[PreprocessedImage]) -> list[ImagePrediction]:
        """Detect lesions on each image, one at a time (batching views is slower on CPU)."""
        return [self._predict_one(item) for item in preprocessed]

    def _predict_one(self, item: PreprocessedImage) -> ImagePrediction:
        expected = (self.model.config.in_channels, *self.model.config.input_size)
        if tuple(item.input.shape) != expected:
            raise ValueError(
                f"image {item.image.key}: input is {tuple(item.input.shape)}, the model expects "
                f"{expected}; preprocess with the bundle's parameters (Detector.preprocessing)"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(item.input, dtype=np.float32))
        tensor = tensor.to(self.device)
        with torch.inference_mode():
            (detections,), (features,) = self.model.detect_with_features([tensor])
            if self.lesion_classifier is not None:
                from mammocad.malignancy.apply import rescore

                detections = rescore(self.lesion_classifier, tensor, detections)
        return self._to_prediction(item, detections.to("cpu"), features.to("cpu"))

    def _to_prediction(
        self, item: PreprocessedImage, found: Detections, features: torch.Tensor | None = None
    ) -> ImagePrediction:
        key = item.image.key
        uid = item.image.sop_instance_uid or key
        # cut to the breast's crop first: a box spilling into the input's padding would be
        # reported beyond the image's edge; one wholly in the padding is no finding
        inside = item.transform.clip_to_content(found.boxes.double().numpy())
        seen = (inside[:, 2] > inside[:, 0]) & (inside[:, 3] > inside[:, 1])
        keep = (found.scores >= min(self.finding_threshold, self.candidate_threshold)) & (
            torch.from_numpy(seen)
        )
        boxes = item.transform.boxes_to_original(inside[keep.numpy()])
        classes = self.model.config.classes
        ranked: list[float | None] = [None] * int(keep.sum())
        if self.ranker is not None:
            # on the input-pixel boxes, and over every detection of the image, as it was trained
            # (its features compare a box with the image's others)
            ranked = self.ranker.probabilities(
                found.boxes.double().numpy(),
                found.scores.double().numpy(),
                [classes[int(label)] for label in found.labels.tolist()],
                found.malignancy.double().numpy(),
            )[keep.numpy()].tolist()
        candidates = [
            Finding(
                id=f"{key}-f{rank}",
                sop_instance_uid=uid,
                label=FindingLabel(classes[int(label)]),
                score=float(score),
                malignancy_probability=float(malignancy),
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                malignant_lesion_probability=malignant_lesion,
            )
            for rank, (box, label, score, malignancy, malignant_lesion) in enumerate(
                zip(
                    boxes,
                    found.labels[keep].tolist(),
                    found.scores[keep].tolist(),
                    found.malignancy[keep].tolist(),
                    ranked,
                    strict=True,
                ),
                start=1,
            )
        ]
        # compared as the float32 tensor, exactly as before candidates existed
        reported = reported_mask(
            found.scores[keep],
            found.malignancy[keep],
            floor=self.finding_threshold,
            cap=self.findings_per_image,
        )
        findings = [
            c for c, is_finding in zip(candidates, reported.tolist(), strict=True) if is_finding
        ]
        nipple = None
        nipple_score = None
        if len(found.nipple_box):
            box = found.nipple_box[0].double()
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            x, y = item.transform.points_to_original([[float(centre[0]), float(centre[1])]])[0]
            nipple = (float(x), float(y))
            nipple_score = float(found.nipple_score[0])
        return ImagePrediction(
            image_key=key,
            findings=findings,
            nipple=nipple,
            nipple_score=nipple_score,
            candidates=candidates,
            roi_features=None if features is None else features[keep].float().numpy(),
        )


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def reported_mask(
    scores: torch.Tensor, malignancy: torch.Tensor, *, floor: float, cap: int | None
) -> torch.Tensor:
    """Which of the detections (``scores`` in descending order, with their ``malignancy``)
    are findings: those scoring at least ``floor`` — compared in the tensors' float32, as
    before candidates existed — and of them at most ``cap``, the most suspicious (ties: the
    earlier, i.e. the higher-scoring). The cap keeps the boxes most likely to be a malignant
    lesion (score · malignancy: the malignant FROC's ranking and the risk model's
    contribution), not merely the most lesion-like: a reader is never shown five
    benign-looking boxes instead of a suspicious one. The others stay candidates (fusion and
    risk inputs). The one rule for the detector's findings, the risk model's (the pipeline)
    and ``benchmarks/finding_threshold.py``."""
    eligible = scores >= floor
    if cap is None:
        return eligible
    suspicion = torch.where(eligible, scores * malignancy, torch.full_like(scores, -1.0))
    order = torch.argsort(suspicion, descending=True, stable=True)
    chosen = torch.zeros_like(eligible)
    chosen[order[:cap]] = True
    return chosen & eligible


def _finding_threshold(manifest: BundleManifest, default: float) -> float:
    """``thresholds["finding_score"]``: findings are the detections scoring at least this;
    ``default`` (the config's score threshold) without one.

    Raises:
        ModelBundleError: the value is not a number in [0, 1].
    """
    value = manifest.thresholds.get("finding_score", default)
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if isinstance(value, bool) or not 0.0 <= threshold <= 1.0:
        raise ModelBundleError(
            f"thresholds.finding_score of bundle {manifest.name} is {value!r}: it must be a "
            "detection score in [0, 1] (or left out for the detector's own cut-off); fix "
            "manifest.json"
        )
    return threshold


def _findings_per_image(manifest: BundleManifest) -> int | None:
    """``thresholds["findings_per_image"]``: at most this many findings are reported per image
    (the most suspicious), so a dense image is not strewn with marks; ``None`` without one.

    Raises:
        ModelBundleError: the value is not a whole number of at least 1.
    """
    value = manifest.thresholds.get("findings_per_image")
    if value is None:
        return None
    try:
        whole = float(value) == int(value) >= 1
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ModelBundleError(
            f"thresholds.findings_per_image of bundle {manifest.name} is {value!r}: it must be "
            "a whole number of at least 1 (or left out for no cap); fix manifest.json"
        )
    return int(value)
