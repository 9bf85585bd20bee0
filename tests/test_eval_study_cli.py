"""``mammocad eval study`` on hand-made results and on phantom truth."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.commands.eval_study import (
    breast_labels_from_dataset,
    breast_labels_from_phantoms,
    labels_from_phantoms,
    read_results,
    study_labels_from_breasts,
)
from mammocad.structures import Laterality
from mammocad.synthetic import read_truth, write_studies

# (uid, probability shown, unrounded, label). Unrounded, every malignant study outranks every
# benign one (AUC 1); rounded, 1.3 ties with the benign 1.2, so that pair counts ½ and the AUC
# users see is 3.5 / 4 = 0.875: rounding costs 0.125, which the report must show
ROWS = [
    ("1.1", 0.10, 0.101, 0),
    ("1.2", 0.31, 0.309, 0),
    ("1.3", 0.31, 0.312, 1),
    ("1.4", 0.80, 0.801, 1),
    ("1.5", None, None, 1),  # rejected: no probability, not in the AUC
]
# 1.2 lost an image it was sent, 1.4 was sent without one of the four views
PARTIAL = ("1.2", "1.4")


def _write_results(folder: Path) -> None:
    for uid, shown, raw, _ in ROWS:
        study = folder / uid
        study.mkdir(parents=True)
        result = {"study_instance_uid": uid, "malignancy_probability": shown}
        result["x_malignancy_probability_unrounded"] = raw
        result["status"] = (
            "rejected" if shown is None else "partial" if uid in PARTIAL else "complete"
        )
        images = [{"status": "processed"}]
        if shown is None or uid == "1.2":  # 1.2 has an image the service could not read
            images.append({"status": "rejected"})
        result["images"] = images
        result["model"] = {"risk": {"suspicion_thresholds": {"intermediate": 0.1, "high": 0.5}}}
        (study / "result.json").write_text(json.dumps(result))


def test_auc_and_rounding_loss_from_labels_csv(tmp_path: Path) -> None:
    _write_results(tmp_path / "results")
    labels = tmp_path / "labels.csv"
    lines = ["study_instance_uid,label,patient_id"]
    lines += [f"{uid},{label},p{k}" for k, (uid, *_, label) in enumerate(ROWS)]
    lines += ["1.9,1,p9"]  # labelled, never analysed: in no figure, which must be said
    labels.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app,
        ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels),
         "--out", str(tmp_path / "report"), "--bootstrap", "20"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "AUC 1.000 [" in output
    assert "users see 0.875 (lost to rounding: 0.1250" in output
    assert "1 rejected" in result.output
    assert "1 labelled studies have no result here (e.g. 1.9)" in output
    report = (tmp_path / "report" / "study_metrics.md").read_text()
    assert "AUC" in report
    assert (tmp_path / "report" / "study_metrics.csv").is_file()
    # the calibration test: all 5 labelled studies (3 malignant); at the results' high
    # threshold 0.5 one of the two scored malignant studies is found and both benign cleared;
    # the rejected study and the one with an unreadable image are technical defects; the
    # partial study of a view never sent is not
    assert "calibration test: 5 studies, 60.0% positive" in output
    assert "sensitivity 0.500 and specificity 1.000 at 0.5" in output
    assert "technical defects 40.0%" in output
    assert "not a qualifying set: 5 studies, the test needs at least 400" in output
    assert "## Calibration test" in report and "| share technical defects | 0.400 |" in report


def test_labels_from_phantom_truth(tmp_path: Path) -> None:
    folders = write_studies(n_studies=2, out_dir=tmp_path, seed=4, size="small")
    labels = labels_from_phantoms(tmp_path)
    for folder in folders:
        truth = read_truth(folder / "truth.json")
        assert labels[truth.study_instance_uid].malignant == truth.malignant


def test_exactly_one_label_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "study", "--results", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2


# (uid, laterality, probability shown, unrounded, label): the same rounding tie as ROWS, now
# between two breasts; a rejected breast and an unlabelled one are counted, not scored
BREASTS = [
    ("2.1", "R", 0.10, 0.101, 0),
    ("2.1", "L", 0.31, 0.312, 1),
    ("2.2", "R", 0.31, 0.309, 0),
    ("2.2", "L", 0.80, 0.801, 1),
    ("2.3", "R", None, None, 1),
    ("2.3", "L", 0.50, 0.5, None),
    ("2.4", "L", 0.20, 0.2, 0),
]


def _write_breast_results(folder: Path) -> None:
    for uid in sorted({row[0] for row in BREASTS}):
        breasts = [
            {"laterality": side, "malignancy_probability": shown,
             "x_malignancy_probability_unrounded": raw}
            for u, side, shown, raw, _ in BREASTS
            if u == uid
        ]  # fmt: skip
        (folder / uid).mkdir(parents=True)
        result = {"study_instance_uid": uid, "malignancy_probability": 0.5, "breasts": breasts}
        (folder / uid / "result.json").write_text(json.dumps(result))


def test_breast_level_auc_and_rounding_from_labels_csv(tmp_path: Path) -> None:
    _write_breast_results(tmp_path / "results")
    labels = tmp_path / "breasts.csv"
    words = {"R": "RIGHT", "L": "l"}  # spelled as datasets do
    lines = ["study_instance_uid,laterality,label,patient_id"]
    lines += [
        f"{uid},{words[side]},{label},p{uid}"
        for uid, side, *_, label in BREASTS
        if label is not None
    ]
    lines.append("2.4,R,1,p2.4")  # labelled, but the result lists no right breast
    labels.write_text("\n".join(lines) + "\n")
    arguments = ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels)]
    arguments += ["--out", str(tmp_path / "report"), "--bootstrap", "20", "--level", "breast"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "5 breasts (2 malignant), 2 without a probability, 1 without a label" in output
    # 0.2 (benign) sits below both malignant breasts: the tie alone costs ½ of 6 pairs
    assert "AUC 1.000" in output and "users see 0.917 (lost to rounding: 0.0833)" in output
    report = (tmp_path / "report" / "breast_metrics.md").read_text()
    assert report.startswith("# Breast-level metrics") and "Calibration test" not in report


def test_breast_labels_need_a_laterality_we_can_read(tmp_path: Path) -> None:
    _write_breast_results(tmp_path / "results")
    labels = tmp_path / "breasts.csv"
    labels.write_text("study_instance_uid,laterality,label\n2.1,both,1\n")
    arguments = ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels)]
    result = CliRunner().invoke(
        app, [*arguments, "--out", str(tmp_path / "r"), "--level", "breast"]
    )
    assert result.exit_code == 2
    assert "row 2: side 'both' is not L/LEFT or R/RIGHT" in " ".join(result.output.split())


def test_a_label_that_is_not_1_or_0_is_refused_not_read_as_benign(tmp_path: Path) -> None:
    _write_results(tmp_path / "results")
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,label\n1.1,0\n1.2,1\n1.3,malignnat\n")
    arguments = ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels)]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "row 4: label 'malignnat' is not 1 or 0" in " ".join(result.output.split())


def test_breast_labels_from_phantom_truth(tmp_path: Path) -> None:
    folders = write_studies(n_studies=2, out_dir=tmp_path, seed=4, size="small")
    labels = breast_labels_from_phantoms(tmp_path)
    assert len(labels) == 4
    for folder in folders:
        truth = read_truth(folder / "truth.json")
        for side in (Laterality.R, Laterality.L):
            label = labels[(truth.study_instance_uid, side.value)]
            assert label.malignant == truth.breast(side).malignant


def _write_patient_results(folder: Path, patients: dict[str, dict[str, float]]) -> None:
    """One result per entry: its x_patient_id and breasts' unrounded probabilities."""
    for number, (patient, breasts) in enumerate(patients.items()):
        uid = f"3.{number}"
        (folder / uid).mkdir(parents=True)
        result = {
            "study_instance_uid": uid,
            "x_patient_id": patient,
            "malignancy_probability": 0.5,
            "breasts": [
                {
                    "laterality": side,
                    "malignancy_probability": round(value, 2),
                    "x_malignancy_probability_unrounded": value,
                }
                for side, value in breasts.items()
            ],
        }
        (folder / uid / "result.json").write_text(json.dumps(result))


