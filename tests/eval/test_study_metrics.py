"""Study-level metrics on hand-computed cases (expected numbers worked out in the comments)."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mammocad.eval.calibration import (
    brier_score,
    ece_if_calibrated,
    evaluate_calibration,
    expected_calibration_error,
    plot_reliability,
    reliability_diagram,
)
from mammocad.eval.study_metrics import (
    cluster_bootstrap_indices,
    evaluate_study,
    evaluate_subgroups,
    metrics_at_threshold,
    operating_points,
    paired_auc_difference,
    roc_auc,
    roc_auc_with_ci,
    rounding_effect,
    threshold_for_sensitivity,
    threshold_for_specificity,
    wilson_interval,
)
from mammocad.eval.study_report import (
    calibration_test_summary,
    check_calibration_test_set,
    write_study_csv,
    write_study_markdown,
)

# 10 positives and 10 negatives that overlap, for the operating points
POS = [0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.3, 0.2]
NEG = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.65, 0.75]
SCORES = POS + NEG
LABELS = [1] * 10 + [0] * 10


def test_perfect_separation_has_auc_one_and_a_degenerate_interval() -> None:
    result = roc_auc_with_ci([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0, 0, 0, 1, 1, 1], n_bootstrap=50)
    assert result.auc == 1.0
    assert result.ci_low == result.ci_high == 1.0


def test_small_auc_by_hand() -> None:
    # positives 0.8, 0.4; negatives 0.6, 0.2, 0.5: 0.8 beats all 3, 0.4 beats only 0.2 → 4/6
    assert roc_auc([0.8, 0.4, 0.6, 0.2, 0.5], [1, 1, 0, 0, 0]) == pytest.approx(4 / 6)


def test_one_class_gives_nan_auc() -> None:
    assert math.isnan(roc_auc([0.2, 0.3], [0, 0]))
    assert math.isnan(roc_auc_with_ci([0.2, 0.3], [1, 1], n_bootstrap=10).auc)


def test_rounding_ties_lower_auc_by_a_computable_amount() -> None:
    # raw: pairs (pos, neg) = (.104,.101) 1, (.104,.3) 0, (.5,.101) 1, (.5,.3) 1 → 3/4;
    # rounded 0.10 vs 0.10 ties and counts 1/2 → 2.5/4; the loss is 1/8
    effect = rounding_effect([0.101, 0.3, 0.104, 0.5], [0, 0, 1, 1], decimals=2)
    assert effect.auc_raw == pytest.approx(0.75)
    assert effect.auc_rounded == pytest.approx(0.625)
    assert effect.loss == pytest.approx(0.125)


def test_cluster_bootstrap_keeps_each_patients_rows_together() -> None:
    ids = ["a", "a", "b", "c", "c", "c"]
    for rows in cluster_bootstrap_indices(ids, 30, seed=3):
        times = Counter(rows.tolist())
        assert times[0] == times[1]  # patient a
        assert times[3] == times[4] == times[5]  # patient c
        # three patients drawn: each brings all its rows
        assert len(rows) == 2 * times[0] + times[2] + 3 * times[3]
        assert times[0] + times[2] + times[3] == 3


def test_cluster_bootstrap_is_seedable() -> None:
    ids = list(range(20))
    first = [r.tolist() for r in cluster_bootstrap_indices(ids, 5, seed=7)]
    again = [r.tolist() for r in cluster_bootstrap_indices(ids, 5, seed=7)]
    other = [r.tolist() for r in cluster_bootstrap_indices(ids, 5, seed=8)]
    assert first == again
    assert first != other


def test_one_class_resamples_are_skipped_and_counted() -> None:
    # two patients, one all positive and one all negative: half the resamples hold one class
    result = roc_auc_with_ci(
        [0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], ["p", "p", "n", "n"], n_bootstrap=100, seed=0
    )
    assert result.auc == 1.0
    assert 0 < result.n_skipped < 100
    assert result.ci_low == result.ci_high == 1.0


def test_auc_interval_is_reproducible_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(0.5 + 0.2 * (labels - 0.5) + rng.normal(0, 0.2, 200), 0, 1)
    patients = np.arange(200) // 2
    a = roc_auc_with_ci(scores, labels, patients, n_bootstrap=200, seed=1)
    b = roc_auc_with_ci(scores, labels, patients, n_bootstrap=200, seed=1)
    assert a == b
    assert a.ci_low < a.auc < a.ci_high


def test_paired_difference_sees_a_gain_the_separate_intervals_hide() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    patients = np.arange(200) // 2
    base = np.clip(0.5 + 0.1 * (labels - 0.5) + rng.normal(0, 0.2, 200), 0, 1)
    better = np.clip(base + 0.08 * labels, 0, 1)  # the same scores, positives a little higher
    delta, low, high = paired_auc_difference(better, base, labels, patients, n_bootstrap=300)
    assert delta == pytest.approx(roc_auc(better, labels) - roc_auc(base, labels))
    assert 0 < low < delta < high
    # the two AUCs' own intervals overlap: only the paired interval shows the gain
    a = roc_auc_with_ci(better, labels, patients, n_bootstrap=300)
    b = roc_auc_with_ci(base, labels, patients, n_bootstrap=300)
    assert a.ci_low < b.ci_high
    assert paired_auc_difference(base, base, labels, patients, n_bootstrap=50) == (0.0, 0.0, 0.0)


def test_operating_points_on_a_hand_example() -> None:
    # sens ≥ 0.9 needs 9 of 10 positives: the 9th highest positive is 0.3;
    # at 0.3 the negatives below are 0.1, 0.15, 0.2, 0.25 → specificity 0.4
    assert threshold_for_sensitivity(SCORES, LABELS, 0.9) == 0.3
    # spec ≥ 0.9 needs 9 negatives below t: the 9th lowest is 0.65, the next score is 0.7;
    # at 0.7 the positives 0.9, 0.85, 0.8, 0.7 are called → sensitivity 0.4
    assert threshold_for_specificity(SCORES, LABELS, 0.9) == 0.7
    sens_point, spec_point = operating_points(SCORES, LABELS)
    assert (sens_point.metrics.sensitivity, sens_point.metrics.specificity) == (0.9, 0.4)
    assert (spec_point.metrics.sensitivity, spec_point.metrics.specificity) == (0.4, 0.9)


def test_specificity_threshold_above_every_score() -> None:
    # specificity 1 needs both negatives called negative, the top score is a negative
    t = threshold_for_specificity([0.1, 0.9, 0.5], [0, 0, 1], 1.0)
    assert t > 0.9
    assert metrics_at_threshold([0.1, 0.9, 0.5], [0, 0, 1], t).specificity == 1.0


def test_metrics_at_threshold_counts_and_wilson_interval() -> None:
    m = metrics_at_threshold(SCORES, LABELS, 0.5)
    # score ≥ 0.5: positives 0.9 … 0.5 (7), negatives 0.5, 0.65, 0.75 (3)
    assert (m.tp, m.fn, m.tn, m.fp) == (7, 3, 7, 3)
    assert m.sensitivity == pytest.approx(0.7)
    # Wilson 95% for 7/10 (z = 1.96): 0.3968 … 0.8922
    assert m.sensitivity_ci == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_ece_of_a_perfectly_calibrated_set_is_zero_and_of_a_shifted_one_the_shift() -> None:
    # 20 studies at each of 0.05, 0.15, …, 0.95 with exactly 20·p positives per value
    probs, labels = [], []
    for p in np.arange(0.05, 1.0, 0.1):
        k = round(20 * p)
        probs += [p] * 20
        labels += [1] * k + [0] * (20 - k)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    # +0.03 keeps every value in its bin, so every bin is off by exactly 0.03
    shifted = np.asarray(probs) + 0.03
    assert expected_calibration_error(shifted, labels) == pytest.approx(0.03)


def test_ece_by_chance_shrinks_with_the_set_and_flags_real_miscalibration() -> None:
    """Exactly calibrated probabilities on 100 studies show an ECE of several hundredths by
    chance alone; on 10 000 almost none. A set off by 0.1 lies far above its chance band."""
    rng = np.random.default_rng(5)
    small = rng.uniform(0.05, 0.6, 100)
    large = rng.uniform(0.05, 0.6, 10_000)
    mean_small, p95_small = ece_if_calibrated(small, n_resamples=400)
    mean_large, _ = ece_if_calibrated(large, n_resamples=100)
    assert 0.02 < mean_small < p95_small < 0.15
    assert mean_large < 0.01 < mean_small
    # seeded: the same draws twice
    assert ece_if_calibrated(small, n_resamples=400) == (mean_small, p95_small)
    labels = (rng.uniform(size=large.size) < large - 0.1).astype(int)
    report = evaluate_calibration(large, labels)
    assert report.ece > 0.09 > report.ece_if_calibrated_p95
    assert all(math.isnan(v) for v in ece_if_calibrated([]))


def test_ece_of_random_synthetic_sets() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.85, 20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(p, y) < 0.02
    assert expected_calibration_error(p + 0.1, y) == pytest.approx(0.1, abs=0.02)


def test_brier_and_reliability_diagram() -> None:
    assert brier_score([0.5, 0.5], [0, 1]) == 0.25
    assert brier_score([1.0, 0.0], [1, 0]) == 0.0
    diagram = reliability_diagram([0.0, 0.25, 1.0], [0, 1, 1], n_bins=4)
    assert diagram.counts.tolist() == [1, 1, 0, 1]  # 1.0 falls in the last bin
    assert np.isnan(diagram.mean_predicted[2])
    assert diagram.observed_rate[[0, 1, 3]].tolist() == [0.0, 1.0, 1.0]


def test_invalid_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="sigmoid"):
        brier_score([1.5], [1])
    with pytest.raises(ValueError, match="labels"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="2 probabilities for 1"):
        roc_auc([0.1, 0.2], [0])


def test_evaluate_study_and_subgroups() -> None:
    groups = ["A"] * 5 + ["B"] * 5 + ["A"] * 5 + ["B"] * 5
    study = evaluate_study(SCORES, LABELS, thresholds=[0.5], n_bootstrap=50)
    assert (study.n, study.n_positive, study.share_positive) == (20, 10, 0.5)
    assert study.suspicion_thresholds() == {"sensitivity@0.9": 0.3, "specificity@0.9": 0.7}
    subgroups = evaluate_subgroups(SCORES, LABELS, groups, n_bootstrap=50)
    assert list(subgroups) == ["A", "B"]
    assert subgroups["A"].n == subgroups["B"].n == 10
    only_negative = evaluate_subgroups([0.1, 0.2, 0.9], [0, 0, 1], ["x", "x", "y"])
    assert math.isnan(only_negative["x"].auc.auc)
    assert math.isnan(only_negative["x"].operating_points[0].threshold)


def _moscow_set(n: int, n_positive: int) -> tuple[list[float], list[int], list[bool]]:
    labels = [1] * n_positive + [0] * (n - n_positive)
    scores = [0.8 if y else 0.2 for y in labels]
    defects = [i < n // 20 for i in range(n)]  # 5% technical defects
    return scores, labels, defects


@pytest.mark.parametrize(
    ("n", "n_positive", "passed"), [(400, 40, True), (399, 40, False), (400, 39, False)]
)
def test_calibration_test_check(n: int, n_positive: int, passed: bool) -> None:
    scores, labels, defects = _moscow_set(n, n_positive)
    summary = calibration_test_summary(scores, labels, defects, threshold=0.5, n_bootstrap=20)
    assert summary.n_studies == n
    assert summary.share_technical_defects == pytest.approx(0.05, abs=0.003)
    assert summary.at_threshold.sensitivity == summary.at_threshold.specificity == 1.0
    check = check_calibration_test_set(summary)
    assert check.passed is passed
    assert len(check.problems) == (0 if passed else 1)


def test_writers(tmp_path: Path) -> None:
    study = evaluate_study(SCORES, LABELS, thresholds=[0.5], n_bootstrap=30)
    subgroups = evaluate_subgroups(SCORES, LABELS, ["A", "B"] * 10, n_bootstrap=30)
    summary = calibration_test_summary(SCORES, LABELS, [False] * 20, threshold=0.5)
    csv_path = write_study_csv(study, tmp_path / "out" / "study.csv", subgroups=subgroups)
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    sens = [r for r in rows if r["group"] == "all" and r["metric"] == "sensitivity@0.5"]
    assert sens[0]["value"] == "0.7000"
    assert {r["group"] for r in rows} == {"all", "A", "B"}
    md = write_study_markdown(
        study, tmp_path / "study.md", subgroups=subgroups, calibration_test=summary
    ).read_text()
    assert "## Subgroups" in md
    assert "| set qualifies | no: 20 studies" in md
    png = plot_reliability(evaluate_calibration(SCORES, LABELS), tmp_path / "rel.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
