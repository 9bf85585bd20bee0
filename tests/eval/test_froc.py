"""FROC on hand-computed cases (every expected number worked out on paper in the comments)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mammocad.eval import (
    ANY_LESION,
    MALIGNANT,
    ImagePredictions,
    ImageTruth,
    evaluate_froc,
    hit_matrix,
    plot_froc,
    write_froc_csv,
)

T1 = [0.0, 0.0, 10.0, 10.0]
T2 = [100.0, 100.0, 120.0, 120.0]


def pred(boxes: list[list[float]], scores: list[float], labels: list[str], malignancy=None):
    return ImagePredictions(boxes=boxes, scores=scores, labels=labels, malignancy=malignancy)


def test_hit_rule_iou_threshold_and_centre_inside() -> None:
    truth = [T1]
    # [0,0,10,10] vs [0,0,10,30]: IoU = 100/300 = 0.333 ≥ 0.3, centre (5,15) outside → hit
    # [0,0,10,10] vs [0,0,10,40]: IoU = 0.25, centre (5,20) outside → miss
    # [8,8,40,40]: IoU = 4/(100+1024-4) ≈ 0.004 but... centre (24,24) outside → miss
    # [4,4,30,30]: IoU = 36/(100+676-36) ≈ 0.05, centre (17,17) outside → miss
    # [-20,-20,24,24]: IoU = 100/1936 ≈ 0.05, centre (2,2) inside → hit
    # [10,0,20,10]: touches the edge only, centre (15,5) outside → miss
    boxes = [
        [0, 0, 10, 30],
        [0, 0, 10, 40],
        [8, 8, 40, 40],
        [4, 4, 30, 30],
        [-20, -20, 24, 24],
        [10, 0, 20, 10],
    ]
    assert hit_matrix(boxes, truth)[:, 0].tolist() == [True, False, False, False, True, False]


def test_hit_matrix_handles_empty_inputs() -> None:
    assert hit_matrix(np.zeros((0, 4)), [T1]).shape == (0, 1)
    assert hit_matrix([T1], np.zeros((0, 4))).shape == (1, 0)


def two_image_case() -> tuple[list[ImagePredictions], list[ImageTruth]]:
    """Image A: truth T1; p1 hits T1 (0.9), p2 is a FP (0.8), p3 is a duplicate on T1 (0.7).
    Image B: truth T2; p4 is a FP (0.95), p5 hits T2 (0.6)."""
    a = pred([[1, 1, 9, 9], [50, 50, 60, 60], [0, 0, 11, 11]], [0.9, 0.8, 0.7], ["mass"] * 3)
    b = pred([[200, 200, 210, 210], [101, 101, 119, 119]], [0.95, 0.6], ["mass"] * 2)
    truths = [
        ImageTruth(boxes=[T1], labels=["mass"], malignant=[1]),
        ImageTruth(boxes=[T2], labels=["mass"], malignant=[0]),
    ]
    return [a, b], truths


def test_froc_two_images_by_hand() -> None:
    predictions, truths = two_image_case()
    report = evaluate_froc(predictions, truths, classes=["mass", "calcification"])
    mass = report.curves["mass"]
    # thresholds 0.95 → (FP 1/2, sens 0); 0.9 → (0.5, 0.5); 0.8 → (1.0, 0.5);
    # 0.6 → (1.0, 1.0). p3 (0.7) is a duplicate on a found lesion: neither a FP nor a new
    # detection, so it adds no point to the curve
    assert mass.fp_per_image.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert mass.sensitivity.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert mass.sensitivity_at.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    assert mass.n_truths == 2 and mass.n_images == 2
    assert mass.mean_sensitivity == pytest.approx(3.5 / 6)
    assert "calcification" not in report.curves  # no calcification truth: undefined, left out
    np.testing.assert_array_equal(report.curves[ANY_LESION].sensitivity_at, mass.sensitivity_at)
    # the end of the curve: every candidate kept
    assert report.all_candidates()["mass"] == {"sensitivity": 1.0, "fp_per_image": 1.0}


def test_malignant_curve_ranks_by_score_times_malignancy() -> None:
    """Truths: T1 malignant, T2 benign, T3 unknown. Predictions (score, malignancy):
    on T1 (0.5, 0.9) → 0.45; on T2 (0.9, 0.6) → 0.54, a FP (benign); on T3 (0.99, 0.99) →
    ignored; elsewhere (0.8, 0.5) → 0.40, a FP."""
    t3 = [300.0, 300.0, 320.0, 320.0]
    predictions = [
        pred(
            [[1, 1, 9, 9], [101, 101, 119, 119], [301, 301, 319, 319], [50, 50, 60, 60]],
            [0.5, 0.9, 0.99, 0.8],
            ["mass"] * 4,
            malignancy=[0.9, 0.6, 0.99, 0.5],
        )
    ]
    truths = [ImageTruth(boxes=[T1, T2, t3], labels=["mass"] * 3, malignant=[1, 0, -1])]
    curve = evaluate_froc(predictions, truths, classes=["mass"]).curves[MALIGNANT]
    # 0.54 → (1 FP, sens 0); 0.45 → (1, 1.0); 0.40 → (2, 1.0)
    assert curve.n_truths == 1
    assert curve.fp_per_image.tolist() == [0.0, 1.0, 1.0, 2.0]
    assert curve.sensitivity.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert curve.sensitivity_at.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_class_curves_count_other_classes_as_false_positives() -> None:
    # a calcification box on the mass: a FP for calcifications, no hit for masses
    predictions = [pred([[1, 1, 9, 9]], [0.9], ["calcification"])]
    truths = [ImageTruth(boxes=[T1, T2], labels=["mass", "calcification"])]
    report = evaluate_froc(predictions, truths, classes=["mass", "calcification"])
    assert report.curves["mass"].sensitivity.max() == 0.0
    calc = report.curves["calcification"]
    assert calc.fp_per_image.tolist() == [0.0, 1.0] and calc.sensitivity.max() == 0.0
    # the any-lesion curve forgives the label: the box is on a lesion
    assert report.curves[ANY_LESION].sensitivity.tolist() == [0.0, 0.5]
    assert report.curves[ANY_LESION].fp_per_image.tolist() == [0.0, 0.0]


def test_unannotated_class_is_neither_counted_nor_penalised() -> None:
    # image 2's source does not annotate calcifications: its calcification prediction may be a
    # real, unmarked lesion, so it is dropped; the image leaves the calcification curve
    predictions = [
        pred([[101, 101, 119, 119]], [0.9], ["calcification"]),
        pred([[50, 50, 60, 60], [1, 1, 9, 9]], [0.8, 0.7], ["calcification", "mass"]),
    ]
    truths = [
        ImageTruth(boxes=[T2], labels=["calcification"]),
        ImageTruth(boxes=[T1], labels=["mass"], annotated={"mass"}),
    ]
    report = evaluate_froc(predictions, truths, classes=["mass", "calcification"])
    calc = report.curves["calcification"]
    assert calc.n_images == 1 and calc.fp_per_image.tolist() == [0.0, 0.0]
    lesions = report.curves[ANY_LESION]
    assert lesions.fp_per_image.max() == 0.0 and lesions.sensitivity.max() == 1.0


def test_lesion_free_images_count_in_the_denominator() -> None:
    predictions, truths = two_image_case()
    predictions.append(pred([[5, 5, 6, 6]], [0.99], ["mass"]))
    truths.append(ImageTruth(boxes=np.zeros((0, 4)), labels=[]))
    mass = evaluate_froc(predictions, truths, classes=["mass"]).curves["mass"]
    assert mass.n_images == 3
    # the new FP tops the ranking: 1/3 FP per image before anything is found
    assert mass.fp_per_image[1] == pytest.approx(1 / 3) and mass.sensitivity[1] == 0.0


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    predictions, truths = two_image_case()
    first = evaluate_froc(predictions, truths, classes=["mass"], bootstrap=200, seed=3)
    again = evaluate_froc(predictions, truths, classes=["mass"], bootstrap=200, seed=3)
    mass, repeat = first.curves["mass"], again.curves["mass"]
    np.testing.assert_array_equal(mass.ci_low, repeat.ci_low)
    assert np.all(mass.ci_low <= mass.sensitivity_at + 1e-12)
    assert np.all(mass.sensitivity_at <= mass.ci_high + 1e-12)
    # at 0.5 FP/image: resampling A twice gives 1.0, B twice gives 0.0 → the CI has width
    assert mass.ci_low[2] < mass.ci_high[2]


def test_bootstrap_of_identical_images_has_no_width() -> None:
    predictions = [pred([[1, 1, 9, 9]], [0.9], ["mass"])] * 5
    truths = [ImageTruth(boxes=[T1], labels=["mass"])] * 5
    mass = evaluate_froc(predictions, truths, classes=["mass"], bootstrap=50).curves["mass"]
    np.testing.assert_array_equal(mass.ci_low, mass.ci_high)
    np.testing.assert_array_equal(mass.ci_low, mass.sensitivity_at)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="prediction sets"):
        evaluate_froc([], [ImageTruth(boxes=[T1], labels=["mass"])], classes=["mass"])
    with pytest.raises(ValueError, match="differ in length"):
        evaluate_froc(
            [pred([T1], [0.5, 0.6], ["mass"])],
            [ImageTruth(boxes=[T1], labels=["mass"])],
            classes=["mass"],
        )


def test_csv_plot_and_metrics(tmp_path: Path) -> None:
    predictions, truths = two_image_case()
    report = evaluate_froc(predictions, truths, classes=["mass"], bootstrap=20)
    rows = list(csv.DictReader(write_froc_csv(report, tmp_path / "froc.csv").open()))
    assert len(rows) == 6 * len(report.curves)
    first = next(r for r in rows if r["curve"] == "mass" and r["fp_per_image"] == "0.5")
    assert float(first["sensitivity"]) == 0.5 and first["n_truths"] == "2"
    assert float(first["ci_low"]) <= 0.5 <= float(first["ci_high"])
    png = plot_froc(report, tmp_path / "plots" / "froc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = report.to_metrics()
    assert metrics["froc/mass/sens@1fp"]["value"] == 1.0
    assert set(metrics["froc/malignant/sens@0.25fp"]) == {"value", "ci_low", "ci_high"}