def _eval_dataset(tmp_path: Path, label_files: tuple[Path, ...], *extra: str) -> tuple[int, str]:
    """``eval study --dataset-labels`` on ``tmp_path/results``, the report in
    ``tmp_path/report``."""
    arguments = ["eval", "study", "--results", str(tmp_path / "results")]
    for path in label_files:
        arguments += ["--dataset-labels", str(path)]
    arguments += ["--out", str(tmp_path / "report"), "--bootstrap", "20", *extra]
    result = CliRunner().invoke(app, arguments)
    return result.exit_code, " ".join(result.output.split())


def test_breast_labels_from_cbis_ddsm_case_descriptions(
    tmp_path: Path, cbis_case_descriptions: tuple[Path, Path]
) -> None:
    # P_00001: malignant left, benign right; P_00002: malignant right, its left not in CBIS-DDSM
    _write_patient_results(
        tmp_path / "results",
        {"P_00001": {"L": 0.9, "R": 0.2}, "P_00002": {"R": 0.4, "L": 0.3}, "P_09999": {"R": 0.1}},
    )
    exit_code, output = _eval_dataset(tmp_path, cbis_case_descriptions, "--level", "breast")
    assert exit_code == 0, output
    # the benign right breast of P_00001 (0.2) ranks below both malignant ones: AUC 1
    assert "3 breasts (2 malignant), 0 without a probability, 2 without a label" in output
    assert "AUC 1.000" in output
    report = (tmp_path / "report" / "breast_metrics.md").read_text()
    assert "| density 2 |" in report and "| unknown |" in report


