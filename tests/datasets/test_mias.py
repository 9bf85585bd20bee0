from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.datasets.mias import ANNOTATED_LABELS, ImageLabel, image_labels, load_mias
from mammocad.datasets.records import AnnotatedImage
from mammocad.structures import FindingLabel, Laterality


@pytest.fixture(scope="module")
def records(shared_data: Path) -> dict[str, AnnotatedImage]:
    return {record.image_id: record for record in load_mias(shared_data / "mini-mias")}


def test_every_image_with_a_row_is_loaded(
    records: dict[str, AnnotatedImage], shared_data: Path
) -> None:
    pictures = {path.stem for path in (shared_data / "mini-mias").glob("mdb*.png")}
    assert set(records) == pictures


def test_rows_are_measured_from_the_bottom(records: dict[str, AnnotatedImage]) -> None:
    # "mdb015 G CIRC B 595 864 68": a bright mass near the TOP of the stored picture
    (lesion,) = records["mdb015"].lesions
    assert lesion.label is FindingLabel.MASS
    assert lesion.malignant is False
    assert lesion.box == (527.0, 92.0, 663.0, 228.0)


def test_sides_and_patient_pairs(records: dict[str, AnnotatedImage]) -> None:
    assert records["mdb005"].laterality is Laterality.R
    assert records["mdb004"].laterality is Laterality.L
    assert records["mdb005"].patient_id == records["mdb006"].patient_id
    assert records["mdb004"].patient_id != records["mdb005"].patient_id


def test_unlocalised_abnormalities_are_not_lesion_free(records: dict[str, AnnotatedImage]) -> None:
    for ref in ("mdb059", "mdb216"):
        if ref in records:
            assert not records[ref].fully_localised
            assert records[ref].malignant is None or records[ref].malignant is True


def test_several_rows_give_several_lesions(records: dict[str, AnnotatedImage]) -> None:
    assert len(records["mdb005"].lesions) == 2
    assert records["mdb005"].annotated_labels == ANNOTATED_LABELS
    assert "lymph_node" not in ANNOTATED_LABELS


def test_film_labels_count_unlocated_rows(shared_data: Path) -> None:
    labels = image_labels(shared_data / "mini-mias")
    # "mdb059 F CIRC B" has no coordinates, "mdb216 D CALC M *NOTE 3*" neither
    assert labels["mdb059"] == ImageLabel(abnormal=True, malignant=False)
    assert labels["mdb216"] == ImageLabel(abnormal=True, malignant=True)
    assert labels["mdb003"] == ImageLabel(abnormal=False, malignant=False)
    assert labels["mdb015"] == ImageLabel(abnormal=True, malignant=False)
