"""Detector: findings in ORIGINAL pixels through the preprocessing Transform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from mammocad.detect import MammoDetector
from mammocad.detect.bundle import load_bundle, save_bundle
from mammocad.detect.predict import Detector
from mammocad.errors import ModelBundleError
from mammocad.structures import (
    Finding,
    FindingLabel,
    Image,
    ImageQuality,
    PreprocessedImage,
    Transform,
)

Rig = Callable[[list[list[float]], Tensor], MammoDetector]
Logits = Callable[[list[tuple[str, float]]], Tensor]


def preprocessed(key: str = "1.2.3.4", shape: tuple[int, int, int] = (2, 256, 208)):
    # a right breast 1000×800 (rows × cols), mirrored, cropped to x ∈ [100, 800), y ∈ [50, 1000),
    # scaled by 0.25 → content 238 × 175 inside the 256 × 208 input
    transform = Transform(
        original_size=(1000, 800),
        flipped=True,
        crop_box=(100, 50, 800, 1000),
        scale_x=0.25,
        scale_y=0.25,
        input_size=(256, 208),
    )
    image = Image(source="r_cc.dcm", sop_instance_uid=key, rows=1000, columns=800)
    return PreprocessedImage(
        image=image,
        input=np.random.default_rng(0).random(shape, dtype=np.float32),
        transform=transform,
        tissue_mask=np.ones((1000, 800), dtype=bool),
        pectoral_mask=None,
        breast_box=(0.0, 50.0, 700.0, 1000.0),
        nipple=None,
        chest_wall_on_right=True,
        quality=ImageQuality(score=1.0, acceptable=True),
    )


def bundle_for(model: MammoDetector, folder: Path) -> Detector:
    manifest = save_bundle(
        model, folder, name="tiny", version="0", preprocessing={"input_size": [256, 208]}
    )
    return Detector(model=model, manifest=manifest)


def test_findings_are_mapped_to_original_pixels(
    tiny_model: MammoDetector, rigged: Rig, logits_for: Logits, tmp_path: Path
) -> None:
    model = rigged(
        [[20, 40, 60, 80], [120, 100, 140, 130], [170, 90, 190, 110]],
        logits_for([("mass", 6.0), ("calcification", 5.0), ("nipple", 7.0)]),
    )
    detector = bundle_for(model, tmp_path)
    item = preprocessed()
    (prediction,) = detector.predict([item])
    assert prediction.image_key == "1.2.3.4"
    assert [f.id for f in prediction.findings] == ["1.2.3.4-f1", "1.2.3.4-f2"]
    assert all(isinstance(f, Finding) for f in prediction.findings)
    assert [f.label for f in prediction.findings] == [
        FindingLabel.MASS,
        FindingLabel.CALCIFICATION,
    ]
    # input x ∈ [20, 60) → mirrored-cropped x ∈ [180, 340) → original x = 800 − (100 + x)
    np.testing.assert_allclose(prediction.findings[0].box, (460.0, 210.0, 620.0, 370.0))
    expected = item.transform.boxes_to_original([[120, 100, 140, 130]])[0]
    np.testing.assert_allclose(prediction.findings[1].box, expected)
    assert all(0 <= f.malignancy_probability <= 1 for f in prediction.findings)
    # nipple centre (180, 100) in input → (800 − (100 + 720), 50 + 400) = (−20, 450)
    assert prediction.nipple == pytest.approx((-20.0, 450.0))
    assert prediction.nipple_score is not None and prediction.nipple_score > 0.5
    assert "nipple" not in {f.label.value for f in prediction.findings}


def test_finding_threshold_from_the_bundle(
    tiny_model: MammoDetector, rigged: Rig, logits_for: Logits, tmp_path: Path
) -> None:
    model = rigged([[20, 40, 60, 80]], logits_for([("mass", 1.0)]))  # score ≈ 0.28
    manifest = save_bundle(
        model,
        tmp_path,
        name="tiny",
        version="0",
        preprocessing={},
        thresholds={"finding_score": 0.5},
    )
    assert Detector(model=model, manifest=manifest).predict([preprocessed()])[0].findings == []


def test_findings_per_image_reports_the_most_suspicious_and_keeps_the_rest_as_candidates(
    tiny_model: MammoDetector, tmp_path: Path
) -> None:
    from mammocad.detect import Detections

    def detector(**thresholds: float) -> Detector:
        manifest = save_bundle(
            tiny_model, tmp_path, name="tiny", version="0", preprocessing={}, thresholds=thresholds
        )
        return Detector(model=tiny_model, manifest=manifest)

    # score order f1 > f2 > f3 > f4; score · malignancy 0.09, 0.40, 0.28, 0.45
    found = Detections(
        boxes=torch.tensor(
            [[20, 40, 60, 80], [120, 100, 140, 130], [170, 20, 200, 50], [10, 10, 30, 30]]
        ).float(),
        labels=torch.tensor([0, 0, 1, 0]),
        scores=torch.tensor([0.9, 0.8, 0.7, 0.45]),
        malignancy=torch.tensor([0.1, 0.5, 0.4, 1.0]),
        nipple_box=torch.zeros((0, 4)),
        nipple_score=torch.zeros(0),
    )
    item = preprocessed()
    uncapped = detector(finding_score=0.5)._to_prediction(item, found)
    assert [f.id for f in uncapped.findings] == ["1.2.3.4-f1", "1.2.3.4-f2", "1.2.3.4-f3"]
    capped = detector(finding_score=0.5, findings_per_image=2)
    capped.set_candidate_threshold(0.01)
    prediction = capped._to_prediction(item, found)
    # the two most suspicious above the threshold, not the two highest scores; f4, the most
    # suspicious of all, scores below the threshold
    assert [f.id for f in prediction.findings] == ["1.2.3.4-f2", "1.2.3.4-f3"]
    assert [f.id for f in prediction.candidates] == [f"1.2.3.4-f{k}" for k in (1, 2, 3, 4)]
    for wrong in (0.0, 2.5, "five"):
        with pytest.raises(ModelBundleError, match="findings_per_image"):
            detector(findings_per_image=wrong)


def test_wrong_input_size_is_refused(tiny_model: MammoDetector, tmp_path: Path) -> None:
    detector = bundle_for(tiny_model, tmp_path)
    with pytest.raises(ValueError, match="preprocess with the bundle's parameters"):
        detector.predict([preprocessed(shape=(2, 512, 416))])


def test_from_bundle_loads_and_predicts(tiny_model: MammoDetector, tmp_path: Path) -> None:
    save_bundle(tiny_model, tmp_path, name="tiny", version="0", preprocessing={"a": 1})
    threads = torch.get_num_threads()
    try:
        detector = Detector.from_bundle(tmp_path, num_threads=1, channels_last=True)
        assert torch.get_num_threads() == 1
        assert detector.preprocessing == {"a": 1}
        predictions = detector.predict([preprocessed("a"), preprocessed("b")])
    finally:
        torch.set_num_threads(threads)
    assert [p.image_key for p in predictions] == ["a", "b"]
    assert load_bundle(tmp_path).manifest.name == "tiny"


def test_candidates_below_the_finding_threshold_carry_roi_features(
    tiny_model: MammoDetector, rigged: Rig, logits_for: Logits, tmp_path: Path
) -> None:
    # the mass scores ≈ 0.98; the second box has background at logit 4 and every class at 0,
    # so its best lesion score is 1 / (e⁴ + 7) ≈ 0.016, under the 0.05 cut-off
    logits = logits_for([("mass", 6.0), ("calcification", 0.0)])
    logits[1, 0] = 4.0
    model = rigged([[20, 40, 60, 80], [120, 100, 140, 130]], logits)
    detector = bundle_for(model, tmp_path)
    (plain,) = detector.predict([preprocessed()])
    assert [f.id for f in plain.findings] == [f.id for f in plain.candidates] == ["1.2.3.4-f1"]
    assert plain.roi_features is not None
    assert plain.roi_features.shape == (1, model.config.box_head_dim)
    detector.set_candidate_threshold(0.01)
    (fused,) = detector.predict([preprocessed()])
    assert [(f.id, f.box) for f in fused.findings] == [(f.id, f.box) for f in plain.findings]
    assert [f.id for f in fused.candidates] == ["1.2.3.4-f1", "1.2.3.4-f2"]
    assert fused.candidates[0] is fused.findings[0]
    assert fused.roi_features is not None and fused.roi_features.shape[0] == 2
    np.testing.assert_allclose(fused.roi_features[0], plain.roi_features[0], rtol=1e-5)
    assert fused.fusion_inputs() == (fused.candidates, fused.roi_features)


def test_findings_carry_the_lesion_rankers_probability_of_their_input_box(
    rigged: Rig, logits_for: Logits, tmp_path: Path
) -> None:
    from mammocad.eval.froc import ImagePredictions, ImageTruth
    from mammocad.eval.froc_pool import FrocImages
    from mammocad.ranker import fit_ranker

    boxes = [[20.0, 40.0, 60.0, 80.0], [120.0, 160.0, 140.0, 190.0]]
    model = rigged(boxes, logits_for([("mass", 6.0), ("calcification", 5.0)]))
    detector = bundle_for(model, tmp_path)
    classes = model.config.lesion_classes
    # a ranker for which the place of a box decides: malignant in the upper half of the input
    rng = np.random.default_rng(0)
    centres = rng.uniform(10, 200, (200, 2))
    training = FrocImages(
        classes=classes,
        image_ids=[str(k) for k in range(200)],
        predictions=[
            ImagePredictions(
                boxes=[[x, y, x + 10, y + 10]], scores=[0.5], labels=["mass"], malignancy=[0.5]
            )
            for x, y in centres
        ],
        truths=[
            ImageTruth(boxes=[[x, y, x + 10, y + 10]], labels=["mass"], malignant=[int(y < 128)])
            for x, y in centres
        ],
    )
    ranker, _ = fit_ranker([training], classes=classes, input_size=(256, 208))
    detector.ranker = ranker
    (prediction,) = detector.predict([preprocessed()])
    found = prediction.findings
    assert [f.label.value for f in found] == ["mass", "calcification"]
    expected = ranker.probabilities(
        boxes,
        [f.score for f in found],
        ["mass", "calcification"],
        [f.malignancy_probability for f in found],
    )
    assert [f.malignant_lesion_probability for f in found] == pytest.approx(expected.tolist())
    assert expected[0] > 0.5 > expected[1]  # computed on the input boxes, not the original ones
    assert found[0].to_dict()["x_malignant_lesion_probability"] == round(float(expected[0]), 2)
