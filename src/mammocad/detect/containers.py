"""Typed containers going in and out of :class:`mammocad.detect.MammoDetector`.

Every box here is ``[x1, y1, x2, y2]`` in INPUT pixels (the preprocessed model input, chest wall
on the left), never original pixels: :mod:`mammocad.detect.predict` maps them back. Class indices
are positions in :attr:`DetectorConfig.classes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

UNKNOWN_MALIGNANCY = -1


@dataclass(frozen=True, kw_only=True)
class DetectionTarget:
    """Ground truth of one training image.

    Attributes:
        boxes: ``float32[N, 4]`` ``[x1, y1, x2, y2]`` in input pixels, ``x1 < x2``, ``y1 < y2``;
            ``torch.zeros((0, 4))`` for an image without lesions.
        labels: ``int64[N]`` class indices into ``DetectorConfig.classes``.
        malignant: ``int64[N]``: 1 malignant, 0 benign, -1 unknown (the nipple is always -1).
            Only boxes with known malignancy train the malignancy head.
        annotated: ``bool[C]`` over ``DetectorConfig.classes``: which classes the image's data
            source annotates. A class it does not annotate is never taught as background there.
    """

    boxes: Tensor
    labels: Tensor
    malignant: Tensor
    annotated: Tensor

    def __post_init__(self) -> None:
        count = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be [N, 4], got {tuple(self.boxes.shape)}")
        if not self.boxes.is_floating_point():
            raise TypeError(f"boxes must be floating point, got {self.boxes.dtype}")
        for name in ("labels", "malignant"):
            value = getattr(self, name)
            if value.dtype != torch.int64 or tuple(value.shape) != (count,):
                raise ValueError(
                    f"{name} must be int64[{count}], got {value.dtype}{list(value.shape)}"
                )
        if self.annotated.dtype != torch.bool or self.annotated.ndim != 1:
            raise ValueError("annotated must be a 1-D bool tensor over the classes")
        if count and bool((self.boxes[:, 2:] <= self.boxes[:, :2]).any()):
            raise ValueError("every box needs x1 < x2 and y1 < y2 (drop degenerate boxes first)")
        if count and bool(((self.malignant < -1) | (self.malignant > 1)).any()):
            raise ValueError("malignant must be 1 (malignant), 0 (benign) or -1 (unknown)")
        if count and bool((self.labels < 0).any() | (self.labels >= self.annotated.numel()).any()):
            raise ValueError(f"labels must lie in [0, {self.annotated.numel()})")
        if count and not bool(self.annotated[self.labels].all()):
            raise ValueError(
                "a box has a class its data source is declared not to annotate; "
                "fix the source's annotated classes"
            )

    @classmethod
    def empty(cls, num_classes: int, annotated: Tensor | None = None) -> DetectionTarget:
        """Target of a lesion-free image (all classes annotated unless ``annotated`` says)."""
        mask = torch.ones(num_classes, dtype=torch.bool) if annotated is None else annotated
        return cls(
            boxes=torch.zeros((0, 4)),
            labels=torch.zeros(0, dtype=torch.int64),
            malignant=torch.zeros(0, dtype=torch.int64),
            annotated=mask,
        )

    def to(self, device: torch.device | str) -> DetectionTarget:
        return DetectionTarget(
            boxes=self.boxes.to(device, torch.float32),
            labels=self.labels.to(device),
            malignant=self.malignant.to(device),
            annotated=self.annotated.to(device),
        )


@dataclass(frozen=True, kw_only=True)
class Detections:
    """Detector output for one image, sorted by descending ``scores``.

    Attributes:
        boxes: ``float32[N, 4]`` lesion boxes in input pixels, inside the image.
        labels: ``int64[N]`` indices into ``DetectorConfig.classes`` — never the landmark's.
        scores: ``float32[N]`` probability of the label (softmax over classes and background).
        malignancy: ``float32[N]`` P(malignant | lesion) from the malignancy head.
        nipple_box: ``float32[K, 4]``, ``K ≤ 1``: the best nipple box, if one scored at least
            ``DetectorConfig.nipple_score_threshold``.
        nipple_score: ``float32[K]``.
    """

    boxes: Tensor
    labels: Tensor
    scores: Tensor
    malignancy: Tensor
    nipple_box: Tensor
    nipple_score: Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> Detections:
        return Detections(
            boxes=self.boxes.to(device),
            labels=self.labels.to(device),
            scores=self.scores.to(device),
            malignancy=self.malignancy.to(device),
            nipple_box=self.nipple_box.to(device),
            nipple_score=self.nipple_score.to(device),
        )


@dataclass(frozen=True, kw_only=True)
class DetectorOutput:
    """What :class:`MammoDetector` returns, in every mode.

    Training mode (``model.train()``, targets required): ``losses`` holds ``loss_objectness``,
    ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg`` and ``loss_malignancy`` (scalar
    tensors with gradients) and ``detections`` is empty — proposals sampled for training say
    nothing about what the model would report. Eval mode: ``detections`` has one entry per input
    image and ``losses`` is empty.
    """

    losses: dict[str, Tensor] = field(default_factory=dict)
    detections: list[Detections] = field(default_factory=list)

    def total_loss(self) -> Tensor:
        """Sum of the losses; only meaningful in training mode."""
        if not self.losses:
            raise ValueError("no losses: the model was in eval mode; call model.train() first")
        return torch.stack(list(self.losses.values())).sum()
