"""Geometric linking on hand-built findings: nipple distance decides, one-to-one, both ways."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.fuse import LinkParams, PlacedFinding, ViewFrame, link_breast, link_pairs, pair_cost
from mammocad.structures import Finding, FindingLabel, ViewPosition


def _placed(
    name: str,
    view: ViewPosition,
    distance_mm: float,
    *,
    size_mm: float = 10.0,
    label: FindingLabel = FindingLabel.MASS,
    features: list[float] | None = None,
) -> PlacedFinding:
    finding = Finding(
        id=name,
        sop_instance_uid=view.value,
        label=label,
        score=0.9,
        malignancy_probability=0.5,
        box=(0.0, 0.0, 1.0, 1.0),
    )
    return PlacedFinding(
        finding=finding,
        view=view,
        nipple_distance_mm=distance_mm,
        size_mm=size_mm,
        features=None if features is None else np.asarray(features, np.float32),
    )


CC, MLO = ViewPosition.CC, ViewPosition.MLO


def test_matching_nipple_distances_link_both_ways_and_a_far_one_does_not() -> None:
    cc = [_placed("cc-1", CC, 42.0), _placed("cc-far", CC, 110.0)]
    mlo = [_placed("mlo-1", MLO, 47.0)]
    assert link_breast(cc, mlo) == [("cc-1", "mlo-1")]
    assert cc[0].finding.linked_finding_ids == ["mlo-1"]
    assert mlo[0].finding.linked_finding_ids == ["cc-1"]
    assert cc[1].finding.linked_finding_ids == []


def test_assignment_is_one_to_one_and_prefers_the_closer_distance() -> None:
    cc = [_placed("a", CC, 40.0), _placed("b", CC, 60.0)]
    mlo = [_placed("x", MLO, 58.0), _placed("y", MLO, 43.0), _placed("z", MLO, 45.0)]
    pairs = link_pairs(cc, mlo)
    assert [(cc[r].finding.id, mlo[c].finding.id) for r, c, _ in pairs] == [("a", "y"), ("b", "x")]
    link_breast(cc, mlo)
    assert mlo[2].finding.linked_finding_ids == []  # z lost to y: one partner each


def test_distance_gate_size_class_and_appearance_terms() -> None:
    params = LinkParams()
    base = pair_cost(_placed("a", CC, 50.0), _placed("b", MLO, 50.0), params)
    assert base == 0.0
    beyond_gate = _placed("b", MLO, 50.0 + params.max_distance_difference_mm + 1)
    assert pair_cost(_placed("a", CC, 50.0), beyond_gate, params) == float("inf")
    doubled = pair_cost(_placed("a", CC, 50.0), _placed("b", MLO, 50.0, size_mm=20.0), params)
    assert doubled == pytest.approx(params.size_weight)
    node = _placed("n", MLO, 50.0, label=FindingLabel.LYMPH_NODE)
    assert pair_cost(_placed("a", CC, 50.0), node, params) == float("inf")
    opposite = pair_cost(
        _placed("a", CC, 50.0, features=[1.0, 0.0]),
        _placed("b", MLO, 50.0, features=[-1.0, 0.0]),
        params,
    )
    assert opposite == pytest.approx(params.appearance_weight)


def test_nothing_to_link_in_a_single_view() -> None:
    assert link_breast([_placed("a", CC, 40.0)], []) == []
    assert link_breast([], [_placed("x", MLO, 40.0)]) == []


def test_view_frame_uses_pixel_spacing_and_falls_back_to_the_anterior_edge() -> None:
    frame = ViewFrame(nipple=(100.0, 200.0), spacing_mm=(0.1, 0.1), nipple_source="landmark")
    # box centre 300 px right and 400 px below the nipple: 500 px = 50 mm
    assert frame.nipple_distance_mm((390.0, 590.0, 410.0, 610.0)) == pytest.approx(50.0)
    assert frame.size_mm((0.0, 0.0, 100.0, 100.0)) == pytest.approx(10.0)
