"""``mammocad eval findings`` on hand-made results, lesion boxes and phantom truth."""

from __future__ import annotations

import csv
import json
import plistlib
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.commands.eval_findings import truth_from_mias, truth_from_phantoms
from mammocad.datasets.cbis_ddsm import lesion_boxes as cbis_lesion_boxes
from mammocad.structures import Laterality
from mammocad.synthetic import read_truth, write_studies

# image 1.1: a malignant mass, found (0.9), and a calcification false positive (0.6);
# image 1.2: no lesion, a mass false positive (0.7) and an asymmetry (0.95), a class the boxes
# do not annotate, so neither hit nor false positive; image 1.3: rejected, its calcification
# missed; image 9.9 has a box but no result lists it
IMAGES: dict[str, dict[str, Any]] = {
    "1.1": {"status": "processed", "findings": [
        {"box": [110, 110, 190, 190], "label": "mass", "score": 0.9, "malignancy_probability": 0.8},
        {"box": [500, 500, 520, 520], "label": "calcification", "score": 0.6,
         "malignancy_probability": 0.2},
    ]},
    "1.2": {"status": "processed", "findings": [
        {"box": [0, 0, 50, 50], "label": "mass", "score": 0.7, "malignancy_probability": 0.1},
        {"box": [300, 300, 400, 400], "label": "asymmetry", "score": 0.95,
         "malignancy_probability": 0.9},
    ]},
    "1.3": {"status": "rejected", "findings": []},
}  # fmt: skip
BOXES = [
    ("1.1", 100, 100, 200, 200, "Mass", "1"),
    ("1.3", 10, 10, 20, 20, "calcification", "0"),
    ("9.9", 10, 10, 20, 20, "mass", ""),
]


