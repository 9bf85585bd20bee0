"""Two-view agreement: the strongest lesion both views of a breast show at one place."""

from __future__ import annotations

import math

import pytest

from mammocad.fuse import PlacedFinding
from mammocad.fuse.agreement import two_view_contribution
from mammocad.structures import Finding, FindingLabel, ViewPosition


def placed(
    view: ViewPosition,
    score: float,
    malignancy: float,
    distance_mm: float,
    label: FindingLabel = FindingLabel.MASS,
    size_mm: float = 10.0,
) -> PlacedFinding:
    finding = Finding(
        id=f"{view.value}-{score}-{distance_mm}",
        sop_instance_uid=view.value,
        label=label,
        score=score,
        malignancy_probability=malignancy,
        box=(0.0, 0.0, 10.0, 10.0),
    )
    return PlacedFinding(
        finding=finding, view=view, nipple_distance_mm=distance_mm, size_mm=size_mm
    )


CC, MLO = ViewPosition.CC, ViewPosition.MLO


def test_a_lesion_at_one_nipple_distance_in_both_views_counts_as_their_geometric_mean() -> None:
    cc = [placed(CC, 0.8, 0.9, 50.0)]
    mlo = [placed(MLO, 0.4, 0.5, 55.0)]
    assert two_view_contribution(cc, mlo) == pytest.approx(math.sqrt(0.72 * 0.2))


def test_boxes_that_cannot_be_one_lesion_give_nothing() -> None:
    strong_cc = [placed(CC, 0.9, 0.9, 30.0)]
    # 40 mm deeper on the other view: beyond the 25 mm gate of the linking rule
    assert two_view_contribution(strong_cc, [placed(MLO, 0.9, 0.9, 70.0)]) == 0.0
    # a lymph node is never the same lesion as a mass
    node = [placed(MLO, 0.9, 0.9, 30.0, FindingLabel.LYMPH_NODE)]
    assert two_view_contribution(strong_cc, node) == 0.0
    # one view without candidates: no agreement to measure
    assert two_view_contribution(strong_cc, []) == two_view_contribution([], node) == 0.0


def test_the_best_matching_pair_wins_not_the_two_strongest_boxes() -> None:
    cc = [placed(CC, 0.9, 0.9, 20.0), placed(CC, 0.3, 0.8, 60.0)]
    mlo = [placed(MLO, 0.9, 0.9, 90.0), placed(MLO, 0.5, 0.6, 62.0)]
    # the strongest boxes of each view lie 70 mm apart; the pair at 60/62 mm is the lesion
    assert two_view_contribution(cc, mlo) == pytest.approx(math.sqrt(0.24 * 0.3))


def test_more_candidates_never_lower_it() -> None:
    """The risk model is monotone in this feature, which only makes sense if extra evidence
    cannot reduce it."""
    cc = [placed(CC, 0.5, 0.5, 40.0)]
    mlo = [placed(MLO, 0.5, 0.5, 45.0)]
    before = two_view_contribution(cc, mlo)
    cc.append(placed(CC, 0.1, 0.2, 44.0))
    mlo.append(placed(MLO, 0.9, 0.1, 200.0))
    assert two_view_contribution(cc, mlo) == pytest.approx(before)
    cc.append(placed(CC, 0.9, 0.9, 46.0))
    assert two_view_contribution(cc, mlo) > before
