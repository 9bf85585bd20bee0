"""The library's own phantoms (vendor-style variants) read back to their display truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammocad.io import load_studies
from mammocad.structures import StudyStatus

synthetic = pytest.importorskip("mammocad.synthetic")

# Seeds whose variants differ in photometry, VOI (window, SIGMOID, VOI LUT), bits stored,
# transfer syntax and which laterality/view tags are present; the test does not rely on which.
SEEDS = (1, 2, 8, 9)


@pytest.mark.parametrize("seed", SEEDS)
def test_phantom_study_reads_back_to_its_truth(seed: int, tmp_path: Path) -> None:
    study = synthetic.generate_study(seed=seed, size="small")
    synthetic.write_study(study, tmp_path)
    result = load_studies(tmp_path)
    assert result.unassigned == []  # truth.json is a companion document, not an input
    assert len(result.studies) == 1
    read = result.studies[0]
    assert read.status is StudyStatus.COMPLETE, read.messages
    by_uid = {image.sop_instance_uid: image for image in read.images}
    for view in study.views:
        image = by_uid[view.truth.sop_instance_uid]
        assert (image.laterality, image.view) == (view.truth.laterality, view.truth.view)
        assert image.pixels is not None and image.pixels.shape == view.pixels.shape
        # the writer inverts the file's own VOI; what is left is stored-value quantisation
        np.testing.assert_allclose(image.pixels, view.pixels, atol=0.01)
