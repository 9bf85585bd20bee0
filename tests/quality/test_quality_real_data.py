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


def test_held_out_ddsm_films_pass_the_learned_model(shared_data, run_gate):
    # the shipped model trained on train_valid/; test/ is the real source it never saw
    root = shared_data / "tissue-masks-ddsm" / "segmentation_data" / "test" / "fgt_seg"
    paths = sorted(root.glob("*.png"))
    if not paths:
        pytest.skip("no DDSM tissue-mask test images")
    for path in paths:
        gated = run_gate(read_raster(path, view=ViewPosition.MLO))
        assert gated.quality.acceptable, (path.name, gated.codes)
        assert gated.quality.score >= 0.5
