"""Written files: every vendor variant reads back with pydicom to the ideal display image."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless

from mammocad.structures import ViewPosition
from mammocad.synthetic import (
    HOLOGIC_LIKE,
    ChestWallSide,
    PhantomStudy,
    PhotometricInterpretation,
    TagStyle,
    VoiKind,
    choose_variant,
    generate_study,
    read_truth,
    write_studies,
    write_study,
)
from mammocad.synthetic.writer import TRUTH_FILE

DisplayReader = Callable[[Path], np.ndarray]
SYNTAXES = [JPEG2000Lossless, JPEGLSLossless, RLELossless, ExplicitVRLittleEndian]
# every transfer syntax meets every VOI kind; bits, photometric and tag style rotate along
CASES = [
    (
        syntax,
        voi,
        (12, 14, 16)[(i + j) % 3],
        list(PhotometricInterpretation)[(i + j) % 2],
        list(TagStyle)[(i + 2 * j) % 3],
    )
    for i, syntax in enumerate(SYNTAXES)
    for j, voi in enumerate(VoiKind)
]


def _with_variant(study: PhantomStudy, **changes: object) -> PhantomStudy:
    variant = replace(study.truth.variant, **changes)  # type: ignore[arg-type]
    return replace(study, truth=replace(study.truth, variant=variant))


@pytest.mark.parametrize(("syntax", "voi", "bits", "photometric", "style"), CASES)
def test_variant_reads_back_to_the_display_image(
    malignant_study: PhantomStudy,
    display_reader: DisplayReader,
    tmp_path: Path,
    syntax: str,
    voi: VoiKind,
    bits: int,
    photometric: PhotometricInterpretation,
    style: TagStyle,
) -> None:
    study = _with_variant(
        malignant_study,
        transfer_syntax_uid=syntax,
        voi=voi,
        bits_stored=bits,
        photometric=photometric,
        tag_style=style,
    )
    folder = write_study(study, tmp_path / "study")
    truth = read_truth(folder / TRUTH_FILE)
    for view in truth.views[:2]:  # one CC and one MLO keep the matrix fast
        assert view.file_name is not None
        ds = pydicom.dcmread(folder / view.file_name)
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert ds.BitsStored == bits and ds.PhotometricInterpretation == photometric.value
        display = display_reader(folder / view.file_name)
        ideal = study.view(view.laterality, view.view).pixels
        error = np.abs(display - ideal)
        assert float(error.mean()) < 0.004, (syntax, voi, bits)
        assert float(np.percentile(error, 99.9)) < 0.02


def _code(ds: pydicom.Dataset) -> str | None:
    return ds.ViewCodeSequence[0].CodeValue if "ViewCodeSequence" in ds else None


@pytest.mark.parametrize("style", list(TagStyle))
def test_laterality_and_view_tags_follow_the_style(
    malignant_study: PhantomStudy, tmp_path: Path, style: TagStyle
) -> None:
    study = _with_variant(
        malignant_study, tag_style=style, transfer_syntax_uid=ExplicitVRLittleEndian
    )
    folder = write_study(study, tmp_path / "study")
    codes = {ViewPosition.CC: "399162004", ViewPosition.MLO: "399368009"}
    for view in read_truth(folder / TRUTH_FILE).views:
        assert view.file_name is not None
        ds = pydicom.dcmread(folder / view.file_name)
        assert ds.Modality == "MG" and ds.BodyPartExamined == "BREAST"
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.SOPInstanceUID == view.sop_instance_uid
        assert ds.StudyInstanceUID == study.truth.study_instance_uid
        assert [float(v) for v in ds.ImagerPixelSpacing] == [view.pixel_spacing_mm] * 2
        side = ds.get("ImageLaterality") or ds.get("Laterality")
        assert side == view.laterality.value
        assert ("ImageLaterality" in ds) == (style is not TagStyle.SERIES_LATERALITY)
        assert ds.get("ViewPosition") == (
            None if style is TagStyle.CODE_SEQUENCE_ONLY else view.view.value
        )
        assert _code(ds) == (None if style is TagStyle.SERIES_LATERALITY else codes[view.view])
        towards_nipple = "A" if view.chest_wall_side is ChestWallSide.LEFT else "P"
        assert ds.PatientOrientation[0] == towards_nipple


def test_truth_json_lists_every_file(malignant_study: PhantomStudy, tmp_path: Path) -> None:
    folder = write_study(malignant_study, tmp_path / "study")
    data = json.loads((folder / TRUTH_FILE).read_text())
    assert data["format"] == "mammocad-synthetic-truth"
    files = sorted(item["file"] for item in data["images"].values())
    assert files == sorted(p.name for p in folder.glob("*.dcm"))
    assert set(data["images"]) == {v.truth.sop_instance_uid for v in malignant_study.views}
    lesions = [lesion for image in data["images"].values() for lesion in image["lesions"]]
    assert lesions and all(len(lesion["box"]) == 4 for lesion in lesions)


def test_write_studies_is_deterministic(tmp_path: Path) -> None:
    first = write_studies(n_studies=2, out_dir=tmp_path / "a", seed=5)
    again = write_studies(n_studies=2, out_dir=tmp_path / "b", seed=5)
    assert [f.name for f in first] == [f.name for f in again]
    for a, b in zip(first, again, strict=True):
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        assert len(names) == 5
        for name in names:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_each_study_can_be_regenerated_from_its_truth_seed(tmp_path: Path) -> None:
    (folder,) = write_studies(n_studies=1, out_dir=tmp_path, seed=9)
    written = json.loads((folder / TRUTH_FILE).read_text())
    again = generate_study(seed=written["seed"], size=written["size"]).truth.to_dict()
    for image in written["images"].values():
        image["file"] = None
    assert again == written


@pytest.mark.slow
def test_full_size_study_writes_and_reads_back(
    display_reader: DisplayReader, tmp_path: Path
) -> None:
    # the heaviest case: the Hologic-like grid in JPEG 2000 at 16 bits
    variant = replace(
        choose_variant("full", np.random.default_rng(0)),
        grid=HOLOGIC_LIKE,
        transfer_syntax_uid=JPEG2000Lossless,
        bits_stored=16,
    )
    study = generate_study(seed=12, malignant=True, variant=variant)
    assert study.views[0].pixels.shape == (3328, 2560)
    folder = write_study(study, tmp_path / "full")
    for view in read_truth(folder / TRUTH_FILE).views:
        assert view.file_name is not None
        display = display_reader(folder / view.file_name)
        ideal = study.view(view.laterality, view.view).pixels
        assert float(np.abs(display - ideal).mean()) < 0.004
