"""Accuracy on real film mammograms from ../shared/data (skipped when it is absent).

* DDSM tissue masks: 66 MLO films with human outlines of the breast and the pectoral muscle.
  Targets: mean tissue IoU >= 0.95, mean pectoral IoU >= 0.80, chest-wall side right on all.
  Every file is named RIGHT, yet the A_ and D_ cases are stored mirrored (chest wall on the
  left), so the true side is read from the human mask, not the name.
* mini-MIAS: odd numbers are right breasts, stored with the chest wall on the right.
* CBIS-DDSM: the Laterality tag gives the side; burned-in labels and film borders abound.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.structures import Image, Laterality, ViewPosition

pytestmark = pytest.mark.shared_data


def _png_image(path: Path, view: ViewPosition) -> Image:
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert grey is not None, f"cannot read {path}"
    return Image(source=str(path), view=view, pixels=grey.astype(np.float32) / 255)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b)) / max(np.count_nonzero(a | b), 1)


def test_ddsm_tissue_and_pectoral_masks_meet_targets(shared_data):
    root = shared_data / "tissue-masks-ddsm" / "segmentation_data"
    images = sorted(root.glob("*/fgt_seg/*.png"))
    if not images:
        pytest.skip(f"no DDSM tissue masks under {root}")
    assert len(images) == 66
    params = PreprocessParams()
    tissue, pectoral, wrong_side = [], [], []
    for path in images:
        labels = cv2.imread(str(path.parent.parent / "fgt_seg_labels" / f"{path.stem}_LI.png"), 0)
        truth = labels > 64
        result = preprocess_image(_png_image(path, ViewPosition.MLO), params)
        assert result.pectoral_mask is not None
        tissue.append(_iou(result.tissue_mask, truth))
        pectoral.append(_iou(result.pectoral_mask, labels == 255))
        if result.chest_wall_on_right != (truth[:, -3:].mean() > truth[:, :3].mean()):
            wrong_side.append(path.stem)
    assert np.mean(tissue) >= 0.95, f"mean tissue IoU {np.mean(tissue):.4f}"
    assert np.mean(pectoral) >= 0.80, f"mean pectoral IoU {np.mean(pectoral):.4f}"
    assert min(tissue) > 0.85  # no breast is badly missed
    assert wrong_side == []


def test_mini_mias_chest_wall_side_follows_the_numbering(shared_data):
    paths = sorted((shared_data / "mini-mias").glob("mdb*.png"))[::8]
    if not paths:
        pytest.skip("no mini-MIAS images")
    params = PreprocessParams()
    for path in paths:
        result = preprocess_image(_png_image(path, ViewPosition.MLO), params)
        assert result.chest_wall_on_right == (int(path.stem[3:]) % 2 == 1), path.stem
        # the breast sits inside the black padding: the crop must not keep the padding
        x1, _, x2, _ = result.breast_box
        assert x2 - x1 < 0.8 * result.tissue_mask.shape[1]


def test_mini_mias_with_the_air_as_padding_keeps_its_mask_and_side(shared_data):
    # background suppression (GE FOR PRESENTATION): the air stored as 0 and Pixel Padding
    # Value 0, so every non-padding pixel is tissue. Before padding counted as background these
    # films were refused as no_tissue or cut inside the breast, some on the wrong side
    paths = sorted((shared_data / "mini-mias").glob("mdb*.png"))[::24]
    if not paths:
        pytest.skip("no mini-MIAS images")
    params = PreprocessParams()
    for path in paths:
        plain = preprocess_image(_png_image(path, ViewPosition.MLO), params)
        image = _png_image(path, ViewPosition.MLO)
        assert image.pixels is not None
        image.pixels[~plain.tissue_mask] = 0.0
        image.padding_mask = ~plain.tissue_mask
        padded = preprocess_image(image, params)
        assert padded.chest_wall_on_right == plain.chest_wall_on_right, path.stem
        assert _iou(padded.tissue_mask, plain.tissue_mask) > 0.9, path.stem


def test_cbis_ddsm_dicoms_left_and_right(shared_data):
    pydicom = pytest.importorskip("pydicom")
    paths = sorted((shared_data / "cbis-ddsm-sample").glob("sfm-malign-0/*.dcm"))
    if not paths:
        pytest.skip("no CBIS-DDSM sample")
    for path in paths[1::2]:  # the two MLO views (1-281 left, 1-283 right)
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float32)
        pixels /= pixels.max()
        image = Image(source=str(path), view=ViewPosition.MLO, pixels=pixels)
        result = preprocess_image(image, PreprocessParams())
        laterality = Laterality(str(dataset.Laterality))
        assert result.chest_wall_on_right == (laterality is Laterality.R)
        assert image.laterality is laterality  # inferred from the image, standard storage
        # the white film border along the top is not breast
        assert not result.tissue_mask[:20].any()
        assert result.pectoral_mask is not None and result.pectoral_mask.any()
        assert result.nipple is not None
