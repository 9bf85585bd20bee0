"""INbreast's label CSV and ROI files, and mini-MIAS's Info.txt, as breast labels and boxes."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from mammocad.datasets.breast_labels import read_dataset_labels
from mammocad.datasets.inbreast import lesion_boxes, read_roi_file
from mammocad.structures import Laterality

HEADER = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"


def _roi(name: str, points: list[tuple[float, float]]) -> dict[str, object]:
    return {
        "Name": name,
        "NumberOfPoints": len(points),
        "Point_px": [f"({x:f}, {y:f})" for x, y in points],
    }


def _write_rois(path: Path, rois: list[dict[str, object]]) -> Path:
    with path.open("wb") as handle:
        plistlib.dump(
            {"Images": [{"ImageIndex": 0, "NumberOfROIs": len(rois), "ROIs": rois}]}, handle
        )
    return path


def test_the_real_inbreast_csv_labels_images(shared_data: Path) -> None:
    labels = read_dataset_labels(
        [shared_data / "annotation-formats/inbreast/INbreast_csv_EXCERPT.csv"]
    )
    assert not labels.breasts and len(labels.images) == 10
    # 20586934 and 20586986: the left CC and MLO of a BI-RADS 5 breast; 22678646 BI-RADS 3
    assert {i for i, label in labels.images.items() if label.malignant} == {"20586934", "20586986"}
    left_cc = labels.images["22614097"]
    assert (left_cc.laterality, left_cc.group, left_cc.patient_id) == (Laterality.L, "ACR 2", "")
    assert labels.images["53582540"].group is None  # its ACR field is a run of spaces


def test_a_birads_outside_the_scale_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "INbreast.csv"
    path.write_text(f"{HEADER}\r\nremoved;removed;R;CC;201001;1;2;0\r\n")
    with pytest.raises(ValueError, match="row 2: Bi-Rads '0' is not a BI-RADS assessment 1–6"):
        read_dataset_labels([path])


def test_the_real_roi_file(shared_data: Path) -> None:
    # 22614097.xml: one calcification speck (one point) and two calcification outlines of 10
    # and 3 points; the speck is no lesion of its own
    boxes = read_roi_file(shared_data / "annotation-formats/inbreast/22614097.xml")
    assert [box.label for box in boxes] == ["calcification", "calcification"]
    assert boxes[0].box == pytest.approx((1282.41, 1793.73, 1316.75, 1826.35), abs=0.01)
    assert boxes[1].box == pytest.approx((1387.12, 1864.97, 1397.42, 1874.41), abs=0.01)


def test_roi_names_as_spelt_in_the_dataset(tmp_path: Path) -> None:
    square = [(10.0, 20.0), (50.0, 20.0), (50.0, 70.0), (10.0, 70.0)]
    names = ["Mass", "Espiculated Region", "Assymetry", "Cluster", "Distortion", "Point 1"]
    _write_rois(tmp_path / "20586908.xml", [_roi(name, square) for name in names])
    (tmp_path / "sub").mkdir()
    _write_rois(tmp_path / "sub" / "20586934.xml", [])
    found = lesion_boxes(tmp_path)
    assert set(found) == {"20586908", "20586934"} and found["20586934"] == []
    assert [box.label for box in found["20586908"]] == [
        "mass", "mass", "asymmetry", "calcification", "architectural_distortion"
    ]  # fmt: skip
    assert found["20586908"][0].box == (10.0, 20.0, 50.0, 70.0)


def test_unreadable_roi_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no \.xml file under"):
        lesion_boxes(tmp_path)
    (tmp_path / "1.xml").write_text("<html>not a plist</html>")
    with pytest.raises(ValueError, match=r"1\.xml is not an INbreast ROI file"):
        lesion_boxes(tmp_path)
    _write_rois(tmp_path / "1.xml", [{"Name": "Mass", "Point_px": ["(1, 2)", "x", "(3, 4)"]}])
    with pytest.raises(ValueError, match=r"1\.xml: ROI 1 has a point that is not"):
        lesion_boxes(tmp_path)


def test_mini_mias_info_labels_films(shared_data: Path) -> None:
    labels = read_dataset_labels([shared_data / "mini-mias" / "Info.txt"])
    # 242 films, 39 with a malignant row (counted with awk: $4 == "M")
    assert len(labels.images) == 242 and sum(b.malignant for b in labels.images.values()) == 39
    first, second = labels.images["mdb003"], labels.images["mdb004"]
    assert (first.laterality, second.laterality) == (Laterality.R, Laterality.L)
    assert first.patient_id == second.patient_id == "mias-002"
    assert labels.images["mdb005"].group == "fatty" and not labels.images["mdb005"].malignant


def test_a_text_file_that_is_not_info_txt(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("nothing here\n")
    with pytest.raises(ValueError, match=r"no mdbNNN row: it is not mini-MIAS's Info\.txt"):
        read_dataset_labels([path])
