"""Validation of a detector on held-out samples: FROC in input pixels.

Input pixels are a fixed scaling of the original per image, so the hit rule (IoU ≥ 0.3 or
centre inside, both scale-invariant) gives the same FROC as in original pixels. Landmark
(nipple) boxes are not lesions and are left out of the truths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mammocad.detect.config import DetectorConfig
from mammocad.detect.containers import Detections
from mammocad.detect.model import MammoDetector
from mammocad.detect.tta import detect_mirror_averaged
from mammocad.eval.froc import FrocReport, ImagePredictions, ImageTruth, evaluate_froc
from mammocad.eval.froc_pool import FrocImages
from mammocad.malignancy.apply import rescore
from mammocad.malignancy.model import LesionClassifier
from mammocad.ranker.model import LesionRanker
from mammocad.train.data import DetectionDataset, DetectionSample, annotated_names


def detect_dataset(
    model: MammoDetector,
    dataset: DetectionDataset,
    *,
    device: torch.device,
    batch_size: int = 1,
    autocast_dtype: torch.dtype | None = None,
    classifier: LesionClassifier | None = None,
    mirror_average: bool = False,
) -> list[tuple[DetectionSample, Detections]]:
    """Run ``model`` (switched to eval mode) over ``dataset``; detections come back on CPU.
    With a lesion ``classifier`` (:mod:`mammocad.malignancy`), its probabilities replace the
    detector head's malignancy, as :class:`mammocad.detect.Detector` does at inference.
    ``mirror_average`` averages each image's detections with its mirror's
    (:mod:`mammocad.detect.tta`)."""
    model.eval()
    results: list[tuple[DetectionSample, Detections]] = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            images = [s.image.to(device, torch.float32) for s in samples]
            with torch.autocast(
                device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ):
                if mirror_average:
                    found_all = [detect_mirror_averaged(model, image)[0] for image in images]
                else:
                    found_all = list(model(images).detections)
            if classifier is not None:
                found_all = [
                    rescore(classifier, image, found)
                    for image, found in zip(images, found_all, strict=True)
                ]
            results.extend(
                (sample, found.to("cpu")) for sample, found in zip(samples, found_all, strict=True)
            )
    return results


def froc_images(
    results: Sequence[tuple[DetectionSample, Detections]],
    config: DetectorConfig,
    ranker: LesionRanker | None = None,
) -> FrocImages:
    """Per image the lesion truths (the landmark left out) and the detections, as FROC inputs;
    with a lesion ``ranker`` its probabilities rank the malignant curve."""
    predictions = []
    truths = []
    names = config.classes
    for sample, found in results:
        target = sample.target
        lesion = target.labels != config.landmark_index
        labels = [names[i] for i in found.labels.tolist()]
        malignant_lesion = None
        if ranker is not None:
            malignant_lesion = ranker.probabilities(
                found.boxes.double().numpy(),
                found.scores.double().numpy(),
                labels,
                found.malignancy.double().numpy(),
            )
        predictions.append(
            ImagePredictions(
                boxes=found.boxes.numpy(),
                scores=found.scores.numpy(),
                labels=labels,
                malignancy=found.malignancy.numpy(),
                malignant_lesion=malignant_lesion,
            )
        )
        truths.append(
            ImageTruth(
                boxes=target.boxes[lesion].numpy(),
                labels=[names[i] for i in target.labels[lesion].tolist()],
                malignant=target.malignant[lesion].numpy(),
                annotated=annotated_names(sample, names),
            )
        )
    return FrocImages(
        classes=config.lesion_classes,
        image_ids=[sample.image_id for sample, _ in results],
        predictions=predictions,
        truths=truths,
    )


def froc_of(
    results: Sequence[tuple[DetectionSample, Detections]],
    config: DetectorConfig,
    *,
    bootstrap: int = 0,
    seed: int = 0,
) -> FrocReport:
    """FROC of detections against the samples' targets (see :mod:`mammocad.eval.froc`)."""
    images = froc_images(results, config)
    return evaluate_froc(
        images.predictions, images.truths, classes=images.classes, bootstrap=bootstrap, seed=seed
    )


def summary_metrics(report: FrocReport, *, prefix: str = "val") -> dict[str, float]:
    """Flat per-epoch metrics: sensitivity at each FP rate and the mean, per curve."""
    metrics: dict[str, float] = {}
    for curve in report.curves.values():
        for rate, value in zip(curve.fp_rates, curve.sensitivity_at, strict=True):
            metrics[f"{prefix}/{curve.name}/sens_at_{rate:g}fp"] = float(value)
        metrics[f"{prefix}/{curve.name}/mean_sens"] = curve.mean_sensitivity
    return metrics