def test_cbis_ddsm_views_read_as_studies_are_refused(
    tmp_path: Path, cbis_case_descriptions: tuple[Path, Path]
) -> None:
    # analysed by study, CBIS-DDSM's views are studies of their own: P_00001's left breast
    # would get two probabilities
    _write_patient_results(
        tmp_path / "results",
        {"Mass-Test_P_00001_LEFT_CC": {"L": 0.9}, "Mass-Test_P_00001_LEFT_MLO": {"L": 0.7}},
    )
    exit_code, output = _eval_dataset(tmp_path, cbis_case_descriptions, "--level", "breast")
    assert exit_code == 2
    assert "1 labelled patients are in several analysed studies (e.g. P_00001: 2" in output
    assert "--group-by patient" in output


def test_cbis_ddsm_studies_are_labelled_only_when_every_breast_is(
    tmp_path: Path, cbis_case_descriptions: tuple[Path, Path]
) -> None:
    # P_00001: malignant left, benign right, both listed; P_00002's left is not in CBIS-DDSM,
    # so its study may hold an unknown malignant breast
    results = tmp_path / "results"
    _write_patient_results(
        results, {"P_00001": {"L": 0.9, "R": 0.2}, "P_00002": {"R": 0.4, "L": 0.3}}
    )
    read = read_results(results)
    breasts = breast_labels_from_dataset(cbis_case_descriptions, read)
    studies = study_labels_from_breasts(breasts, read)
    assert set(studies) == {"3.0"} and studies["3.0"].malignant
    assert studies["3.0"].patient_id == "P_00001" and studies["3.0"].group == "density 2"


def test_results_without_a_patient_say_to_analyse_again(
    tmp_path: Path, cbis_case_descriptions: tuple[Path, Path]
) -> None:
    _write_breast_results(tmp_path / "results")  # no x_patient_id, as older results
    exit_code, output = _eval_dataset(tmp_path, cbis_case_descriptions, "--level", "breast")
    assert exit_code == 2
    assert "none of the 4 results" in output and "analyse again" in output


