"""Label and box files that match the analysed results badly: rows cut short, labels that
leave no study labelled, truth that names none (or not all) of the analysed images. Each
must say what is wrong, never crash or report an evaluation of nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.commands.eval_findings import truth_from_mias
from mammocad.datasets.breast_labels import read_dataset_labels
from mammocad.structures import Laterality

CBIS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,"
    "abnormality type,mass shape,mass margins,assessment,pathology,subtlety,"
    "image file path,cropped image file path,ROI mask file path"
)
#: mini-MIAS Info.txt as distributed: trailing spaces, CRLF, several rows for one film, a row
#: without coordinates
INFO_TXT = (
    "mdb005 F CIRC B 477 133 30 \r\n"
    "mdb005 F CIRC B 500 168 26\r\n"
    "mdb006 F NORM \r\n"
    "mdb015 G CIRC B 595 864 68\r\n"
    "mdb059 F CIRC B\r\n"
)


def _run(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*arguments, "--bootstrap", "0"])
    return result.exit_code, " ".join(result.output.split())


def _write_result(results: Path, uid: str, result: dict[str, Any]) -> None:
    (results / uid).mkdir(parents=True)
    (results / uid / "result.json").write_text(json.dumps({"study_instance_uid": uid, **result}))


def _film(uid: str, source: str, *boxes: list[int]) -> dict[str, Any]:
    """A processed image with a mass finding (score 0.8) per box."""
    findings = [
        {"box": box, "label": "mass", "score": 0.8, "malignancy_probability": 0.5} for box in boxes
    ]
    return {"sop_instance_uid": uid, "source": source, "status": "processed", "findings": findings}


def test_a_row_cut_short_is_refused_by_its_row_not_a_crash(tmp_path: Path) -> None:
    # a hand-edited case description whose second row lost its trailing cells: read as empty,
    # so the row is named (it was a KeyError traceback)
    path = tmp_path / "mass_case_description_test_set.csv"
    path.write_bytes(
        f"{CBIS_HEADER}\r\nP_00001,2,LEFT,CC,1,mass,OVAL,CIRCUMSCRIBED,3,BENIGN,4,a,b,c\r\n"
        "P_00002,3,RIGHT\r\n".encode()
    )
    with pytest.raises(ValueError, match="row 3: pathology '' is none of MALIGNANT"):
        read_dataset_labels([path])
    # trailing cells that are optional (CMMD's subtype and abnormality) may be missing
    cmmd = tmp_path / "clinical.csv"
    cmmd.write_text(
        "ID1,LeftRight,Age,number,abnormality,classification,subtype\n"
        "D1-0001,R,44,2,calcification,Benign\n"
    )
    (label,) = read_dataset_labels([cmmd]).breasts.values()
    assert (label.patient_id, label.laterality, label.malignant) == ("D1-0001", Laterality.R, False)


def test_study_level_says_why_no_study_is_labelled(tmp_path: Path) -> None:
    # CMMD lists only the breast with a lesion; the study has both breasts, so it cannot be
    # labelled. That must be said, not "no labelled result.json" as if nothing matched
    (tmp_path / "clinical.csv").write_text(
        "ID1,LeftRight,Age,number,abnormality,classification,subtype\n"
        "D1-0001,R,44,2,calcification,Malignant,\n"
    )
    _write_result(
        tmp_path / "results",
        "3.0",
        {
            "x_patient_id": "D1-0001",
            "malignancy_probability": 0.4,
            "x_malignancy_probability_unrounded": 0.4,
            "images": [
                {"sop_instance_uid": "3.0.1", "laterality": "R", "status": "processed"},
                {"sop_instance_uid": "3.0.2", "laterality": "L", "status": "processed"},
            ],
            "breasts": [
                {"laterality": "R", "malignancy_probability": 0.4},
                {"laterality": "L", "malignancy_probability": 0.1},
            ],
        },
    )
    exit_code, output = _run(
        "eval", "study", "--results", str(tmp_path / "results"),
        "--dataset-labels", str(tmp_path / "clinical.csv"), "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert exit_code == 2
    assert "the labels name 1 analysed breasts, but none of the 1 studies" in output
    assert "--level breast" in output


def test_boxes_that_name_no_analysed_image_are_refused(tmp_path: Path) -> None:
    # boxes keyed by UIDs of other images: every analysed image would be lesion-free and the
    # FROC empty, reported with exit code 0
    _write_result(
        tmp_path / "results", "2.1", {"images": [_film("9.1", "a.dcm", [10, 10, 50, 50])]}
    )
    (tmp_path / "boxes.csv").write_text(
        "sop_instance_uid,x1,y1,x2,y2,label,malignant\n1.2.3,10,10,50,50,mass,1\n"
    )
    exit_code, output = _run(
        "eval", "findings", "--results", str(tmp_path / "results"),
        "--boxes", str(tmp_path / "boxes.csv"), "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert exit_code == 2
    assert "none of the 1 analysed images" in output and "is in the truth (1 images)" in output


def test_mini_mias_truth_needs_only_info_txt(tmp_path: Path) -> None:
    # the films are analysed from wherever they are kept; the folder given holds Info.txt
    # alone. The truth was empty, so mdb015's mass counted as a false positive on a
    # lesion-free film
    (tmp_path / "mias").mkdir()
    (tmp_path / "mias" / "Info.txt").write_bytes(INFO_TXT.encode())
    truth = truth_from_mias(tmp_path / "mias")
    assert set(truth.boxes) == {"mdb005", "mdb006", "mdb015"} and truth.skip == {"mdb059"}
    assert len(truth.boxes["mdb005"]) == 2 and truth.boxes["mdb006"] == []
    assert truth.boxes["mdb015"][0].box == (527.0, 92.0, 663.0, 228.0)
    results = tmp_path / "results"
    _write_result(
        results, "4.1", {"images": [_film("4.1.1", "films/mdb015.pgm", [540, 100, 650, 220])]}
    )
    exit_code, output = _run(
        "eval", "findings", "--results", str(results), "--mias", str(tmp_path / "mias"),
        "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert exit_code == 0, output
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["mass"] == {"sensitivity": 1.0, "fp_per_image": 0.0}


def test_films_info_txt_does_not_list_are_left_out_not_lesion_free(tmp_path: Path) -> None:
    # every mini-MIAS film has an Info.txt row: mdb100 has none in this file (a subset's
    # Info.txt), so its finding is neither hit nor false positive
    (tmp_path / "mias").mkdir()
    (tmp_path / "mias" / "Info.txt").write_bytes(INFO_TXT.encode())
    results = tmp_path / "results"
    _write_result(results, "4.1", {"images": [
        _film("4.1.1", "films/mdb015.png", [540, 100, 650, 220]),
        _film("4.1.2", "films/mdb100.png", [10, 10, 60, 60]),
    ]})  # fmt: skip
    exit_code, output = _run(
        "eval", "findings", "--results", str(results), "--mias", str(tmp_path / "mias"),
        "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert exit_code == 0, output
    assert "1 images (0 rejected" in output
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["mass"] == {"sensitivity": 1.0, "fp_per_image": 0.0}
    assert "1 analysed images the truth does not list (left out)" in output


def test_images_vindr_does_not_list_are_left_out_not_lesion_free(tmp_path: Path) -> None:
    # VinDr-Mammo's finding_annotations.csv lists every image of the dataset (a "No Finding"
    # row for a lesion-free one): an analysed image it does not name is not judged by it
    (tmp_path / "finding_annotations.csv").write_text(
        "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
        "breast_density,finding_categories,finding_birads,xmin,ymin,xmax,ymax,split\n"
        "s1,r1,aaa111,R,CC,3518,2800,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,"
        "2355.1,1731.6,2482.9,1852.7,test\n"
    )
    results = tmp_path / "results"
    _write_result(results, "3.1", {"images": [
        _film("1.1", "images/s1/aaa111.dicom", [2360, 1740, 2480, 1850]),
        _film("1.2", "other/zzz999.dicom", [10, 10, 60, 60]),
    ]})  # fmt: skip
    exit_code, output = _run(
        "eval", "findings", "--results", str(results),
        "--boxes", str(tmp_path / "finding_annotations.csv"), "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert exit_code == 0, output
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["mass"] == {"sensitivity": 1.0, "fp_per_image": 0.0}
    assert "1 analysed images the truth does not list (left out)" in output
