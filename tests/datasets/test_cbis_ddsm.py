"""CBIS-DDSM case descriptions → breast labels, on the layout's quirks and on the real CSVs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.datasets.cbis_ddsm import read_breast_pathology
from mammocad.structures import Laterality


def test_a_breast_is_malignant_when_any_abnormality_is(
    cbis_case_descriptions: tuple[Path, Path],
) -> None:
    breasts = read_breast_pathology(cbis_case_descriptions)
    assert set(breasts) == {("P_00001", Laterality.L), ("P_00001", Laterality.R),
                            ("P_00002", Laterality.R)}  # fmt: skip
    left = breasts[("P_00001", Laterality.L)]  # a benign mass and a malignant calcification
    assert left.malignant and left.abnormality_types == {"mass", "calcification"}
    assert left.density == "2"
    right = breasts[("P_00001", Laterality.R)]
    assert not right.malignant and right.density == "2"  # read from "breast density"
    other = breasts[("P_00002", Laterality.R)]
    assert other.malignant and other.density is None  # 0 is no BI-RADS density


def test_files_that_are_not_case_descriptions_say_what_is_missing(
    cbis_case_descriptions: tuple[Path, Path], tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,label\n1.2.3,1\n")
    with pytest.raises(ValueError, match="not a CBIS-DDSM case description"):
        read_breast_pathology([labels])
    mass, _ = cbis_case_descriptions
    mass.write_text(mass.read_text().replace("BENIGN,4,b", "UNPROVEN,4,b"))
    with pytest.raises(ValueError, match="pathology 'UNPROVEN' is none of MALIGNANT"):
        read_breast_pathology([mass])


def test_the_real_case_descriptions(shared_data: Path) -> None:
    folder = shared_data / "annotation-formats" / "cbis-ddsm"
    breasts = read_breast_pathology(sorted(folder.glob("*_case_description_*.csv")))
    # the bundled sample's two patients (../shared/data/cbis-ddsm-sample): P_00173 benign
    # masses in both breasts, P_00820 a malignant left and a benign right mass
    assert not breasts[("P_00173", Laterality.L)].malignant
    assert not breasts[("P_00173", Laterality.R)].malignant
    assert breasts[("P_00820", Laterality.L)].malignant
    assert not breasts[("P_00820", Laterality.R)].malignant
    malignant = sum(breast.malignant for breast in breasts.values())
    assert 1000 < len(breasts) < 2000 and 0.3 < malignant / len(breasts) < 0.6
    assert {breast.density for breast in breasts.values()} <= {"1", "2", "3", "4", None}