#: INbreast.csv as distributed (";", CRLF): 20586934 BI-RADS 5 (malignant), the rest 1-3
INBREAST_CSV = (
    "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\r\n"
    "removed;removed;L;CC;200902;20586934;2;5\r\n"
    "removed;removed;R;CC;200902;20586908;2;2\r\n"
    "removed;removed;R;CC;201001;22678622;4;1\r\n"
    "removed;removed;L;CC;201001;22678646;4;3\r\n"
    "removed;removed;R;CC;201001;22614097;3;1\r\n"
    "removed;removed;R;CC;201001;53582540;3;2\r\n"
)


def _write_image_results(folder: Path, studies: dict[str, list[tuple[str, str, float]]]) -> None:
    """One result per entry: its images (file name, side) and each side's probability."""
    for uid, images in studies.items():
        (folder / uid).mkdir(parents=True)
        result = {
            "study_instance_uid": uid,
            "malignancy_probability": 0.5,
            "images": [
                {"sop_instance_uid": f"{uid}.{k}", "source": name, "laterality": side}
                for k, (name, side, _) in enumerate(images)
            ],
            "breasts": [
                {"laterality": side, "malignancy_probability": round(value, 2),
                 "x_malignancy_probability_unrounded": value}
                for _, side, value in images
            ],
        }  # fmt: skip
        (folder / uid / "result.json").write_text(json.dumps(result))


def test_inbreast_labels_match_images_by_file_name(tmp_path: Path) -> None:
    # INbreast.csv labels images by File Name, the number its DICOM files' names start with
    (tmp_path / "INbreast.csv").write_text(INBREAST_CSV)
    _write_image_results(
        tmp_path / "results",
        {
            "5.1": [("20586934_6c613a14b80a8591_MG_L_CC_ANON.dcm", "L", 0.7),
                    ("20586908_6c613a14b80a8591_MG_R_CC_ANON.dcm", "R", 0.2)],
            "5.2": [("22678622_d71ba4bfa7a0ed5c_MG_R_CC_ANON.dcm", "R", 0.6),
                    ("22678646_d71ba4bfa7a0ed5c_MG_L_CC_ANON.dcm", "L", 0.1)],
            "5.3": [("99999999_0000_MG_R_CC_ANON.dcm", "R", 0.9)],
        },
    )  # fmt: skip
    exit_code, output = _eval_dataset(tmp_path, (tmp_path / "INbreast.csv",), "--level", "breast")
    assert exit_code == 0, output
    # the BI-RADS 5 breast (0.7) outranks the three BI-RADS 1-3 breasts: AUC 1; 5.3 unlabelled
    assert "4 breasts (1 malignant), 0 without a probability, 1 without a label" in output
    assert "AUC 1.000" in output
    assert "| ACR 4 |" in (tmp_path / "report" / "breast_metrics.md").read_text()


def test_mini_mias_films_analysed_one_per_study(shared_data: Path, tmp_path: Path) -> None:
    # as `analyze` on the bare PNGs writes them: one film per study, the other side listed
    # with no image and no probability (no unlabelled breast)
    films = {"mdb023": 0.4, "mdb028": 0.3, "mdb005": 0.2, "mdb006": 0.1}  # two malignant
    results = tmp_path / "results"
    for number, (film, value) in enumerate(films.items()):
        side, other = ("R", "L") if int(film[3:]) % 2 else ("L", "R")
        (results / f"7.{number}").mkdir(parents=True)
        result = {
            "study_instance_uid": f"7.{number}",
            "images": [{"sop_instance_uid": f"7.{number}.1", "source": f"mias/{film}.png",
                        "laterality": side}],
            "breasts": [
                {"laterality": side, "malignancy_probability": round(value, 2),
                 "x_malignancy_probability_unrounded": value},
                {"laterality": other, "malignancy_probability": None},
            ],
        }  # fmt: skip
        (results / f"7.{number}" / "result.json").write_text(json.dumps(result))
    exit_code, output = _eval_dataset(
        tmp_path, (shared_data / "mini-mias" / "Info.txt",), "--level", "breast"
    )
    assert exit_code == 0, output
    assert "4 breasts (2 malignant), 0 without a probability, 0 without a label" in output
    assert "AUC 1.000" in output