def _write(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    _write_result(results, "2.1", [{"sop_instance_uid": uid, **i} for uid, i in IMAGES.items()])
    boxes = tmp_path / "boxes.csv"
    with boxes.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sop_instance_uid", "x1", "y1", "x2", "y2", "label", "malignant"])
        writer.writerows(BOXES)
    return results, boxes


def _run(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["eval", "findings", *arguments, "--bootstrap", "0"])
    return result.exit_code, result.output


def _write_result(results: Path, uid: str, images: list[dict[str, Any]]) -> None:
    """One study's result.json under ``results``."""
    (results / uid).mkdir(parents=True)
    result = {"study_instance_uid": uid, "images": images}
    (results / uid / "result.json").write_text(json.dumps(result))


def _image(uid: str, source: str, *masses: tuple[list[int], float]) -> dict[str, Any]:
    """A processed image with a mass finding per (box, score), malignancy 0.5."""
    findings = [
        {"box": box, "label": "mass", "score": score, "malignancy_probability": 0.5}
        for box, score in masses
    ]
    return {"sop_instance_uid": uid, "source": source, "status": "processed", "findings": findings}


def test_reported_findings_against_lesion_boxes(tmp_path: Path) -> None:
    results, boxes = _write(tmp_path)
    arguments = ["--results", str(results), "--boxes", str(boxes), "--out", str(tmp_path / "r")]
    exit_code, output = _run(*arguments)
    assert exit_code == 0, output
    assert "3 images (1 rejected" in " ".join(output.split())
    assert "1 images of the truth that no result lists" in " ".join(output.split())
    rows = {
        (row["curve"], row["fp_per_image"]): row
        for row in csv.DictReader((tmp_path / "r" / "findings_froc.csv").open())
    }
    # any lesion: 2 truths; the mass found at 0.9 before any false positive, then the two
    # false positives (0.7, 0.6) over 3 images; the asymmetry is not judged
    assert float(rows[("any_lesion", "0.125")]["sensitivity"]) == 0.5
    assert float(rows[("mass", "0.125")]["sensitivity"]) == 1.0
    assert float(rows[("malignant", "0.125")]["sensitivity"]) == 1.0
    ends = json.loads((tmp_path / "r" / "findings_froc.json").read_text())["operating_point"]
    assert ends["any_lesion"] == {"sensitivity": 0.5, "fp_per_image": 2 / 3}
    assert ends["calcification"] == {"sensitivity": 0.0, "fp_per_image": 1 / 3}
    assert (tmp_path / "r" / "findings_froc.png").stat().st_size > 0


def test_a_folder_the_summary_does_not_list_is_not_evaluated(tmp_path: Path) -> None:
    """A study folder an earlier run left in the same --out (another model's findings) was
    pooled with this run's: with summary.json, only the studies it lists are read."""
    results, boxes = _write(tmp_path)
    _write_result(results, "3.1", [_image("9.9", "old.dcm", ([10, 10, 20, 20], 0.9))])
    summary = {"model": {}, "studies": [{"study_instance_uid": "2.1", "result": "2.1/result.json"}]}
    (results / "summary.json").write_text(json.dumps(summary))
    arguments = ["--results", str(results), "--boxes", str(boxes), "--out", str(tmp_path / "r")]
    exit_code, output = _run(*arguments)
    assert exit_code == 0, output
    # as without the stale folder: 9.9's mass is not found by the earlier run's finding
    output = " ".join(output.split())
    assert "3 images (1 rejected" in output
    assert "1 images of the truth that no result lists" in output


def test_bad_boxes_say_which_row(tmp_path: Path) -> None:
    results, boxes = _write(tmp_path)
    boxes.write_text(boxes.read_text().replace("Mass", "lump"))
    exit_code, output = _run("--results", str(results), "--boxes", str(boxes), "--out", "x")
    assert exit_code == 2 and "row 2: label 'lump' is none of mass" in " ".join(output.split())
    boxes.write_text("sop_instance_uid,x1,y1,x2,y2,label\n1.1,5,5,1,1,mass\n")
    exit_code, output = _run("--results", str(results), "--boxes", str(boxes), "--out", "x")
    assert exit_code == 2 and "needs x1 < x2 and y1 < y2" in output


def test_phantom_truth_is_keyed_by_sop_instance_uid(tmp_path: Path) -> None:
    folders = write_studies(n_studies=2, out_dir=tmp_path, seed=4, size="small")
    truth = truth_from_phantoms(tmp_path)
    assert truth.annotated is None
    for folder in folders:
        for view in read_truth(folder / "truth.json").views:
            assert [row.box for row in truth.boxes[view.sop_instance_uid]] == [
                lesion.box for lesion in view.lesions
            ]


def test_vindr_finding_annotations_match_images_by_file_name(tmp_path: Path) -> None:
    # VinDr-Mammo's layout: images/<study_id>/<image_id>.dicom, boxes by image_id
    results = tmp_path / "results"
    _write_result(results, "3.1", [
        _image("1.2.3.1", "vindr/images/s1/aaa111.dicom", ([2360, 1740, 2480, 1850], 0.8)),
        _image("1.2.3.2", "vindr.zip!images/s1/bbb222.dicom"),
    ])  # fmt: skip
    header = (
        "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
        "breast_density,finding_categories,finding_birads,xmin,ymin,xmax,ymax,split"
    )
    (tmp_path / "finding_annotations.csv").write_text(
        f"{header}\n"
        "s1,r1,aaa111,R,CC,3518,2800,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,"
        "2355.1,1731.6,2482.9,1852.7,test\n"
        "s1,r1,bbb222,R,MLO,3518,2800,BI-RADS 4,DENSITY C,\"['Nipple Retraction']\",BI-RADS 4,"
        "10,10,50,50,test\n"
        "s9,r9,ccc333,L,CC,3518,2800,BI-RADS 1,DENSITY B,['No Finding'],,,,,,test\n"
    )
    arguments = ["--results", str(results), "--boxes", str(tmp_path / "finding_annotations.csv")]
    exit_code, output = _run(*arguments, "--out", str(tmp_path / "r"))
    assert exit_code == 0, output
    # the mass found, no false positive; the nipple retraction is no lesion class; ccc333 was
    # not analysed
    assert "1 images of the truth that no result lists" in " ".join(output.split())
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["mass"] == {"sensitivity": 1.0, "fp_per_image": 0.0}
    assert "malignant" not in froc["operating_point"]  # VinDr-Mammo gives no pathology


def test_mini_mias_lesions_match_films_by_file_name(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "mini-mias"
    truth = truth_from_mias(folder)
    # "mdb015 G CIRC B 595 864 68": a benign mass, rows measured from the bottom
    (mass,) = truth.boxes["mdb015"]
    assert (mass.label, mass.box, mass.malignant) == ("mass", (527.0, 92.0, 663.0, 228.0), 0)
    assert "mdb059" in truth.skip and "mdb059" not in truth.boxes  # a mass without coordinates
    results = tmp_path / "results"
    _write_result(results, "4.1", [
        _image("4.1.1", str(folder / "mdb015.png"), ([540, 100, 650, 220], 0.6)),
        _image("4.1.2", str(folder / "mdb059.png"), ([10, 10, 60, 60], 0.9)),
    ])  # fmt: skip
    exit_code, output = _run(
        "--results", str(results), "--mias", str(folder), "--out", str(tmp_path / "r")
    )
    assert exit_code == 0, output
    # mdb059's finding can be neither hit nor false positive: its film is left out
    assert "1 images (0 rejected" in " ".join(output.split())
    assert "1 with an abnormality the truth does not locate" in " ".join(output.split())
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["mass"] == {"sensitivity": 1.0, "fp_per_image": 0.0}


def test_inbreast_roi_files_match_images_by_file_name(tmp_path: Path) -> None:
    # INbreast: AllXML/<File Name>.xml; the DICOM files' names start with the File Name
    (tmp_path / "AllXML").mkdir()
    outline = [f"({x}, {y})" for x, y in ((1000, 1200), (1100, 1200), (1100, 1320), (1000, 1320))]
    with (tmp_path / "AllXML" / "20586934.xml").open("wb") as handle:
        plistlib.dump({"Images": [{"ROIs": [{"Name": "Mass", "Point_px": outline}]}]}, handle)
    results = tmp_path / "results"
    _write_result(results, "6.1", [
        _image("6.1.1", "AllDICOMs/20586934_6c613a14_MG_L_CC_ANON.dcm",
               ([1010, 1190, 1090, 1310], 0.8)),
        _image("6.1.2", "AllDICOMs/20586986_6c613a14_MG_L_ML_ANON.dcm", ([10, 10, 60, 60], 0.9)),
    ])  # fmt: skip
    exit_code, output = _run(
        "--results",
        str(results),
        "--inbreast",
        str(tmp_path / "AllXML"),
        "--out",
        str(tmp_path / "r"),
    )
    assert exit_code == 0, output
    # the mass found; 20586986 has no ROI file, so it is lesion-free and its finding a false
    # positive: 1 of 2 images
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["mass"] == {"sensitivity": 1.0, "fp_per_image": 0.5}
    assert "malignant" not in froc["operating_point"]  # INbreast gives no pathology per ROI


def _dicom(path: Path, pixels: np.ndarray, *, series: str, patient: str) -> str:
    """A CBIS-DDSM-like secondary capture; returns its SOP Instance UID."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), series, patient
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def test_cbis_ddsm_boxes_come_from_roi_masks_found_by_series(tmp_path: Path) -> None:
    # TCIA's download layout, not the CSV's: files are found by the series UID the CSV names
    root = tmp_path / "CBIS-DDSM"
    cc_series, mlo_series, roi_series = generate_uid(), generate_uid(), generate_uid()
    mammogram = np.full((200, 160), 90)
    cc = _dicom(
        root / "Mass-Test_P_00001_LEFT_CC/07-20-2016-DDSM-1/1-full/1-1.dcm",
        mammogram,
        series=cc_series,
        patient="Mass-Test_P_00001_LEFT_CC",
    )
    mlo = _dicom(
        root / "Mass-Test_P_00001_LEFT_MLO/07-20-2016-DDSM-3/1-full/1-1.dcm",
        mammogram,
        series=mlo_series,
        patient="Mass-Test_P_00001_LEFT_MLO",
    )
    mask = np.zeros((200, 160))
    mask[50:70, 30:60] = 255
    # as in 103 of CBIS-DDSM's rows, the mask is not the file the CSV's name says: the
    # mask is told by its size, the full mammogram's
    roi = root / "Mass-Test_P_00001_LEFT_CC_1/07-21-2016-DDSM-2/1-ROI"
    _dicom(roi / "1-1.dcm", mask, series=roi_series, patient="Mass-Test_P_00001_LEFT_CC_1")
    _dicom(roi / "1-2.dcm", np.full((20, 30), 200), series=roi_series, patient="x")
    lost = generate_uid()  # the MLO's ROI series is not in the folder
    header = (
        "patient_id,breast_density,left or right breast,image view,abnormality id,"
        "abnormality type,mass shape,mass margins,assessment,pathology,subtlety,"
        "image file path,cropped image file path,ROI mask file path"
    )
    rows = [
        f"P_00001,2,LEFT,CC,1,mass,OVAL,SPICULATED,5,MALIGNANT,5,"
        f"a/s/{cc_series}/000000.dcm,a_1/s/{roi_series}/000001.dcm,\"a_1/s/{roi_series}/000000.dcm\n\"",
        f"P_00001,2,LEFT,MLO,1,mass,OVAL,SPICULATED,5,MALIGNANT,5,"
        f"c/s/{mlo_series}/000000.dcm,c_1/s/{lost}/000000.dcm,\"c_1/s/{lost}/000001.dcm\n\"",
        f"P_00009,2,RIGHT,CC,1,mass,OVAL,SPICULATED,4,BENIGN,5,"
        f"b/s/{generate_uid()}/000000.dcm,b_1/s/x/000000.dcm,\"b_1/s/x/000001.dcm\n\"",
    ]  # fmt: skip
    (tmp_path / "mass.csv").write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode())
    found = cbis_lesion_boxes([tmp_path / "mass.csv"], root)
    (lesion,) = found.lesions[cc]
    assert (lesion.box, lesion.label, lesion.malignant) == ((30.0, 50.0, 60.0, 70.0), "mass", True)
    # the MLO's mask is missing: that mammogram cannot be judged; P_00009 is not there at all
    assert found.unlocated == {mlo} and found.rows_without_image == 1
    results = tmp_path / "results"
    found_mass = ([32, 52, 58, 68], 0.7)
    _write_result(results, "5.1", [_image(cc, "", found_mass), _image(mlo, "", found_mass)])
    arguments = ["--results", str(results), "--cbis-ddsm", str(tmp_path / "mass.csv")]
    exit_code, output = _run(*arguments, "--images", str(root), "--out", str(tmp_path / "r"))
    assert exit_code == 0, output
    assert "1 with an abnormality the truth does not locate" in " ".join(output.split())
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["malignant"] == {"sensitivity": 1.0, "fp_per_image": 0.0}
    exit_code, output = _run(*arguments, "--out", str(tmp_path / "r"))
    assert exit_code == 2 and "--cbis-ddsm needs --images DIR" in " ".join(output.split())


_MASS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,"
    "abnormality type,mass shape,mass margins,assessment,pathology,subtlety,"
    "image file path,cropped image file path,ROI mask file path"
)
_CALC_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,"
    "abnormality type,calc type,calc distribution,assessment,pathology,subtlety,"
    "image file path,cropped image file path,ROI mask file path"
)
_CBIS_MASS_BOX, _CBIS_CALC_BOX = [30, 50, 60, 70], [100, 120, 120, 140]


def _cbis_copy(root: Path, kind: str, shape: tuple[int, int], box: list[int]) -> tuple[str, str]:
    """P_00034's RIGHT CC as the ``kind`` collection stores it (its own study and series) with
    one abnormality's ROI mask; returns the mammogram's SOP Instance UID and the CSV row."""
    case = f"{kind.capitalize()}-Test_P_00034_RIGHT_CC"
    full_series, roi_series = generate_uid(), generate_uid()
    uid = _dicom(root / case / "1-1.dcm", np.full(shape, 90), series=full_series, patient=case)
    mask = np.zeros(shape)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = 255
    _dicom(root / f"{case}_1" / "1-1.dcm", mask, series=roi_series, patient=f"{case}_1")
    _dicom(root / f"{case}_1" / "1-2.dcm", np.full((20, 20), 200), series=roi_series, patient="x")
    full, roi = f"{case}/s/{full_series}/000000.dcm", f"{case}_1/s/{roi_series}"
    if kind == "mass":  # each file's quirk: a quoted path ending in a newline
        return uid, (
            f"P_00034,2,RIGHT,CC,1,mass,OVAL,SPICULATED,5,MALIGNANT,5,"
            f'{full},{roi}/000000.dcm,"{roi}/000001.dcm\n"'
        )
    return uid, (
        f"P_00034,2,RIGHT,CC,1,calcification,PLEOMORPHIC,CLUSTERED,4,MALIGNANT,3,"
        f'{full},"{roi}/000001.dcm\n",{roi}/000000.dcm'
    )


def _cbis_view_in_both_files(
    tmp_path: Path, calc_shape: tuple[int, int] = (200, 160)
) -> tuple[Path, Path, Path, str, str]:
    """One view with a mass and a calcification, stored (as 71 views of CBIS-DDSM are) once
    in the Mass and once in the Calc collection, and a perfect detector's results on both
    copies. Returns the DICOM folder, the two case descriptions and the copies' UIDs."""
    root = tmp_path / "CBIS-DDSM"
    mass_uid, mass_row = _cbis_copy(root, "mass", (200, 160), _CBIS_MASS_BOX)
    calc_uid, calc_row = _cbis_copy(root, "calc", calc_shape, _CBIS_CALC_BOX)
    mass_csv, calc_csv = tmp_path / "mass.csv", tmp_path / "calc.csv"
    mass_csv.write_bytes(f"{_MASS_HEADER}\r\n{mass_row}\r\n".encode())
    calc_csv.write_bytes(f"{_CALC_HEADER}\r\n{calc_row}\r\n".encode())
    findings = [
        {"box": box, "label": label, "score": 0.9, "malignancy_probability": 0.5}
        for box, label in ((_CBIS_MASS_BOX, "mass"), (_CBIS_CALC_BOX, "calcification"))
    ]
    for uid in (mass_uid, calc_uid):
        image = {"sop_instance_uid": uid, "status": "processed", "findings": findings}
        _write_result(tmp_path / "results", uid, [image])
    return root, mass_csv, calc_csv, mass_uid, calc_uid


def test_a_cbis_ddsm_mass_file_alone_annotates_no_calcification(tmp_path: Path) -> None:
    # a mass file says nothing of calcifications: the calcification found on the mass copy
    # is neither hit nor false positive (it was a false positive of every lesion before)
    root, mass_csv, _, mass_uid, _ = _cbis_view_in_both_files(tmp_path)
    found = cbis_lesion_boxes([mass_csv], root)
    assert found.annotated == {"mass"} and [a.label for a in found.lesions[mass_uid]] == ["mass"]
    arguments = ["--results", str(tmp_path / "results"), "--cbis-ddsm", str(mass_csv)]
    exit_code, output = _run(*arguments, "--images", str(root), "--out", str(tmp_path / "r"))
    assert exit_code == 0, output
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    assert froc["operating_point"]["any_lesion"] == {"sensitivity": 1.0, "fp_per_image": 0.0}
    assert froc["operating_point"]["malignant"] == {"sensitivity": 1.0, "fp_per_image": 0.0}
    assert "calcification" not in froc["operating_point"]


def test_a_view_in_both_cbis_ddsm_files_has_both_lesions_on_each_copy(tmp_path: Path) -> None:
    # the mass copy's truth lacked the view's calcification and the calc copy's its mass: a
    # perfect detector was charged a false positive on each
    root, mass_csv, calc_csv, mass_uid, calc_uid = _cbis_view_in_both_files(tmp_path)
    found = cbis_lesion_boxes([mass_csv, calc_csv], root)
    assert found.annotated == {"mass", "calcification"} and not found.unmerged
    for uid in (mass_uid, calc_uid):
        assert sorted((a.label.value, a.box, a.malignant) for a in found.lesions[uid]) == [
            ("calcification", (100.0, 120.0, 120.0, 140.0), True),
            ("mass", (30.0, 50.0, 60.0, 70.0), True),
        ]
    arguments = ["--cbis-ddsm", str(mass_csv), "--cbis-ddsm", str(calc_csv)]
    arguments += ["--results", str(tmp_path / "results"), "--images", str(root)]
    exit_code, output = _run(*arguments, "--out", str(tmp_path / "r"))
    assert exit_code == 0, output
    froc = json.loads((tmp_path / "r" / "findings_froc.json").read_text())
    perfect = {"sensitivity": 1.0, "fp_per_image": 0.0}
    names = ("mass", "calcification", "any_lesion", "malignant")
    assert froc["operating_point"] == dict.fromkeys(names, perfect)


def test_cbis_ddsm_copies_of_different_sizes_are_kept_apart(tmp_path: Path) -> None:
    # a box of one copy cannot be drawn on a copy of another size: each keeps its own file's
    # lesion, and the run says so
    root, mass_csv, calc_csv, mass_uid, calc_uid = _cbis_view_in_both_files(
        tmp_path, calc_shape=(240, 180)
    )
    found = cbis_lesion_boxes([mass_csv, calc_csv], root)
    assert found.unmerged == {("P_00034", Laterality.R, "CC")} and not found.unlocated
    assert [a.label.value for a in found.lesions[mass_uid]] == ["mass"]
    assert [a.label.value for a in found.lesions[calc_uid]] == ["calcification"]
    arguments = ["--cbis-ddsm", str(mass_csv), "--cbis-ddsm", str(calc_csv)]
    arguments += ["--results", str(tmp_path / "results"), "--images", str(root)]
    exit_code, output = _run(*arguments, "--out", str(tmp_path / "r"))
    assert exit_code == 0, output
    assert (
        "1 views are stored in the mass and calcification files as copies of different "
        "sizes (P_00034 R CC)" in " ".join(output.split())
    )


def test_a_cbis_ddsm_copy_whose_other_lesion_is_not_here_is_left_out(tmp_path: Path) -> None:
    # the Calc collection was not downloaded: the mass copy has a calcification no box says
    # where, so it cannot be judged (its calcification finding would be a false positive)
    root, mass_csv, calc_csv, mass_uid, _ = _cbis_view_in_both_files(tmp_path)
    for path in root.glob("Calc-*/*.dcm"):
        path.unlink()
    found = cbis_lesion_boxes([mass_csv, calc_csv], root)
    assert found.unlocated == {mass_uid} and not found.lesions and found.rows_without_image == 1


def test_the_cbis_ddsm_sample_is_found_by_series(shared_data: Path) -> None:
    # the 8 sample files are full mammograms of P_00173 and P_00820 whose ROI masks are not
    # in the sample: every one found, none locatable
    cases = shared_data / "annotation-formats" / "cbis-ddsm"
    found = cbis_lesion_boxes(
        sorted(cases.glob("*_case_description_test_set.csv")), shared_data / "cbis-ddsm-sample"
    )
    assert len(found.unlocated) == 8 and not found.lesions
    assert found.rows_without_image == 378 + 326 - 10  # P_00173's 6 rows, P_00820's 4


def test_an_error_naming_brackets_is_printed_as_it_is(tmp_path: Path) -> None:
    # VinDr-Mammo's categories are Python-list strings: the message quotes one, and Rich
    # markup must not eat its brackets
    results, _ = _write(tmp_path)
    path = tmp_path / "finding_annotations.csv"
    path.write_text(
        "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
        "breast_density,finding_categories,finding_birads,xmin,ymin,xmax,ymax,split\n"
        's1,r1,a1,R,CC,10,10,BI-RADS 4,DENSITY C,"[red]Mass",BI-RADS 4,1,1,5,5,test\n'
    )
    exit_code, output = _run(
        "--results", str(results), "--boxes", str(path), "--out", str(tmp_path / "r")
    )
    assert exit_code == 2
    assert "finding_categories '[red]Mass' is not a list" in " ".join(output.split())


def test_a_cbis_ddsm_mask_in_the_series_of_the_cropped_image_path_is_found(
    tmp_path: Path,
) -> None:
    # in about a hundred CBIS-DDSM rows the cropped image and ROI mask paths name two series;
    # a mask stored under the cropped image's series left its mammogram unlocated
    root = tmp_path / "CBIS-DDSM"
    full_series, crop_series, roi_series = generate_uid(), generate_uid(), generate_uid()
    case = "Mass-Test_P_00034_RIGHT_CC"
    uid = _dicom(root / case / "1-1.dcm", np.full((200, 160), 90), series=full_series, patient=case)
    mask = np.zeros((200, 160))
    mask[50:70, 30:60] = 255
    _dicom(root / f"{case}_1" / "a.dcm", mask, series=crop_series, patient=f"{case}_1")
    crop = np.full((20, 30), 200)
    _dicom(root / f"{case}_1" / "b.dcm", crop, series=roi_series, patient=f"{case}_1")
    row = (
        f"P_00034,2,RIGHT,CC,1,mass,OVAL,SPICULATED,5,MALIGNANT,5,{case}/s/{full_series}/"
        f"000000.dcm,{case}_1/s/{crop_series}/000000.dcm,{case}_1/s/{roi_series}/000000.dcm"
    )
    (tmp_path / "mass.csv").write_text(f"{_MASS_HEADER}\n{row}\n")
    found = cbis_lesion_boxes([tmp_path / "mass.csv"], root)
    assert found.unlocated == set()
    (lesion,) = found.lesions[uid]
    assert lesion.box == (30.0, 50.0, 60.0, 70.0)
