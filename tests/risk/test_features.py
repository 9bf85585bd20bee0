"""Risk-model features from hand-built findings, at inference and from cached cases."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mammocad.fuse import BreastCase, FusionResult, PlacedFinding
from mammocad.risk.apply import case_inputs, study_inputs
from mammocad.risk.features import FEATURES, BreastInputs, feature_matrix, feature_row
from mammocad.structures import Finding, FindingLabel, Image, Laterality, Study, ViewPosition


def finding(
    name: str, key: str, score: float, malignancy: float, label: FindingLabel = FindingLabel.MASS
) -> Finding:
    return Finding(
        id=name,
        sop_instance_uid=key,
        label=label,
        score=score,
        malignancy_probability=malignancy,
        box=(10.0, 10.0, 20.0, 20.0),
    )


def named(row: list[float]) -> dict[str, float]:
    return dict(zip(FEATURES, row, strict=True))


def test_features_by_hand() -> None:
    inputs = BreastInputs(
        findings=(
            finding("a", "cc", 0.8, 0.5),
            finding("b", "mlo", 0.4, 0.9, FindingLabel.CALCIFICATION),
        ),
        n_linked_pairs=1,
        views=(ViewPosition.CC, ViewPosition.MLO),
        quality=(0.9, 0.5),
    )
    row = named(feature_row(inputs))
    assert row["n_findings"] == 2
    assert row["max_contribution"] == pytest.approx(0.4)
    assert row["sum_contribution"] == pytest.approx(0.4 + 0.36)
    assert row["max_malignancy"] == pytest.approx(0.9)
    assert row["max_score"] == pytest.approx(0.8)
    # no fusion: the noisy-OR stands in
    assert row["breast_probability"] == pytest.approx(1 - 0.6 * 0.64)
    assert row["n_linked_pairs"] == 1 and row["both_views"] == 1
    assert row["min_quality"] == pytest.approx(0.5)
    assert row["mean_quality"] == pytest.approx(0.7)
    assert row["max_score_mass"] == pytest.approx(0.8)
    assert row["max_score_calcification"] == pytest.approx(0.4)
    assert row["max_score_architectural_distortion"] == 0
    assert row["max_score_asymmetry"] == 0


def test_empty_breast_with_fusion_and_unknown_quality() -> None:
    row = named(feature_row(BreastInputs(findings=(), fused_probability=0.3)))
    assert row["breast_probability"] == pytest.approx(0.3)
    assert row["n_findings"] == row["max_score"] == row["both_views"] == 0
    assert math.isnan(row["min_quality"]) and math.isnan(row["mean_quality"])
    assert feature_matrix([]).shape == (0, len(FEATURES))


def _image(key: str, side: Laterality | None, view: ViewPosition) -> Image:
    return Image(
        source=f"{key}.dcm", sop_instance_uid=key, laterality=side, view=view, rows=64, columns=48
    )


def test_study_inputs_split_breasts_links_fusion_and_quality() -> None:
    study = Study(
        study_instance_uid="1.2.3",
        images=[
            _image("rcc", Laterality.R, ViewPosition.CC),
            _image("rmlo", Laterality.R, ViewPosition.MLO),
            _image("lcc", Laterality.L, ViewPosition.CC),
            _image("x", None, ViewPosition.CC),
        ],
    )
    findings = {
        "rcc": [finding("r1", "rcc", 0.9, 0.6)],
        "rmlo": [finding("r2", "rmlo", 0.7, 0.6)],
        "lcc": [],
        "x": [finding("x1", "x", 0.5, 0.5)],
    }
    quality = {"rcc": 0.9, "rmlo": 0.7, "lcc": 0.4, "x": 0.8}
    # every view's nipple at the same place: the boxes of r1 and r2 lie at one nipple distance
    preprocessed = {
        k: SimpleNamespace(
            quality=SimpleNamespace(score=q),
            image=SimpleNamespace(pixel_spacing_mm=(0.1, 0.1), spacing_or_assumed_mm=(0.1, 0.1)),
            nipple=(0.0, 15.0),
        )
        for k, q in quality.items()
    }
    fusion = FusionResult(links=[("r1", "r2")], breast_probabilities={Laterality.R: 0.42})
    inputs = study_inputs(study, cast(Any, preprocessed), findings, fusion)
    assert list(inputs) == [Laterality.R, Laterality.L, None]
    right, left, sideless = (named(feature_row(v)) for v in inputs.values())
    assert right["breast_probability"] == pytest.approx(0.42)
    assert right["n_linked_pairs"] == 1 and right["both_views"] == 1
    assert right["min_quality"] == pytest.approx(0.7)
    assert right["two_view_contribution"] == pytest.approx(math.sqrt(0.9 * 0.6 * 0.7 * 0.6))
    assert left["two_view_contribution"] == sideless["two_view_contribution"] == 0.0
    assert left["n_findings"] == 0 and left["both_views"] == 0 and left["n_linked_pairs"] == 0
    assert left["breast_probability"] == 0.0  # noisy-OR of nothing: fusion did not cover it
    assert sideless["breast_probability"] == pytest.approx(0.25)


def test_an_extra_view_does_not_lower_the_breasts_quality_features() -> None:
    # a spot or magnification view (view OTHER) beside the CC and MLO: the gate warns it
    # unexpected_view, and its lower score must not pull the breast's quality features (the
    # risk model learned them from CC and MLO images only) and with them its probability
    images = [
        _image("rcc", Laterality.R, ViewPosition.CC),
        _image("rmlo", Laterality.R, ViewPosition.MLO),
    ]
    quality = {"rcc": 0.9, "rmlo": 0.7, "spot": 0.5}
    preprocessed = {
        key: SimpleNamespace(
            quality=SimpleNamespace(score=score),
            image=SimpleNamespace(pixel_spacing_mm=(0.1, 0.1), spacing_or_assumed_mm=(0.1, 0.1)),
            nipple=None,
        )
        for key, score in quality.items()
    }
    findings: dict[str, list[Finding]] = {"rcc": [], "rmlo": [], "spot": []}
    plain = Study(study_instance_uid="1.2.3", images=images)
    extra = Study(
        study_instance_uid="1.2.3",
        images=[*images, _image("spot", Laterality.R, ViewPosition.OTHER)],
    )
    rows = [
        named(feature_row(study_inputs(study, cast(Any, preprocessed), findings)[Laterality.R]))
        for study in (plain, extra)
    ]
    assert rows[1]["min_quality"] == rows[0]["min_quality"] == pytest.approx(0.7)
    assert rows[1]["mean_quality"] == rows[0]["mean_quality"] == pytest.approx(0.8)
    # a breast with nothing but such views keeps their scores
    alone = Study(
        study_instance_uid="1.2.3", images=[_image("spot", Laterality.L, ViewPosition.OTHER)]
    )
    left = study_inputs(alone, cast(Any, preprocessed), {"spot": []})[Laterality.L]
    assert named(feature_row(left))["min_quality"] == pytest.approx(0.5)


def test_a_repeated_view_does_not_count_its_links_twice() -> None:
    # a technical repeat of the right CC shows the same lesion: linked per pair of images it
    # is linked to the MLO's lesion twice, and the breast must not count two linked pairs
    study = Study(
        study_instance_uid="1.2.3",
        images=[
            _image("rcc", Laterality.R, ViewPosition.CC),
            _image("rcc2", Laterality.R, ViewPosition.CC),
            _image("rmlo", Laterality.R, ViewPosition.MLO),
        ],
    )
    findings = {
        "rcc": [finding("a", "rcc", 0.9, 0.6)],
        "rcc2": [finding("a2", "rcc2", 0.9, 0.6)],
        "rmlo": [finding("b", "rmlo", 0.7, 0.6), finding("c", "rmlo", 0.6, 0.5)],
    }
    once = FusionResult(links=[("a", "b")], breast_probabilities={})
    twice = FusionResult(links=[("a", "b"), ("a2", "b")], breast_probabilities={})
    counts = [
        named(feature_row(study_inputs(study, {}, findings, fusion)[Laterality.R]))[
            "n_linked_pairs"
        ]
        for fusion in (once, twice)
    ]
    assert counts == [1, 1]


def _placed(name: str, view: ViewPosition, score: float, reported: bool) -> PlacedFinding:
    return PlacedFinding(
        finding=finding(name, view.value, score, 0.5),
        view=view,
        nipple_distance_mm=40.0,
        size_mm=10.0,
        features=None,
        reported=reported,
    )


def test_case_inputs_use_reported_findings_and_infer_views_of_old_caches() -> None:
    case = BreastCase(
        study_instance_uid="1",
        patient_id="p",
        laterality=Laterality.L,
        findings=(
            _placed("cc", ViewPosition.CC, 0.9, True),
            _placed("mlo", ViewPosition.MLO, 0.02, False),  # a candidate: not a feature
        ),
        label=1,
    )
    row = named(feature_row(case_inputs(case, fused_probability=None)))
    assert row["n_findings"] == 1 and row["max_score"] == pytest.approx(0.9)
    assert row["both_views"] == 1  # inferred from the candidate's view
    assert math.isnan(row["min_quality"])
    # every cached finding, reported or not, is a candidate (the candidate features)
    assert len(case_inputs(case, fused_probability=None).candidates) == 2


def test_candidates_below_the_finding_threshold_feed_only_the_candidate_features() -> None:
    """A malignant-looking box the detector scores below the finding threshold is no finding,
    but it is the strongest single sign of cancer the risk model gets (docs/risk.md)."""
    reported = finding("a", "cc", 0.6, 0.2)
    below = finding("b", "cc", 0.1, 0.95)
    without = named(feature_row(BreastInputs(findings=(reported,))))
    assert without["max_candidate_contribution"] == pytest.approx(0.12)
    assert without["candidate_probability"] == pytest.approx(without["breast_probability"])
    row = named(feature_row(BreastInputs(findings=(reported,), candidates=(reported, below))))
    assert row["n_findings"] == 1 and row["max_contribution"] == pytest.approx(0.12)
    assert row["max_candidate_contribution"] == pytest.approx(0.12)  # 0.1 · 0.95 < 0.6 · 0.2
    assert row["candidate_probability"] == pytest.approx(1 - 0.88 * 0.905)
    strong = finding("c", "mlo", 0.3, 0.9)
    row = named(feature_row(BreastInputs(findings=(reported,), candidates=(reported, strong))))
    assert row["max_candidate_contribution"] == pytest.approx(0.27)

    # at inference: per image key, the candidates where the detector returned them
    study = Study(
        study_instance_uid="1",
        images=[_image("cc", Laterality.L, ViewPosition.CC)],
    )
    inputs = study_inputs(study, {}, {"cc": [reported]}, None, {"cc": [reported, strong]})
    assert named(feature_row(inputs[Laterality.L]))["max_candidate_contribution"] == (
        pytest.approx(0.27)
    )


def test_the_leading_candidate_is_shown_only_unreported_and_behind_a_raised_breast() -> None:
    from mammocad.risk.aggregate import BreastRisk, StudyRisk, SuspicionThresholds
    from mammocad.risk.apply import unreported_leading_candidates
    from mammocad.risk.features import leading_candidate

    reported = finding("r", "cc", 0.6, 0.2)  # contribution 0.12
    below = finding("b", "mlo", 0.2, 0.9)  # 0.18: leads
    both = BreastInputs(findings=(reported,), candidates=(reported, below))
    assert leading_candidate(both) is below
    assert leading_candidate(BreastInputs(findings=(reported,))) is reported
    assert leading_candidate(BreastInputs(findings=())) is None

    def shown(right: float, left: float, left_inputs: BreastInputs) -> dict[Laterality, Finding]:
        risk = StudyRisk(
            breasts=(
                BreastRisk(laterality=Laterality.R, malignancy_probability=right),
                BreastRisk(laterality=Laterality.L, malignancy_probability=left),
            ),
            malignancy_probability=max(right, left),
            suspicion=None,
            thresholds=SuspicionThresholds(intermediate=0.1, high=0.4),
        )
        inputs = {
            Laterality.R: BreastInputs(findings=(reported,), candidates=(reported, below)),
            Laterality.L: left_inputs,
        }
        findings = {"r": inputs[Laterality.R].findings, "l": left_inputs.findings}
        return unreported_leading_candidates(inputs, risk, findings)  # type: ignore[arg-type]

    strong = finding("s", "cc", 0.9, 0.9)
    led_by_finding = BreastInputs(findings=(strong,), candidates=(strong, below))
    # intermediate (0.1 after rounding 0.095) and high breasts: the right one's box is shown,
    # the left one's leading box is a reported finding already
    assert shown(0.095, 0.9, led_by_finding) == {Laterality.R: below}
    assert shown(0.5, 0.9, led_by_finding) == {Laterality.R: below}
    # low breasts show nothing
    assert shown(0.05, 0.02, BreastInputs(findings=(), candidates=(below,))) == {}