def test_study_level_from_image_labels(tmp_path: Path) -> None:
    # INbreast: a study is malignant when a breast is, labelled when every breast it has an
    # image of is; 8.3's left image is not in the label file
    (tmp_path / "INbreast.csv").write_text(INBREAST_CSV)
    studies = {
        "8.1": (0.7, [("20586934_a_MG_L_CC_ANON.dcm", "L"), ("20586908_a_MG_R_CC_ANON.dcm", "R")]),
        "8.2": (0.2, [("22678622_b_MG_R_CC_ANON.dcm", "R"), ("22678646_b_MG_L_CC_ANON.dcm", "L")]),
        "8.3": (0.9, [("22614097_c_MG_R_CC_ANON.dcm", "R"), ("99999999_c_MG_L_CC_ANON.dcm", "L")]),
        "8.4": (0.3, [("53582540_d_MG_R_CC_ANON.dcm", "R")]),
    }
    for uid, (probability, images) in studies.items():
        (tmp_path / "results" / uid).mkdir(parents=True)
        result = {
            "study_instance_uid": uid, "malignancy_probability": probability,
            "x_malignancy_probability_unrounded": probability, "status": "complete",
            "images": [{"sop_instance_uid": f"{uid}.{k}", "source": name, "laterality": side}
                       for k, (name, side) in enumerate(images)],
        }  # fmt: skip
        (tmp_path / "results" / uid / "result.json").write_text(json.dumps(result))
    exit_code, output = _eval_dataset(tmp_path, (tmp_path / "INbreast.csv",))
    assert exit_code == 0, output
    assert "3 studies (1 malignant), 0 rejected, 1 without a label" in output
    assert "AUC 1.000" in output
    assert "| ACR 2 |" in (tmp_path / "report" / "study_metrics.md").read_text()


