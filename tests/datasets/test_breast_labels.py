"""Public datasets' label files → breast labels, on each layout's quirks and on the real files
in ../shared/data/annotation-formats."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from mammocad.datasets.breast_labels import read_dataset_labels
from mammocad.structures import Laterality

L, R = Laterality.L, Laterality.R


def test_cbis_ddsm_a_breast_is_malignant_when_any_abnormality_is(
    cbis_case_descriptions: tuple[Path, Path],
) -> None:
    breasts = read_dataset_labels(cbis_case_descriptions).breasts
    assert set(breasts) == {("P_00001", L), ("P_00001", R), ("P_00002", R)}
    left = breasts[("P_00001", L)]  # a benign mass and a malignant calcification
    assert left.malignant and left.group == "density 2"
    right = breasts[("P_00001", R)]
    assert not right.malignant and right.group == "density 2"  # from "breast density"
    other = breasts[("P_00002", R)]
    assert other.malignant and other.group is None  # 0 is no BI-RADS density


def test_cmmd_clinical_data_as_workbook_or_csv(tmp_path: Path) -> None:
    header = ("ID1", "LeftRight", "Age", "number", "abnormality", "classification", "subtype")
    rows = [
        ("D1-0001", "R", 44, 2, "calcification", "Benign", None),
        ("D2-0001", "L", 50, 2, "both", "Malignant", "Luminal B"),
    ]
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (header, *rows):
        sheet.append(row)
    workbook.save(tmp_path / "clinical.xlsx")
    text = "\n".join(",".join("" if v is None else str(v) for v in row) for row in (header, *rows))
    (tmp_path / "clinical.csv").write_text(text + "\n")
    for name in ("clinical.xlsx", "clinical.csv"):
        breasts = read_dataset_labels([tmp_path / name]).breasts
        assert set(breasts) == {("D1-0001", R), ("D2-0001", L)}
        assert not breasts[("D1-0001", R)].malignant
        assert breasts[("D1-0001", R)].group == "calcification"
        assert breasts[("D2-0001", L)].malignant


def test_rsna_images_of_a_breast_share_its_outcome(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,"
        "density,machine_id,difficult_negative_case\n"
        "2,10006,462822612,L,CC,61,0,0,0,,0,,29,False\n"
        "2,10006,1459541791,L,MLO,61,0,0,0,,0,,29,False\n"
        "1,10038,1967300488,R,CC,60,1,1,1,0,0,B,49,False\n"
        "1,10038,2142944869,R,MLO,60,1,1,1,0,0,B,49,False\n"
    )
    breasts = read_dataset_labels([path]).breasts
    assert set(breasts) == {("10006", L), ("10038", R)}
    assert not breasts[("10006", L)].malignant and breasts[("10006", L)].group is None
    assert breasts[("10038", R)].malignant and breasts[("10038", R)].group == "density B"


def test_unknown_files_and_values_say_what_is_wrong(
    cbis_case_descriptions: tuple[Path, Path], tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,label\n1.2.3,1\n")
    with pytest.raises(ValueError, match=r"not a label file of a known dataset .*CMMD: ID1"):
        read_dataset_labels([labels])
    mass, _ = cbis_case_descriptions
    mass.write_text(mass.read_text().replace("BENIGN,4,b", "UNPROVEN,4,b"))
    with pytest.raises(ValueError, match="row 3: pathology 'UNPROVEN' is none of MALIGNANT"):
        read_dataset_labels([mass])
    rsna = tmp_path / "train.csv"
    rsna.write_text("patient_id,laterality,cancer\n1,BOTH,0\n")
    with pytest.raises(ValueError, match="row 2: side 'BOTH' is not L/LEFT or R/RIGHT"):
        read_dataset_labels([rsna])


def test_the_real_label_files(shared_data: Path) -> None:
    formats = shared_data / "annotation-formats"
    cbis = read_dataset_labels(
        sorted((formats / "cbis-ddsm").glob("*_case_description_*.csv"))
    ).breasts
    # the bundled sample's two patients (../shared/data/cbis-ddsm-sample): P_00173 benign
    # masses in both breasts, P_00820 a malignant left and a benign right mass
    assert not cbis[("P_00173", L)].malignant and not cbis[("P_00173", R)].malignant
    assert cbis[("P_00820", L)].malignant and not cbis[("P_00820", R)].malignant
    malignant = sum(breast.malignant for breast in cbis.values())
    assert len(cbis) == 1708 and malignant == 761  # counted with the csv module alone
    # the test split, as docs/study-metrics.md quotes it
    test = read_dataset_labels(sorted((formats / "cbis-ddsm").glob("*_test_set.csv"))).breasts
    assert (len(test), len({p for p, _ in test}), sum(b.malignant for b in test.values())) == (
        369,
        349,
        152,
    )
    cmmd = read_dataset_labels([formats / "cmmd" / "CMMD_clinicaldata_revision.xlsx"]).breasts
    assert len(cmmd) == 1872  # one row per breast: 1,775 women, 97 with both sides
    assert not cmmd[("D1-0001", R)].malignant
    assert sum(breast.malignant for breast in cmmd.values()) == 1316
    rsna = read_dataset_labels([formats / "rsna-2023" / "train_csv_header_and_3_rows.csv"]).breasts
    assert set(rsna) == {("10006", L), ("10006", R)}


def test_a_sites_own_labels_per_patient(tmp_path: Path) -> None:
    path = tmp_path / "breasts.csv"
    path.write_text("patient_id,laterality,label,group\nA-1,RIGHT,1,site 1\nA-1,L,0,site 1\n")
    breasts = read_dataset_labels([path]).breasts
    assert breasts[("A-1", R)].malignant and breasts[("A-1", R)].group == "site 1"
    assert not breasts[("A-1", L)].malignant
    path.write_text("patient_id,laterality,label\nA-1,R,maybe\n")
    with pytest.raises(ValueError, match="row 2: label 'maybe' is not 1 or 0"):
        read_dataset_labels([path])


def test_an_error_after_a_blank_line_names_the_row_of_the_file(tmp_path: Path) -> None:
    # blank rows are dropped before reading: the message must still name the row a user
    # counts to in the file (row 4 here, the header being row 1), not its place among the kept
    path = tmp_path / "breasts.csv"
    path.write_text("patient_id,laterality,label\nA-1,R,1\n\nA-2,R,maybe\n")
    with pytest.raises(ValueError, match="row 4: label 'maybe' is not 1 or 0"):
        read_dataset_labels([path])


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.csv: No such file"):
        read_dataset_labels([tmp_path / "missing.csv"])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("patient_id,laterality,label\nJosé,R,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv is not UTF-8 text"):
        read_dataset_labels([latin])
    broken = tmp_path / "clinical.xlsx"
    broken.write_bytes(b"not a workbook")
    with pytest.raises(ValueError, match=r"clinical\.xlsx is not a readable \.xlsx workbook"):
        read_dataset_labels([broken])
