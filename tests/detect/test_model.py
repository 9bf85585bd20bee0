"""MammoDetector: one return type, lesion-free images, input-pixel boxes, class-agnostic NMS,
the nipple as a landmark, partial annotation and the malignancy head."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from mammocad.detect import (
    Detections,
    DetectionTarget,
    DetectorConfig,
    DetectorOutput,
    MammoDetector,
)

Rig = Callable[[list[list[float]], Tensor], MammoDetector]
Logits = Callable[[list[tuple[str, float]]], Tensor]
Images = Callable[..., list[Tensor]]
LOSSES = {
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_classifier",
    "loss_box_reg",
    "loss_malignancy",
}


def target(
    config: DetectorConfig,
    boxes: list[list[float]],
    labels: list[str],
    malignant: list[int] | None = None,
    annotated: set[str] | None = None,
) -> DetectionTarget:
    names = annotated if annotated is not None else set(config.classes)
    return DetectionTarget(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([config.classes.index(n) for n in labels], dtype=torch.int64),
        malignant=torch.tensor(malignant or [-1] * len(labels), dtype=torch.int64),
        annotated=torch.tensor([n in names for n in config.classes], dtype=torch.bool),
    )


def test_same_return_type_in_train_and_eval_mode(
    tiny_model: MammoDetector, make_images: Images
) -> None:
    config = tiny_model.config
    targets = [
        target(config, [[40, 40, 80, 80]], ["mass"], [1]),
        target(config, [[100, 120, 112, 130]], ["calcification"], [0]),
    ]
    trained = tiny_model.train()(make_images(), targets)
    evaluated = tiny_model.eval()(make_images(), targets)
    assert type(trained) is DetectorOutput and type(evaluated) is DetectorOutput
    assert set(trained.losses) == LOSSES and trained.detections == []
    assert all(v.ndim == 0 and v.requires_grad for v in trained.losses.values())
    assert evaluated.losses == {} and len(evaluated.detections) == 2
    assert all(isinstance(d, Detections) for d in evaluated.detections)
    with pytest.raises(ValueError, match="eval mode"):
        evaluated.total_loss()


def test_lesion_free_images_train(tiny_model: MammoDetector, make_images: Images) -> None:
    empty = DetectionTarget.empty(len(tiny_model.config.classes))
    assert empty.boxes.shape == (0, 4)
    output = tiny_model.train()(make_images(), [empty, empty])
    loss = output.total_loss()
    assert torch.isfinite(loss)
    assert output.losses["loss_box_reg"] == 0 and output.losses["loss_malignancy"] == 0
    loss.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_training_mode_needs_targets(tiny_model: MammoDetector, make_images: Images) -> None:
    with pytest.raises(ValueError, match="needs targets"):
        tiny_model.train()(make_images())
    with pytest.raises(ValueError, match=r"\[2, H, W\]"):
        tiny_model.eval()([torch.rand(3, 64, 64)])


def test_batching_pads_without_touching_pixels(
    tiny_model: MammoDetector, make_images: Images
) -> None:
    small = torch.rand(2, 250, 200)
    batch = tiny_model.batch_images([make_images(1)[0], small])
    assert batch.tensors.shape == (2, 2, 256, 256)  # both sides rounded up to 64
    assert batch.image_sizes == [tiny_model.config.input_size, (250, 200)]
    assert torch.equal(batch.tensors[1, :, :250, :200], small)
    assert batch.tensors[1, :, 250:].abs().sum() == 0 and batch.tensors[1, :, :, 200:].sum() == 0


def test_boxes_come_back_in_input_pixels(
    tiny_model: MammoDetector, rigged: Rig, make_images: Images, logits_for: Logits
) -> None:
    # no resizing anywhere: with zero box deltas a detection is exactly its proposal, and a
    # proposal past the right edge of a 250×200 image is clipped at x = 200, not rescaled
    model = rigged(
        [[30.5, 40.25, 90.0, 70.0], [150, 10, 230, 40]],
        logits_for([("mass", 6.0), ("asymmetry", 5.0)]),
    )
    found = model([make_images(1)[0], torch.rand(2, 250, 200)]).detections
    assert found[0].boxes.tolist() == [[30.5, 40.25, 90.0, 70.0], [150.0, 10.0, 208.0, 40.0]]
    assert found[1].boxes.tolist() == [[30.5, 40.25, 90.0, 70.0], [150.0, 10.0, 200.0, 40.0]]


def test_nms_is_class_agnostic(
    tiny_model: MammoDetector, rigged: Rig, make_images: Images, logits_for: Logits
) -> None:
    # two boxes on one lesion (IoU 0.82), one called mass, one calcification → one finding
    config = tiny_model.config
    model = rigged(
        [[40, 40, 90, 90], [42, 42, 92, 92], [150, 150, 170, 170]],
        logits_for([("mass", 5.0), ("calcification", 6.0), ("mass", 4.0)]),
    )
    found = model(make_images(1)).detections[0]
    assert len(found) == 2
    names = [config.classes[i] for i in found.labels.tolist()]
    assert names == ["calcification", "mass"]
    assert found.boxes[0].tolist() == [42, 42, 92, 92]
    assert torch.all(found.scores[:-1] >= found.scores[1:])
    assert found.malignancy.shape == (2,) and torch.all(
        (found.malignancy >= 0) & (found.malignancy <= 1)
    )


def test_nipple_is_a_landmark_never_a_finding(
    tiny_model: MammoDetector, rigged: Rig, make_images: Images, logits_for: Logits
) -> None:
    config = tiny_model.config
    model = rigged(
        [[180, 120, 200, 140], [181, 121, 201, 141], [60, 60, 100, 100], [120, 30, 160, 60]],
        logits_for([("nipple", 7.0), ("mass", 5.0), ("mass", 6.0), ("nipple", 4.0)]),
    )
    found = model(make_images(1)).detections[0]
    assert config.landmark_index not in found.labels.tolist()
    # the best nipple box wins; the weaker mass box on top of it is explained by the nipple
    assert found.nipple_box.tolist() == [[180, 120, 200, 140]]
    assert float(found.nipple_score[0]) > 0.5
    assert found.boxes.tolist() == [[60, 60, 100, 100]]


def test_only_nipples_gives_no_finding(
    tiny_model: MammoDetector, rigged: Rig, make_images: Images, logits_for: Logits
) -> None:
    model = rigged([[10, 10, 30, 30]], logits_for([("nipple", 3.0)]))
    found = model(make_images(1)).detections[0]
    assert len(found) == 0 and found.boxes.shape == (0, 4)
    assert found.nipple_box.shape == (1, 4)


def test_background_gives_empty_detections(
    tiny_model: MammoDetector, rigged: Rig, make_images: Images
) -> None:
    logits = torch.zeros(1, len(tiny_model.config.classes) + 1)
    logits[0, 0] = 10.0  # background
    found = rigged([[10, 10, 30, 30]], logits)(make_images(1)).detections[0]
    assert len(found) == 0 and found.nipple_box.shape == (0, 4) and found.nipple_score.shape == (0,)


def classifier_gradient(
    model: MammoDetector, monkeypatch: pytest.MonkeyPatch, goal: DetectionTarget, image: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradient of ``loss_classifier`` w.r.t. the class logits, and the sampled labels."""
    captured: dict[str, Tensor] = {}
    heads = model.roi_heads
    original = heads.select_training_samples

    def keep_labels(proposals, targets):
        result = original(proposals, targets)
        captured["labels"] = torch.cat(result[2])
        return result

    def keep_logits(module, inputs, output):
        output.retain_grad()
        captured["logits"] = output

    monkeypatch.setattr(heads, "select_training_samples", keep_labels)
    hook = heads.box_predictor.cls_score.register_forward_hook(keep_logits)
    try:
        torch.manual_seed(0)
        model.train()([image], [goal]).losses["loss_classifier"].backward()
    finally:
        hook.remove()
    gradient = captured["logits"].grad
    assert gradient is not None
    return gradient, captured["labels"]


