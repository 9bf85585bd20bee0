"""Second stage of the detector: torchvision's RoI heads plus three mammography rules.

1. **Malignancy head** — a small MLP on the RoI box-head features gives P(malignant) for each
   box. It is trained with binary cross-entropy only on sampled proposals matched to a lesion
   whose malignancy is known (``malignant`` 0 or 1), so sources without pathology still train
   detection, and benign/malignant never split the lesion classes (which would halve the
   examples per class).
2. **Partial annotation** — the classifier's softmax for an image runs only over background and
   the classes its data source annotates: logits of the other classes are masked out, so a
   source that does not mark calcifications never teaches "calcification-looking means
   background" (their gradient there is exactly zero).
3. **One lesion, one finding** — at inference each proposal keeps its best lesion class, then
   NMS runs over all lesion classes together (class-agnostic). The nipple is a trained class
   (a hard negative: it looks like a mass) reported separately as a landmark: the best nipple
   box is returned on its own and lesion boxes it explains are dropped.

Internally column 0 of the classifier is background and class ``k`` of
``DetectorConfig.classes`` is column ``k + 1`` (torchvision's convention).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import boxes as box_ops

from mammocad.detect.config import DetectorConfig
from mammocad.detect.containers import Detections

# boxes narrower than this (input pixels) carry no location; torchvision drops them the same way
_MIN_BOX_SIZE = 1e-2


class MalignancyHead(nn.Module):
    """``float[N, in_features]`` RoI features → ``float[N]`` malignancy logits."""

    def __init__(self, *, in_features: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features).squeeze(1)


class MammoRoIHeads(RoIHeads):
    """RoI heads returning :class:`Detections` (eval) or the three second-stage losses (train).

    ``targets`` are torchvision-style dicts with ``boxes`` (input pixels), ``labels`` (classifier
    columns, 1-based), ``malignant`` (int64, -1 unknown) and ``annotated`` (bool over classes).
    """

    def __init__(
        self,
        *,
        box_roi_pool: nn.Module,
        box_head: nn.Module,
        box_predictor: nn.Module,
        malignancy_head: MalignancyHead,
        config: DetectorConfig,
    ) -> None:
        super().__init__(
            box_roi_pool,
            box_head,
            box_predictor,
            fg_iou_thresh=config.roi_fg_iou,
            bg_iou_thresh=config.roi_bg_iou,
            batch_size_per_image=config.roi_batch_size_per_image,
            positive_fraction=config.roi_positive_fraction,
            bbox_reg_weights=None,
            score_thresh=config.score_threshold,
            nms_thresh=config.nms_iou,
            detections_per_img=config.detections_per_image,
        )
        self.malignancy_head = malignancy_head
        self.malignancy_loss_weight = config.malignancy_loss_weight
        self.nipple_score_thresh = config.nipple_score_threshold
        self.landmark_column = config.landmark_index + 1
        lesion_columns = torch.tensor([i + 1 for i in config.lesion_indices], dtype=torch.int64)
        self.register_buffer("lesion_columns", lesion_columns, persistent=False)

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Detections], dict[str, Tensor]]:
        if not self.training:
            outputs = self._heads(features, proposals, image_shapes)
            return self._detections(*outputs, proposals, image_shapes), {}
        if targets is None:
            raise ValueError("training the RoI heads needs targets")
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
            proposals, targets
        )
        class_logits, box_regression, malignancy_logits = self._heads(
            features, proposals, image_shapes
        )
        annotated = _annotated_rows(labels, targets)
        masked = class_logits.masked_fill(~annotated, torch.finfo(class_logits.dtype).min)
        loss_classifier, loss_box_reg = fastrcnn_loss(
            masked, box_regression, labels, regression_targets
        )
        loss_malignancy = self._malignancy_loss(malignancy_logits, labels, matched_idxs, targets)
        return [], {
            "loss_classifier": loss_classifier,
            "loss_box_reg": loss_box_reg,
            "loss_malignancy": loss_malignancy * self.malignancy_loss_weight,
        }

    def _heads(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Class logits ``[P, C+1]``, box deltas ``[P, 4(C+1)]``, malignancy logits ``[P]``."""
        pooled = self.box_roi_pool(features, proposals, image_shapes)
        box_features = self.box_head(pooled)
        class_logits, box_regression = self.box_predictor(box_features)
        return class_logits, box_regression, self.malignancy_head(box_features)

    def _malignancy_loss(
        self,
        logits: Tensor,
        labels: list[Tensor],
        matched_idxs: list[Tensor],
        targets: list[dict[str, Tensor]],
    ) -> Tensor:
        wanted = []
        for labels_img, matched_img, target in zip(labels, matched_idxs, targets, strict=True):
            malignant = target["malignant"]
            if malignant.numel() == 0:  # lesion-free image: every proposal is background
                wanted.append(torch.full_like(labels_img, -1))
                continue
            per_proposal = malignant[matched_img]
            wanted.append(
                torch.where(labels_img > 0, per_proposal, torch.full_like(labels_img, -1))
            )
        goal = torch.cat(wanted)
        known = goal >= 0
        if not bool(known.any()):
            # keeps the head in the graph (DDP and GradScaler want every parameter used)
            return logits.sum() * 0.0
        return functional.binary_cross_entropy_with_logits(
            logits[known].float(), goal[known].float()
        )

    def _detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        malignancy_logits: Tensor,
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> list[Detections]:
        counts = [len(p) for p in proposals]
        probs = functional.softmax(class_logits.float(), -1).split(counts)
        boxes = self.box_coder.decode(box_regression.float(), proposals).split(counts)
        malignancy = torch.sigmoid(malignancy_logits.float()).split(counts)
        return [
            self._one_image(p, b, m, shape)
            for p, b, m, shape in zip(probs, boxes, malignancy, image_shapes, strict=True)
        ]

    def _one_image(
        self, probs: Tensor, boxes: Tensor, malignancy: Tensor, shape: tuple[int, int]
    ) -> Detections:
        """``probs`` ``[N, C+1]``, ``boxes`` ``[N, C+1, 4]`` → one image's detections."""
        boxes = box_ops.clip_boxes_to_image(boxes, shape)
        rows = torch.arange(len(probs), device=probs.device)
        score, best = probs[:, self.lesion_columns].max(1)
        column = self.lesion_columns[best]
        lesion_boxes = boxes[rows, column]
        nipple_prob = probs[:, self.landmark_column]
        # a proposal that looks more like the nipple than like any lesion is no lesion
        keep = (score > self.score_thresh) & (score >= nipple_prob)
        keep &= _not_tiny(lesion_boxes)
        index = torch.where(keep)[0]
        index = index[box_ops.nms(lesion_boxes[index], score[index], self.nms_thresh)]
        nipple_box, nipple_score = self._best_nipple(
            boxes[:, self.landmark_column], nipple_prob, score
        )
        if len(nipple_box):
            # the nipple explains lesion boxes on top of it that score lower than it does
            overlap = box_ops.box_iou(lesion_boxes[index], nipple_box)[:, 0]
            index = index[(overlap < self.nms_thresh) | (score[index] > nipple_score)]
        index = index[: self.detections_per_img]
        return Detections(
            boxes=lesion_boxes[index],
            labels=column[index] - 1,
            scores=score[index],
            malignancy=malignancy[index],
            nipple_box=nipple_box,
            nipple_score=nipple_score,
        )

    def _best_nipple(
        self, boxes: Tensor, nipple_prob: Tensor, lesion_score: Tensor
    ) -> tuple[Tensor, Tensor]:
        candidate = (nipple_prob >= self.nipple_score_thresh) & (nipple_prob > lesion_score)
        candidate &= _not_tiny(boxes)
        if not bool(candidate.any()):
            return boxes.new_zeros((0, 4)), nipple_prob.new_zeros(0)
        masked = torch.where(candidate, nipple_prob, torch.full_like(nipple_prob, -1.0))
        best = int(masked.argmax())
        return boxes[best : best + 1], nipple_prob[best : best + 1]


def _annotated_rows(labels: list[Tensor], targets: list[dict[str, Tensor]]) -> Tensor:
    """``bool[P, C+1]``: for every sampled proposal, the classifier columns its loss may use."""
    rows = []
    for labels_img, target in zip(labels, targets, strict=True):
        annotated = target["annotated"]
        columns = torch.cat([annotated.new_ones(1), annotated])  # background is always known
        rows.append(columns.unsqueeze(0).expand(len(labels_img), -1))
    return torch.cat(rows)


def _not_tiny(boxes: Tensor) -> Tensor:
    return ((boxes[:, 2] - boxes[:, 0]) >= _MIN_BOX_SIZE) & (
        (boxes[:, 3] - boxes[:, 1]) >= _MIN_BOX_SIZE
    )
