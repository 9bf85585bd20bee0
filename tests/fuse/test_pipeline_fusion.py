"""``Pipeline.analyze`` with fusion: links both ways, refined malignancy, fused breast
probability, schema-valid result — and the same linking without fusion weights."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mammocad.detect import Detections, Detector, ImagePrediction, read_manifest
from mammocad.fuse import Fuser, ViewFrame, breast_cases
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline
from mammocad.preprocess import PreprocessParams
from mammocad.report.schema import validation_errors
from mammocad.risk.apply import case_inputs, score_inputs, study_inputs
from mammocad.risk.bundle import LoadedRisk, load_risk
from mammocad.risk.calibration import load_calibration
from mammocad.risk.features import FEATURES, feature_row
from mammocad.risk.model import RiskModel, Tree
from mammocad.structures import Laterality, PreprocessedImage, Study, ViewPosition
from mammocad.synthetic import write_studies

DEPTH_MM = 30.0
SIZE_MM = 8.0


class OneMassDetector(Detector):
    """One mass per image, ``DEPTH_MM`` from the image's nipple towards the chest wall, so
    the CC and MLO masses of a breast sit at the same nipple distance; plus a weak candidate
    below the finding threshold. RoI features are fixed random vectors."""

    def _predict_one(self, item: PreprocessedImage) -> ImagePrediction:
        frame = ViewFrame.of(item)
        row_mm, col_mm = frame.spacing_mm
        toward_chest = 1.0 if item.chest_wall_on_right else -1.0
        x = frame.nipple[0] + toward_chest * DEPTH_MM / col_mm
        y = frame.nipple[1]
        half_w, half_h = SIZE_MM / 2 / col_mm, SIZE_MM / 2 / row_mm
        weak = [x - half_w, y + 8 * half_h, x + half_w, y + 10 * half_h]
        original = [[x - half_w, y - half_h, x + half_w, y + half_h], weak]
        boxes = torch.tensor(item.transform.boxes_to_input(original), dtype=torch.float32)
        found = Detections(
            boxes=boxes,
            labels=torch.tensor([0, 0]),  # mass
            scores=torch.tensor([0.9, 0.03]),
            malignancy=torch.tensor([0.6, 0.5]),
            nipple_box=torch.zeros((0, 4)),
            nipple_score=torch.zeros(0),
        )
        generator = torch.Generator().manual_seed(len(item.image.key))
        features = torch.rand((2, self.model.config.box_head_dim), generator=generator)
        return self._to_prediction(item, found, features)


def _pipeline(bundle: Path) -> Pipeline:
    manifest = read_manifest(bundle)
    detector = OneMassDetector.from_bundle(bundle, num_threads=1)
    return Pipeline(
        detector=detector,
        preprocessing=PreprocessParams.from_dict(manifest.preprocessing),
        fuser=Fuser.from_bundle(bundle, manifest),
        calibrator=load_calibration(bundle),
        risk=load_risk(bundle, manifest),
    )


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("studies"), seed=11, size="small"
    )
    return folder


def _study(folder: Path) -> Study:
    (decoded,) = list(iter_studies(folder))
    return decoded


def _findings_by_id(result: dict[str, object]) -> dict[str, dict[str, object]]:
    images = result["images"]
    assert isinstance(images, list)
    return {f["id"]: f for image in images for f in image["findings"]}


def test_fusion_links_refines_and_sets_the_breast_probability(
    fusion_bundle: Path, study_folder: Path
) -> None:
    pipeline = _pipeline(fusion_bundle)
    assert pipeline.detector.candidate_threshold == pytest.approx(0.02)
    analysis = pipeline.analyze(_study(study_folder))
    result = analysis.result
    assert validation_errors(result) == []
    findings = _findings_by_id(result)
    assert len(findings) == 4  # the weak candidates are not reported
    assert analysis.fusion is not None and len(analysis.fusion.links) == 2
    for cc_id, mlo_id in analysis.fusion.links:
        assert findings[cc_id]["linked_finding_ids"] == [mlo_id]
        assert findings[mlo_id]["linked_finding_ids"] == [cc_id]
    refined = {f["malignancy_probability"] for f in findings.values()}
    assert refined != {0.6}  # the module moved the detector's 0.6
    fused = analysis.fusion.breast_probabilities
    assert set(fused) == {Laterality.R, Laterality.L}
    assert result["model"]["risk"]["method"] == "cross_view_fusion"
    for breast in result["breasts"]:
        side = Laterality(breast["laterality"])
        assert breast["malignancy_probability"] == round(fused[side], 2)
        assert analysis.risk.breast(side).malignancy_probability == pytest.approx(fused[side])


def test_without_fusion_weights_links_but_keeps_todays_aggregate(
    tiny_bundle: Path, study_folder: Path
) -> None:
    pipeline = _pipeline(tiny_bundle)
    assert pipeline.fuser.fusion is None and pipeline.risk is None
    analysis = pipeline.analyze(_study(study_folder))
    result = analysis.result
    assert validation_errors(result) == []
    findings = _findings_by_id(result)
    assert {f["malignancy_probability"] for f in findings.values()} == {0.6}
    assert all(len(f["linked_finding_ids"]) == 1 for f in findings.values())
    assert analysis.fusion is not None and analysis.fusion.breast_probabilities == {}
    assert result["model"]["risk"]["method"] == "interim_noisy_or"
    expected = 1.0 - (1.0 - 0.9 * 0.6) ** 2  # noisy-OR of the two views' findings
    for breast in result["breasts"]:
        assert math.isclose(breast["malignancy_probability"], round(expected, 2))
    assert np.isclose(analysis.risk.malignancy_probability or 0.0, expected)


def test_risk_features_at_inference_equal_those_of_the_training_cache(
    tiny_bundle: Path, study_folder: Path
) -> None:
    """The risk model is trained on cached breast cases and applied to live studies: every
    feature, the two-view agreement of the candidates included, must come out the same."""
    pipeline = _pipeline(tiny_bundle)
    pipeline.detector.set_candidate_threshold(0.02)
    analysis = pipeline.analyze(_study(study_folder))
    predictions = analysis.predictions
    live = study_inputs(
        analysis.study,
        analysis.preprocessed,
        {key: prediction.findings for key, prediction in predictions.items()},
        analysis.fusion,
        {key: prediction.candidates for key, prediction in predictions.items()},
    )
    cases = breast_cases(analysis.study, analysis.preprocessed, predictions)
    assert [case.laterality for case in cases] == [Laterality.R, Laterality.L]
    for case in cases:
        cached = feature_row(case_inputs(case, fused_probability=None))
        assert cached == pytest.approx(feature_row(live[case.laterality]), nan_ok=True)
        # one mass at one nipple distance on both views: 0.9 · 0.6 on each
        assert cached[FEATURES.index("two_view_contribution")] == pytest.approx(0.54)


def test_risk_model_sets_calibrated_breast_and_study_probabilities(
    risk_bundle: Path, study_folder: Path
) -> None:
    pipeline = _pipeline(risk_bundle)
    assert pipeline.risk is not None and pipeline.fuser.fusion is not None
    assert pipeline.calibrator is not None and pipeline.calibrator.calibrated
    analysis = pipeline.analyze(_study(study_folder))
    result = analysis.result
    assert validation_errors(result) == []
    assert result["model"]["risk"]["method"] == "gradient_boosting"
    assert result["model"]["risk"]["calibrated"] is True
    inputs = study_inputs(analysis.study, analysis.preprocessed, {
        key: prediction.findings for key, prediction in analysis.predictions.items()
    }, analysis.fusion)  # fmt: skip
    assert inputs[Laterality.R].fused_probability is not None  # fusion feeds the features
    raw = score_inputs(pipeline.risk, inputs)
    expected = {side: pipeline.calibrator.apply_one(p) for side, p in raw.items()}
    for breast in result["breasts"]:
        side = Laterality(breast["laterality"])
        assert breast["malignancy_probability"] == round(expected[side] or 0.0, 2)
    study_probability = max(p or 0.0 for p in expected.values())
    assert result["malignancy_probability"] == round(study_probability, 2)
    assert result["suspicion"] == analysis.risk.thresholds.category(round(study_probability, 2))
    assert result["x_malignancy_probability_uncalibrated"] == pytest.approx(max(raw.values()))


def _step_risk(feature: str, at: float, section: dict[str, float]) -> LoadedRisk:
    """A risk model reading only ``feature``: raw 0.95 from ``at`` up, else 0.05; trained on
    the findings its ``section`` describes (``finding_score``, ``findings_per_image``)."""
    step = Tree(
        feature=(0, -1, -1),
        threshold=(at, 0.0, 0.0),
        missing_left=(True, False, False),
        left=(1, -1, -1),
        right=(2, -1, -1),
        is_leaf=(False, True, True),
        value=(0.0, -math.log(19.0), math.log(19.0)),
    )
    return LoadedRisk(
        model=RiskModel(features=(feature,), baseline=0.0, trees=(step,)), section=section
    )


@pytest.mark.parametrize(
    ("feature", "at", "section", "expected"),
    [
        # the 0.9 masses, linked CC to MLO, are the findings: one linked pair per breast
        ("n_linked_pairs", 0.5, {}, 0.95),
        ("n_linked_pairs", 0.5, {"finding_score": 0.5}, 0.95),  # from 0.5: the same pair
        ("n_linked_pairs", 0.5, {"finding_score": 0.95}, 0.05),  # from 0.95: no pair
        ("n_linked_pairs", 1.5, {}, 0.05),
        # from 0.02 the weak candidates, at one nipple distance in both views, link too
        ("n_linked_pairs", 1.5, {"finding_score": 0.02}, 0.95),
        ("n_findings", 3.0, {}, 0.05),  # two findings per breast
        ("n_findings", 3.0, {"finding_score": 0.02}, 0.95),  # the weak candidates too
        # trained with one finding per image (the most suspicious: the mass) from 0.02
        ("n_findings", 3.0, {"finding_score": 0.02, "findings_per_image": 1}, 0.05),
        ("n_findings", 1.5, {"finding_score": 0.02, "findings_per_image": 1}, 0.95),
    ],
)
def test_the_risk_model_reads_findings_from_the_score_it_was_trained_at(
    tiny_bundle: Path,
    study_folder: Path,
    feature: str,
    at: float,
    section: dict[str, float],
    expected: float,
) -> None:
    """A bundle may report findings from another score or under another cap than its risk
    model counted them with (docs/risk.md "Two thresholds"): the report keeps the bundle's
    findings and links, the risk model's inputs are the detections it was trained on."""
    pipeline = _pipeline(tiny_bundle)
    pipeline = Pipeline(
        detector=pipeline.detector,
        preprocessing=pipeline.preprocessing,
        risk=_step_risk(feature, at, section),
    )
    assert 0.03 < pipeline.detector.finding_threshold < 0.9
    analysis = pipeline.analyze(_study(study_folder))
    result = analysis.result
    assert validation_errors(result) == []
    findings = _findings_by_id(result)
    assert sorted(f["score"] for f in findings.values()) == [0.9] * 4  # reported as before
    assert all(len(f["linked_finding_ids"]) == 1 for f in findings.values())
    for breast in result["breasts"]:
        raw = analysis.risk.breast(Laterality(breast["laterality"])).malignancy_probability
        assert raw == pytest.approx(expected)


