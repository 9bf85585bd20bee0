"""Faster R-CNN + FPN for two-channel mammograms, with one return type in every mode.

The parts are torchvision's (``BackboneWithFPN``, ``RegionProposalNetwork``, ``RoIHeads``) but
``GeneralizedRCNN`` and its ``GeneralizedRCNNTransform`` are not used: preprocessing has already
cropped, resized and scaled the image to ``[0, 1]``, so the transform's resizing and ImageNet
normalisation would only distort it. Images are batched by zero-padding right and bottom (the
same padding preprocessing uses), so boxes in and out are in INPUT pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign

from mammocad.detect.backbone import build_backbone
from mammocad.detect.config import DetectorConfig
from mammocad.detect.containers import Detections, DetectionTarget, DetectorOutput
from mammocad.detect.heads import MalignancyHead, MammoRoIHeads

# the coarsest FPN level (LastLevelMaxPool) has stride 64; padding to it keeps every level's
# grid aligned with the input, so anchors sit where the features are
_SIZE_DIVISIBLE = 64
_ROI_SIZE = 7


class MammoDetector(nn.Module):
    """Lesion detector. Build it with :func:`build_detector`.

    ``forward(images, targets)``:

    * ``images`` — ``float32[C, H, W]`` tensors (``C = config.in_channels``), values in
      ``[0, 1]``, chest wall on the left; sizes may differ.
    * ``targets`` — one :class:`DetectionTarget` per image (boxes in input pixels); required in
      training mode, ignored in eval mode.

    Returns a :class:`DetectorOutput` in both modes (losses in training, detections in eval).
    """

    def __init__(
        self,
        *,
        config: DetectorConfig,
        backbone: nn.Module,
        rpn: RegionProposalNetwork,
        roi_heads: MammoRoIHeads,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads

    def forward(
        self, images: Sequence[Tensor], targets: Sequence[DetectionTarget] | None = None
    ) -> DetectorOutput:
        if self.training and targets is None:
            raise ValueError("training mode needs targets; call model.eval() to detect")
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        batch = self.batch_images(images)
        internal = self._internal_targets(targets, batch.tensors.device) if self.training else None
        features = self.backbone(batch.tensors)
        proposals, rpn_losses = self.rpn(batch, features, internal)
        detections, head_losses = self.roi_heads(features, proposals, batch.image_sizes, internal)
        return DetectorOutput(losses={**rpn_losses, **head_losses}, detections=detections)

    @torch.no_grad()
    def detect_with_features(
        self, images: Sequence[Tensor]
    ) -> tuple[list[Detections], list[Tensor]]:
        """Eval-mode detections plus the RoI representation of each detection box.

        The second list holds ``float32[N_i, config.box_head_dim]`` per image, row ``k`` the
        box head's output (``box_head(box_roi_pool(features, boxes))``) for the final box
        ``k`` of ``detections[i]`` — the same features the malignancy head saw, re-pooled at
        the regressed box. Cross-view fusion (:mod:`mammocad.fuse`) compares and attends over
        them. ``forward`` is unchanged.
        """
        if self.training:
            raise ValueError("detect_with_features runs in eval mode; call model.eval() first")
        batch = self.batch_images(images)
        features = self.backbone(batch.tensors)
        proposals, _ = self.rpn(batch, features, None)
        detections, _ = self.roi_heads(features, proposals, batch.image_sizes, None)
        boxes = [found.boxes for found in detections]
        pooled = self.roi_heads.box_roi_pool(features, boxes, batch.image_sizes)
        represented = self.roi_heads.box_head(pooled).float()
        return detections, list(represented.split([len(b) for b in boxes]))

    def batch_images(self, images: Sequence[Tensor]) -> ImageList:
        """Zero-pad right/bottom to a common size divisible by 64; pixel values unchanged."""
        if not images:
            raise ValueError("no images given")
        for image in images:
            if image.ndim != 3 or image.shape[0] != self.config.in_channels:
                raise ValueError(
                    f"expected [{self.config.in_channels}, H, W] images, got {tuple(image.shape)}"
                )
        sizes = [(int(image.shape[1]), int(image.shape[2])) for image in images]
        rows = -(-max(h for h, _ in sizes) // _SIZE_DIVISIBLE) * _SIZE_DIVISIBLE
        cols = -(-max(w for _, w in sizes) // _SIZE_DIVISIBLE) * _SIZE_DIVISIBLE
        first = images[0]
        tensor = first.new_zeros((len(images), first.shape[0], rows, cols))
        for slot, image in zip(tensor, images, strict=True):
            slot[:, : image.shape[1], : image.shape[2]].copy_(image)
        return ImageList(tensor, sizes)

    def _internal_targets(
        self, targets: Sequence[DetectionTarget] | None, device: torch.device
    ) -> list[dict[str, Tensor]]:
        if targets is None:
            raise ValueError("training mode needs targets")
        num_classes = len(self.config.classes)
        internal = []
        for target in targets:
            if target.annotated.numel() != num_classes:
                raise ValueError(
                    f"annotated has {target.annotated.numel()} entries, expected one per class "
                    f"({num_classes}: {self.config.classes})"
                )
            moved = target.to(device)
            internal.append(
                {
                    "boxes": moved.boxes,
                    "labels": moved.labels + 1,  # column 0 is background
                    "malignant": moved.malignant,
                    "annotated": moved.annotated,
                }
            )
        return internal


def build_detector(config: DetectorConfig) -> MammoDetector:
    """A randomly initialised detector for ``config`` (no pretrained weights exist here)."""
    backbone = build_backbone(config)
    anchors = AnchorGenerator(
        sizes=config.resolved_anchor_sizes,
        aspect_ratios=(config.aspect_ratios,) * len(config.resolved_anchor_sizes),
    )
    rpn = RegionProposalNetwork(
        anchors,
        RPNHead(config.fpn_channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=config.rpn_fg_iou,
        bg_iou_thresh=config.rpn_bg_iou,
        batch_size_per_image=config.rpn_batch_size_per_image,
        positive_fraction=config.rpn_positive_fraction,
        pre_nms_top_n={
            "training": config.rpn_pre_nms_top_n_train,
            "testing": config.rpn_pre_nms_top_n_test,
        },
        post_nms_top_n={
            "training": config.rpn_post_nms_top_n_train,
            "testing": config.rpn_post_nms_top_n_test,
        },
        nms_thresh=config.rpn_nms_iou,
    )
    levels = [str(i) for i in range(len(config.feature_strides) - 1)]  # "pool" feeds the RPN only
    representation = config.box_head_dim
    roi_heads = MammoRoIHeads(
        box_roi_pool=MultiScaleRoIAlign(levels, output_size=_ROI_SIZE, sampling_ratio=2),
        box_head=TwoMLPHead(config.fpn_channels * _ROI_SIZE**2, representation),
        box_predictor=FastRCNNPredictor(representation, len(config.classes) + 1),
        malignancy_head=MalignancyHead(in_features=representation, hidden=config.malignancy_hidden),
        config=config,
    )
    return MammoDetector(config=config, backbone=backbone, rpn=rpn, roi_heads=roi_heads)
