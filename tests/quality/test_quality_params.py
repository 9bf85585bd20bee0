"""``QualityParams`` round-trips through JSON and refuses what it cannot mean."""

from __future__ import annotations

import json

import pytest

from mammocad.quality import QualityParams


def test_round_trip_through_json():
    params = QualityParams(min_smear_along=0.7, expected_views=("CC", "MLO", "ML"))
    again = QualityParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again == params
    assert QualityParams.from_dict(QualityParams().to_dict()) == QualityParams()


def test_unknown_or_missing_keys_are_errors():
    data = QualityParams().to_dict()
    with pytest.raises(ValueError, match="unknown"):
        QualityParams.from_dict({**data, "extra": 1})
    data.pop("min_spread")
    with pytest.raises(ValueError, match="missing"):
        QualityParams.from_dict(data)
    with pytest.raises(ValueError, match="mapping"):
        QualityParams.from_dict([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [{"min_spread": 1.5}, {"work_spacing_mm": 0.0}, {"min_smear_across": -2.0}]
)
def test_out_of_range_values_are_errors(bad):
    with pytest.raises(ValueError):
        QualityParams(**bad)


def test_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        QualityParams(0.4)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        QualityParams().min_spread = 0.5  # type: ignore[misc]
