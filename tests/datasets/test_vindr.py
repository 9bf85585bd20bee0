"""VinDr-Mammo finding annotations → lesion boxes, on the real file's rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.datasets.breast_labels import read_dataset_labels, read_table
from mammocad.datasets.vindr import lesion_boxes
from mammocad.structures import Laterality


def test_the_real_finding_annotations(shared_data: Path) -> None:
    path = shared_data / "annotation-formats" / "vindr-mammo" / "finding_annotations_EXCERPT.csv"
    images = lesion_boxes(read_table(path))
    assert len(images) == 17  # 18 rows, one image with two findings
    (mass,) = images["4e3a578fe535ea4f5258d3f7f4419db8"]
    assert mass.label == "mass" and mass.box[0] == 2355.1398925781
    # a distortion and a mass whose box starts 6 px left of the image (clipped to 0)
    distortion, clipped = images["dc4694b543793f89c7003f4d52adbbcb"]
    assert (distortion.label, clipped.label) == ("architectural_distortion", "mass")
    assert clipped.box[0] == 0.0 and clipped.box[2] == 180.51100158691
    # ['Suspicious Calcification', 'Focal Asymmetry']: one box, the calcification
    assert [b.label for b in images["8c799782afb5ab3a1a9cd5236dbddb98"]] == ["calcification"]
    assert [b.label for b in images["d6db56d5cb90391e234dca76c4a344e4"]] == ["asymmetry"]
    assert [b.label for b in images["4d63c40fb038d24bb1ff6da3912272c7"]] == ["lymph_node"]
    assert [b.label for b in images["de271f535b0d9c01a793d9ed2db5708d"]] == ["skin_thickening"]
    assert images["d8125545210c08e1b1793a5af6458ee2"] == []  # 'No Finding'


def test_breast_birads_as_breast_labels_per_image(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "annotation-formats" / "vindr-mammo" / "finding_annotations_EXCERPT.csv"
    labels = read_dataset_labels([path])
    # 17 images; BI-RADS 4 or 5 on 10 (counted with cut | sort -u), 1-3 on 7
    assert not labels.breasts and len(labels.images) == 17
    assert sum(label.malignant for label in labels.images.values()) == 10
    image = labels.images["4e3a578fe535ea4f5258d3f7f4419db8"]
    assert (image.patient_id, image.laterality, image.group, image.malignant) == (
        "48575a27b7c992427041a82fa750d3fa", Laterality.R, "density C", True
    )  # fmt: skip
    # breast-level_annotations.csv: the same columns without the findings
    breast_level = tmp_path / "breast-level_annotations.csv"
    breast_level.write_text(
        "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
        "breast_density,split\ns1,r1,i1,L,CC,3518,2800,BI-RADS 2,DENSITY B,training\n"
        "s1,r1,i2,L,MLO,3518,2800,BI-RADS 0,DENSITY B,training\n"
    )
    with pytest.raises(ValueError, match="row 3: breast_birads 'BI-RADS 0' is not a BI-RADS"):
        read_dataset_labels([breast_level])
