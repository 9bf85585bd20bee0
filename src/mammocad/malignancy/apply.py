"""Replace the detector head's malignancy with the lesion classifier's."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from mammocad.detect.containers import Detections
from mammocad.malignancy.model import LesionClassifier, crop_windows


@torch.inference_mode()
def rescore(classifier: LesionClassifier, image: Tensor, detections: Detections) -> Detections:
    """``detections`` of ``image`` (``float[C, H, W]``, the model input they were found on)
    with ``malignancy`` = the classifier's probability for each box; boxes, labels and scores
    unchanged."""
    if len(detections) == 0:
        return detections
    was_training = classifier.training
    classifier.eval()
    parameter = next(classifier.parameters())
    windows = crop_windows(
        image.unsqueeze(0).to(parameter.device, torch.float32),
        [detections.boxes.to(parameter.device, torch.float32)],
        classifier.config,
    )
    probability = torch.sigmoid(classifier(windows).float())
    classifier.train(was_training)
    return replace(detections, malignancy=probability.to(detections.malignancy.device))