def test_subgroups_by_manufacturer(tmp_path: Path) -> None:
    # two GE studies, two Hologic ones, one mixed and one without a Manufacturer (a PNG)
    vendors = {
        "9.1": ["GE MEDICAL SYSTEMS"] * 2, "9.2": ["GE MEDICAL SYSTEMS"] * 2,
        "9.3": ["HOLOGIC, Inc."] * 2, "9.4": ["HOLOGIC, Inc."] * 2,
        "9.5": ["GE MEDICAL SYSTEMS", "HOLOGIC, Inc."], "9.6": [None, None],
    }  # fmt: skip
    rows = ["study_instance_uid,label"]
    for number, (uid, makers) in enumerate(vendors.items()):
        (tmp_path / "results" / uid).mkdir(parents=True)
        result = {
            "study_instance_uid": uid, "malignancy_probability": 0.1 * (number + 1),
            "images": [{"sop_instance_uid": f"{uid}.{k}", "laterality": side, "manufacturer": m}
                       for k, (side, m) in enumerate(zip("RL", makers, strict=True))],
            "breasts": [{"laterality": "R", "malignancy_probability": 0.1 * (number + 1)},
                        {"laterality": "L", "malignancy_probability": 0.05}],
        }  # fmt: skip
        (tmp_path / "results" / uid / "result.json").write_text(json.dumps(result))
        rows.append(f"{uid},{number % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    base = ["eval", "study", "--results", str(tmp_path / "results"), "--bootstrap", "20"]
    run = CliRunner().invoke(
        app, [*base, "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "s"),
              "--subgroups", "manufacturer"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    report = (tmp_path / "s" / "study_metrics.md").read_text()
    for row in ("| GE MEDICAL SYSTEMS | 2 |", "| HOLOGIC, Inc. | 2 |", "| mixed | 1 |"):
        assert row in report
    assert "| unknown | 1 |" in report
    # per breast: the right breast of 9.5 is GE's, its left Hologic's
    breast_rows = ["study_instance_uid,laterality,label"]
    breast_rows += [f"{uid},{side},{int(side == 'R' and uid in ('9.2', '9.4', '9.6'))}"
                    for uid in vendors for side in "RL"]  # fmt: skip
    (tmp_path / "breasts.csv").write_text("\n".join(breast_rows) + "\n")
    run = CliRunner().invoke(
        app, [*base, "--labels", str(tmp_path / "breasts.csv"), "--out", str(tmp_path / "b"),
              "--level", "breast", "--subgroups", "manufacturer"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    report = (tmp_path / "b" / "breast_metrics.md").read_text()
    assert "| GE MEDICAL SYSTEMS | 5 |" in report and "| HOLOGIC, Inc. | 5 |" in report
    assert "| mixed |" not in report


def _write_rejected(
    folder: Path, uid: str, images: list[dict[str, str | None]], **extra: str
) -> None:
    """A rejected result: no probability, its images rejected before their side was read."""
    (folder / uid).mkdir(parents=True)
    result = {
        "study_instance_uid": uid, "status": "rejected", "malignancy_probability": None,
        "images": [{"sop_instance_uid": f"{uid}.{k}", "status": "rejected", **image}
                   for k, image in enumerate(images)],
        "breasts": [{"laterality": side, "malignancy_probability": None} for side in "RL"],
        **extra,
    }  # fmt: skip
    (folder / uid / "result.json").write_text(json.dumps(result))


def test_rejected_studies_without_a_side_keep_their_patients_labels(tmp_path: Path) -> None:
    # a rejected study has no image of known side; its patient's breasts are labelled: it is
    # a technical defect of the calibration test, as with --labels, not a study without a label
    results = tmp_path / "results"
    _write_patient_results(results, {"P1": {"R": 0.8, "L": 0.1}, "P2": {"R": 0.2, "L": 0.1}})
    _write_rejected(results, "4.3", [], x_patient_id="P3")  # right breast malignant
    _write_rejected(results, "4.4", [{"laterality": None}], x_patient_id="P4")  # both benign
    _write_rejected(results, "4.5", [], x_patient_id="P5")  # only the left labelled, benign
    rows = ["patient_id,laterality,label", "P1,R,1", "P1,L,0", "P2,R,0", "P2,L,0"]
    rows += ["P3,R,1", "P3,L,0", "P4,R,0", "P4,L,0", "P5,L,0"]
    (tmp_path / "patients.csv").write_text("\n".join(rows) + "\n")
    read = read_results(results)
    studies = study_labels_from_breasts(
        breast_labels_from_dataset([tmp_path / "patients.csv"], read), read
    )
    assert studies["4.3"].malignant and studies["4.3"].patient_id == "P3"
    assert not studies["4.4"].malignant
    assert "4.5" not in studies  # its right breast may be the malignant one it was sent
    exit_code, output = _eval_dataset(tmp_path, (tmp_path / "patients.csv",))
    assert exit_code == 0, output
    assert "2 studies (1 malignant), 2 rejected, 1 without a label" in output
    assert "technical defects 50.0%" in output


def test_rejected_film_without_a_side_is_matched_by_file_name(tmp_path: Path) -> None:
    # bare files rejected before their side was read: the label file names their breast
    (tmp_path / "INbreast.csv").write_text(INBREAST_CSV)
    results = tmp_path / "results"
    _write_image_results(results, {"8.1": [("20586908_a_MG_R_CC_ANON.dcm", "R", 0.2)]})
    for uid, name in (
        ("8.5", "20586934_e_MG_L_CC_ANON.dcm"),  # BI-RADS 5
        ("8.6", "22678622_f_MG_R_CC_ANON.dcm"),  # BI-RADS 1: its one breast is labelled
        ("8.7", "99999999_g_MG_R_CC_ANON.dcm"),  # not in the label file
    ):
        _write_rejected(results, uid, [{"source": name, "laterality": None}])
    read = read_results(results)
    breasts = breast_labels_from_dataset([tmp_path / "INbreast.csv"], read)
    assert breasts[("8.5", "L")].malignant and not breasts[("8.6", "R")].malignant
    studies = study_labels_from_breasts(breasts, read)
    assert studies["8.5"].malignant and not studies["8.6"].malignant
    assert set(studies) == {"8.1", "8.5", "8.6"}
    # a study with a known side keeps the rule: every breast it has an image of is labelled
    _write_rejected(results, "8.8", [{"source": "20586934_h_MG_L_CC_ANON.dcm",
                                      "laterality": None}, {"laterality": "R"}])  # fmt: skip
    read = read_results(results)
    studies = study_labels_from_breasts(
        breast_labels_from_dataset([tmp_path / "INbreast.csv"], read), read
    )
    assert "8.8" not in studies


def test_a_breast_of_two_densities_is_mixed_whatever_the_image_order(tmp_path: Path) -> None:
    # 20586908 (ACR 2) and 22614097 (ACR 3) as one right breast: the first image's density
    # won before, so the breast's group hung on the order the images were listed in
    (tmp_path / "INbreast.csv").write_text(INBREAST_CSV)
    films = [("20586908_a_MG_R_CC_ANON.dcm", "R", 0.1), ("22614097_b_MG_R_MLO_ANON.dcm", "R", 0.1)]
    for uid, images in (("10.1", films), ("10.2", films[::-1])):
        _write_image_results(tmp_path / uid, {uid: images})
        read = read_results(tmp_path / uid)
        breasts = breast_labels_from_dataset([tmp_path / "INbreast.csv"], read)
        assert breasts[(uid, "R")].group == "mixed"


def test_a_breast_never_sent_is_not_rejected(tmp_path: Path) -> None:
    # labels per patient name both breasts, results list both: a one-breast study's other
    # breast has no probability because it was never sent, not because it was rejected
    results = tmp_path / "results"
    for uid, patient, value, status in (
        ("11.1", "P1", 0.8, "processed"),  # left only, malignant
        ("11.2", "P2", 0.1, "processed"),  # left only, benign
        ("11.3", "P3", None, "rejected"),  # left only, rejected: that breast is a defect
    ):
        (results / uid).mkdir(parents=True)
        result = {
            "study_instance_uid": uid, "x_patient_id": patient, "malignancy_probability": value,
            "images": [{"sop_instance_uid": f"{uid}.1", "laterality": "L", "status": status}],
            "breasts": [{"laterality": "R", "malignancy_probability": None},
                        {"laterality": "L", "malignancy_probability": value}],
        }  # fmt: skip
        (results / uid / "result.json").write_text(json.dumps(result))
    rows = ["patient_id,laterality,label", "P1,L,1", "P1,R,0", "P2,L,0", "P2,R,0"]
    rows += ["P3,L,0", "P3,R,0"]
    (tmp_path / "patients.csv").write_text("\n".join(rows) + "\n")
    exit_code, output = _eval_dataset(tmp_path, (tmp_path / "patients.csv",), "--level", "breast")
    assert exit_code == 0, output
    assert "2 breasts (1 malignant), 1 without a probability, 0 without a label" in output


def test_label_columns_typed_otherwise_are_named_in_the_refusal(tmp_path: Path) -> None:
    # a site's sheet headed "Study_Instance_UID,Label": the refusal said which columns it
    # needs but not what it found, so the case difference went unnoticed
    _write_results(tmp_path / "results")
    labels = tmp_path / "labels.csv"
    labels.write_text("Study_Instance_UID,Label\n1.1,0\n")
    result = CliRunner().invoke(
        app,
        ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels),
         "--out", str(tmp_path / "report")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "its header names: Label, Study_Instance_UID" in " ".join(result.output.split())


def test_an_auc_without_its_interval_says_so(tmp_path: Path) -> None:
    # without bootstrap the interval is [nan, nan], which Rich took for a style tag and
    # dropped from the printed line without a word
    _write_results(tmp_path / "results")
    labels = tmp_path / "labels.csv"
    rows = [f"{uid},{label}" for uid, *_, label in ROWS]
    labels.write_text("study_instance_uid,label\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(
        app,
        ["eval", "study", "--results", str(tmp_path / "results"), "--labels", str(labels),
         "--out", str(tmp_path / "report"), "--bootstrap", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "AUC 1.000 [nan, nan];" in " ".join(result.output.split())
