"""Real film mammograms from ../shared/data pass the gate (skipped when it is absent)."""

from __future__ import annotations

import pytest

from mammocad.io import read_image, read_raster
from mammocad.structures import ViewPosition

pytestmark = pytest.mark.shared_data


def test_mini_mias_films_pass(shared_data, run_gate):
    paths = sorted((shared_data / "mini-mias").glob("mdb*.png"))[::40]
    if not paths:
        pytest.skip("no mini-MIAS images")
    for path in paths:
        image = read_raster(path, view=ViewPosition.MLO, pixel_spacing_mm=0.2)
        gated = run_gate(image)
        assert gated.quality.acceptable, (path.name, gated.codes)
        assert "motion_blur" not in gated.codes


def test_cbis_ddsm_dicoms_pass(shared_data, run_gate):
    paths = sorted((shared_data / "cbis-ddsm-sample").glob("sfm-malign-0/*.dcm"))[:2]
    if not paths:
        pytest.skip("no CBIS-DDSM sample")
    for path in paths:
        gated = run_gate(read_image(path))
        assert gated.quality.acceptable, (path.name, gated.codes)
        assert gated.quality.score >= 0.8
