"""Test-time augmentation: detect on the image and on its top↔bottom mirror, and average.

The mirror keeps the chest wall on the left, as every model input has it, and flips the
breast's rows only, leaving the padding below them where preprocessing puts it: training
augments with the same flip (:mod:`mammocad.train.augment`), so both passes see an image of the
kind the detector learnt from (mirroring the whole input put the padding on top, which no
training image had, until 2026-12-07). A lesion found in both passes keeps the mean of its
two scores; one found in a single pass keeps half its score (the other pass's vote is 0),
which is where the gain is expected: chance responses to texture rarely survive the mirror,
lesions do.

Matching is greedy by score and class-agnostic, like the detector's own NMS: the strongest
unmatched detection takes the unmatched detection of the other pass that overlaps it most
(IoU ≥ ``match_iou``). The merged box is the score-weighted mean of the pair; label and RoI
features are the stronger detection's; malignancy is the mean. The merged set then goes
through the detector's class-agnostic NMS and per-image cap again, so one lesion still gives
one finding.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou, nms

from mammocad.detect.containers import Detections
from mammocad.detect.model import MammoDetector

#: boxes of the two passes closer than this are one detection (the FROC hit rule's 0.3 is for
#: truth vs detection; two passes over the same lesion agree far better)
MATCH_IOU = 0.5


def mirror_boxes(boxes: Tensor, rows: int) -> Tensor:
    """``[x1, y1, x2, y2]`` boxes of an image ``rows`` high, in its top↔bottom mirror."""
    return torch.stack([boxes[:, 0], rows - boxes[:, 3], boxes[:, 2], rows - boxes[:, 1]], dim=1)


def _back_from_mirror(boxes: Tensor, rows: int) -> Tensor:
    """Boxes of the mirror pass in the image: the model clips them to the padded input, so a
    box running from the breast into the padding would map above row 0 without the clamp."""
    back = mirror_boxes(boxes, rows)
    back[:, 1::2] = back[:, 1::2].clamp(0, rows)
    return back


def content_rows(image: Tensor) -> int:
    """Rows of ``image`` (``[C, H, W]``) down to the last holding a non-zero pixel (at least
    one): the breast, above the zero padding preprocessing adds at the bottom."""
    filled = torch.nonzero(image.reshape(-1, *image.shape[-2:]).ne(0).any(dim=(0, 2)))
    return int(filled[-1]) + 1 if len(filled) else int(image.shape[-2])


@torch.no_grad()
def detect_mirror_averaged(
    model: MammoDetector, image: Tensor, *, match_iou: float = MATCH_IOU
) -> tuple[Detections, Tensor]:
    """Eval-mode detections of ``image`` (``[C, H, W]``) averaged with those of its mirror,
    with the RoI features of each box (as :meth:`MammoDetector.detect_with_features`)."""
    rows = content_rows(image)
    mirror = image.clone()
    mirror[..., :rows, :] = image[..., :rows, :].flip(-2)
    (plain, mirrored), (plain_features, mirrored_features) = model.detect_with_features(
        [image, mirror]
    )
    boxes, nipple_box = (_back_from_mirror(b, rows) for b in (mirrored.boxes, mirrored.nipple_box))
    # a box wholly in the padding comes back with no height: no detection of the breast
    keep, keep_nipple = boxes[:, 3] > boxes[:, 1], nipple_box[:, 3] > nipple_box[:, 1]
    mirrored = Detections(
        boxes=boxes[keep],
        labels=mirrored.labels[keep],
        scores=mirrored.scores[keep],
        malignancy=mirrored.malignancy[keep],
        nipple_box=nipple_box[keep_nipple],
        nipple_score=mirrored.nipple_score[keep_nipple],
    )
    mirrored_features = mirrored_features[keep]
    heads = model.roi_heads
    return merge_passes(
        (plain, plain_features),
        (mirrored, mirrored_features),
        match_iou=match_iou,
        nms_iou=float(heads.nms_thresh),
        max_detections=int(heads.detections_per_img),
    )


def merge_passes(
    first: tuple[Detections, Tensor],
    second: tuple[Detections, Tensor],
    *,
    match_iou: float = MATCH_IOU,
    nms_iou: float = 0.3,
    max_detections: int = 20,
) -> tuple[Detections, Tensor]:
    """Average two passes' detections of one image (both in the image's own coordinates)."""
    (a, a_features), (b, b_features) = first, second
    boxes = torch.cat([a.boxes, b.boxes])
    scores = torch.cat([a.scores, b.scores])
    labels = torch.cat([a.labels, b.labels])
    malignancy = torch.cat([a.malignancy, b.malignancy])
    features = torch.cat([a_features, b_features])
    device = boxes.device  # bookkeeping beside the detections (CUDA with --device cuda)
    from_first = torch.arange(len(boxes), device=device) < len(a)
    overlap = box_iou(boxes, boxes)
    # only a detection of the other pass can be a partner
    overlap[from_first[:, None] == from_first[None, :]] = -1.0
    free = torch.ones(len(boxes), dtype=torch.bool, device=device)
    kept: list[int] = []
    merged_boxes, merged_scores, merged_malignancy = [], [], []
    for index in torch.argsort(scores, descending=True, stable=True).tolist():
        if not free[index]:
            continue
        free[index] = False
        candidates = torch.where(free, overlap[index], torch.full_like(overlap[index], -1.0))
        partner = int(candidates.argmax())
        kept.append(index)
        if candidates[partner] >= match_iou:
            free[partner] = False
            pair = scores[[index, partner]]
            weights = pair / pair.sum().clamp_min(1e-12)
            merged_boxes.append((boxes[[index, partner]] * weights[:, None]).sum(0))
            merged_scores.append(pair.mean())
            merged_malignancy.append(malignancy[[index, partner]].mean())
        else:
            merged_boxes.append(boxes[index])
            merged_scores.append(scores[index] / 2)
            merged_malignancy.append(malignancy[index])
    if not kept:
        return _with_nipple(a, b, boxes[:0], scores[:0], labels[:0], malignancy[:0]), features[:0]
    order = torch.tensor(kept, device=device)
    out_boxes = torch.stack(merged_boxes)
    out_scores = torch.stack(merged_scores)
    keep = nms(out_boxes, out_scores, nms_iou)[:max_detections]  # sorted by score
    merged = _with_nipple(
        a,
        b,
        out_boxes[keep],
        out_scores[keep],
        labels[order][keep],
        torch.stack(merged_malignancy)[keep],
    )
    return merged, features[order][keep]


def _with_nipple(
    a: Detections, b: Detections, boxes: Tensor, scores: Tensor, labels: Tensor, malignancy: Tensor
) -> Detections:
    """The lesions given, and the stronger pass's nipple (a landmark, not averaged)."""
    nipple = a if _best_nipple(a) >= _best_nipple(b) else b
    return Detections(
        boxes=boxes,
        labels=labels,
        scores=scores,
        malignancy=malignancy,
        nipple_box=nipple.nipple_box,
        nipple_score=nipple.nipple_score,
    )


def _best_nipple(found: Detections) -> float:
    return float(found.nipple_score.max()) if len(found.nipple_score) else -1.0