def test_with_fusion_weights_a_finding_on_another_view_still_counts_for_the_breast(
    fusion_bundle: Path, study_folder: Path
) -> None:
    """Fusion reads the CC- and MLO-like images only; a lesion on another view of the breast
    (a spot compression, an axillary tail view) must still raise the breast probability, as
    it does without fusion weights: the fused probability replaced the noisy-OR of every
    finding of the breast, so the extra view's finding was dropped."""
    pipeline = _pipeline(fusion_bundle)
    plain = pipeline.analyze(_study(study_folder))
    study = _study(study_folder)
    cc = next(i for i in study.images if i.laterality is Laterality.R and i.view is ViewPosition.CC)
    extra = replace(cc, sop_instance_uid=f"{cc.sop_instance_uid}.9", view=ViewPosition.SIO)
    extra.messages = []
    study.images.append(extra)
    analysis = pipeline.analyze(study)
    assert validation_errors(analysis.result) == []
    assert [f.id for f in analysis.findings(extra.key)]  # the extra view has its mass
    fused = plain.risk.breast(Laterality.R).malignancy_probability or 0.0
    spot = analysis.findings(extra.key)
    expected = 1.0 - (1.0 - fused) * math.prod(
        1.0 - f.score * f.malignancy_probability for f in spot
    )
    right = analysis.risk.breast(Laterality.R).malignancy_probability
    assert right == pytest.approx(expected)
    assert right > fused
    # the left breast, without an extra view, keeps its fused probability
    assert analysis.risk.breast(Laterality.L).malignancy_probability == pytest.approx(
        plain.risk.breast(Laterality.L).malignancy_probability
    )


def test_uncalibrated_fused_probabilities_are_not_called_a_noisy_or(
    fusion_bundle: Path, study_folder: Path
) -> None:
    """`train fusion` writes no calibration: the result says its probabilities are
    uncalibrated, and says what made them — the fusion module, not the noisy-OR."""
    result = _pipeline(fusion_bundle).analyze(_study(study_folder)).result
    assert result["model"]["risk"]["method"] == "cross_view_fusion"
    (message,) = [m for m in result["messages"] if m["code"] == "uncalibrated_probability"]
    assert "noisy-OR" not in message["text"]
    assert "fusion" in message["text"]
