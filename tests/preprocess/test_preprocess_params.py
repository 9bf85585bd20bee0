"""Parameters as stored in a model bundle, and the second-channel choice they carry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mammocad.preprocess import (
    PectoralParams,
    PreprocessParams,
    SecondChannelMethod,
    SecondChannelParams,
    TissueParams,
    preprocess_image,
)
from mammocad.structures import Laterality, ViewPosition


def _custom() -> PreprocessParams:
    return PreprocessParams(
        input_size=(2048, 1664),
        crop_margin=0.05,
        tissue=TissueParams(work_size=640, threshold_fraction=0.2),
        pectoral=PectoralParams(min_slope=1.2),
        second_channel=SecondChannelParams(
            method=SecondChannelMethod.DENSE_WINDOW, clahe_tiles=(4, 6)
        ),
    )


@pytest.mark.parametrize("params", [PreprocessParams(), _custom()], ids=["default", "custom"])
def test_round_trip_through_json(params):
    stored = json.dumps(params.to_dict())  # what a bundle manifest holds
    restored = PreprocessParams.from_dict(json.loads(stored))
    assert restored == params
    assert isinstance(restored.input_size, tuple)
    assert restored.second_channel.method is params.second_channel.method


def test_manifest_form_is_plain_and_readable():
    data = PreprocessParams().to_dict()
    assert data["input_size"] == [1024, 832]
    assert data["second_channel"]["method"] == "clahe"
    assert set(data) == {"input_size", "crop_margin", "tissue", "pectoral", "second_channel"}


def test_unknown_or_missing_keys_are_refused_not_defaulted():
    data = PreprocessParams().to_dict()
    data["tissue"]["new_knob"] = 1
    with pytest.raises(ValueError, match="unknown: \\['new_knob'\\]"):
        PreprocessParams.from_dict(data)
    data = PreprocessParams().to_dict()
    del data["crop_margin"]
    with pytest.raises(ValueError, match="missing: \\['crop_margin'\\]"):
        PreprocessParams.from_dict(data)


@pytest.mark.parametrize(
    "build",
    [
        lambda: PreprocessParams(input_size=(16, 16)),
        lambda: PreprocessParams(crop_margin=-0.1),
        lambda: TissueParams(work_size=32),
        lambda: TissueParams(threshold_fraction=1.5),
        lambda: PectoralParams(min_slope=0.0),
        lambda: SecondChannelParams(clahe_clip_limit=0.0),
        lambda: SecondChannelParams(window_low_percentile=90.0, window_high_percentile=10.0),
    ],
)
def test_invalid_values_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


def test_parameters_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        PreprocessParams((512, 416))  # type: ignore[misc]
    params = PreprocessParams()
    with pytest.raises(AttributeError):
        params.crop_margin = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("method", list(SecondChannelMethod))
def test_second_channel_is_a_different_contrast_of_the_same_breast(phantom, method):
    ph = phantom(label=False, marker=False)
    params = PreprocessParams(
        input_size=(512, 416), second_channel=SecondChannelParams(method=method)
    )
    result = preprocess_image(ph.image(view=ViewPosition.CC, laterality=Laterality.L), params)
    display, second = result.input
    breast = display > 0
    assert second.min() >= 0.0 and second.max() <= 1.0
    assert not second[~breast].any()  # background 0
    # CLAHE keeps all of the breast above 0; the dense window starts at the tissue median
    covered = 0.95 if method is SecondChannelMethod.CLAHE else 0.4
    assert np.count_nonzero(second[breast]) > covered * breast.sum()
    # a second preparation, not a copy: it spreads the breast's values wider than the display
    assert np.ptp(np.percentile(second[breast], [5, 95])) > np.ptp(
        np.percentile(display[breast], [5, 95])
    )
    # monotone with the display on average: brighter tissue stays brighter
    assert np.corrcoef(display[breast], second[breast])[0, 1] > 0.6