def test_unannotated_classes_get_no_background_gradient(
    tiny_model: MammoDetector, monkeypatch: pytest.MonkeyPatch, make_images: Images
) -> None:
    config = tiny_model.config
    calc_column = config.classes.index("calcification") + 1
    mass_column = config.classes.index("mass") + 1
    partial = target(config, [[40, 40, 90, 90]], ["mass"], [1], annotated={"mass", "nipple"})
    gradient, labels = classifier_gradient(tiny_model, monkeypatch, partial, make_images(1)[0])
    background = labels == 0
    assert background.sum() > 0
    assert torch.all(gradient[background, calc_column] == 0)
    assert torch.all(gradient[background, mass_column] != 0)
    # the same image with every class annotated does push calcification down on background
    tiny_model.zero_grad()
    full = target(config, [[40, 40, 90, 90]], ["mass"], [1])
    gradient, labels = classifier_gradient(tiny_model, monkeypatch, full, make_images(1)[0])
    assert torch.all(gradient[labels == 0, calc_column] > 0)


def test_malignancy_loss_only_for_known_pathology(
    tiny_model: MammoDetector, make_images: Images
) -> None:
    config = tiny_model.config
    unknown = target(config, [[40, 40, 90, 90]], ["mass"], [-1])
    known = target(config, [[40, 40, 90, 90]], ["mass"], [1])
    torch.manual_seed(0)
    assert tiny_model.train()(make_images(1), [unknown]).losses["loss_malignancy"] == 0
    torch.manual_seed(0)
    assert tiny_model(make_images(1), [known]).losses["loss_malignancy"] > 0


def test_target_validation(tiny_config: DetectorConfig) -> None:
    with pytest.raises(ValueError, match="x1 < x2"):
        target(tiny_config, [[10, 10, 10, 20]], ["mass"])
    with pytest.raises(ValueError, match="not to annotate"):
        target(tiny_config, [[10, 10, 20, 20]], ["mass"], annotated={"calcification"})
    with pytest.raises(ValueError, match="malignant must be"):
        target(tiny_config, [[10, 10, 20, 20]], ["mass"], [2])
    with pytest.raises(TypeError, match="floating point"):
        DetectionTarget(
            boxes=torch.zeros((0, 4), dtype=torch.int64),
            labels=torch.zeros(0, dtype=torch.int64),
            malignant=torch.zeros(0, dtype=torch.int64),
            annotated=torch.ones(7, dtype=torch.bool),
        )


def test_targets_must_cover_every_class(tiny_model: MammoDetector, make_images: Images) -> None:
    short = DetectionTarget.empty(3)
    with pytest.raises(ValueError, match="one per class"):
        tiny_model.train()(make_images(1), [short])
