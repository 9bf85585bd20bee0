"""Study assembly from folders and zip archives: grouping, order, duplicates, every input kept."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

import mammocad.io.assemble as assemble
from mammocad.errors import RejectionCode
from mammocad.io import GroupBy, IngestResult, iter_studies, load_studies, read_raster
from mammocad.report.dicom.headers import read_header
from mammocad.structures import Laterality, Study, StudyStatus, TagSource, ViewPosition

if TYPE_CHECKING:
    from conftest import DicomFactory

FOUR_VIEWS = [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")]


def _views(image_list: list[Any]) -> list[tuple[str | None, str | None]]:
    return [
        (i.laterality.value if i.laterality else None, i.view.value if i.view else None)
        for i in image_list
    ]


def _study_files(
    mg: DicomFactory, folder: Path, views: list[tuple[str, str]], **attributes: Any
) -> dict[tuple[str, str], Path]:
    """One DICOM file per view of one study, in assorted transfer syntaxes."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    syntaxes = [None, JPEGLSLossless, JPEG2000Lossless, RLELossless]
    files = {}
    for number, (side, view) in enumerate(views):
        ds = mg.mg_dataset(
            mg.phantom(seed=number),
            StudyInstanceUID=study_uid,
            ImageLaterality=side,
            ViewPosition=view,
            WindowCenter=2000,
            WindowWidth=3000,
            **attributes,
        )
        syntax = syntaxes[number % len(syntaxes)]
        encoded = mg.encode(ds, syntax) if syntax else ds
        path = folder / f"IMG{number:04d}.dcm"
        path.write_bytes(mg.to_bytes(encoded))
        files[(side, view)] = path
    return files


@pytest.fixture
def batch(tmp_path: Path, mg: DicomFactory) -> dict[str, Any]:
    """A messy delivery: two studies, a duplicate, junk, a raster with sidecar, a bad file."""
    root = tmp_path / "delivery"
    complete = _study_files(mg, root / "P1" / "exam", FOUR_VIEWS, PatientID="P1")
    partial = _study_files(mg, root / "P2", [("L", "CC"), ("L", "MLO")], PatientID="P2")
    raw_processing = mg.mg_dataset(
        StudyInstanceUID=mg.reread(_first(partial)).StudyInstanceUID,
        ImageLaterality="R",
        ViewPosition="CC",
        PresentationIntentType="FOR PROCESSING",
        PatientID="P2",
    )
    (root / "P2" / "raw_rcc.dcm").write_bytes(mg.to_bytes(raw_processing))
    duplicate = root / "copies" / "again.dcm"
    duplicate.parent.mkdir()
    duplicate.write_bytes(complete[("L", "CC")].read_bytes())
    no_study = mg.mg_dataset()
    del no_study.StudyInstanceUID
    (root / "copies" / "no_study.dcm").write_bytes(mg.to_bytes(no_study))
    (root / "README.txt").write_text("Delivery of two studies.\n")  # companion: passed over
    (root / "scan.bin").write_bytes(b"not an image at all" * 20)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    png = root / "film" / "mdb002.png"
    png.parent.mkdir()
    assert cv2.imwrite(str(png), (mg.phantom() >> 4).astype(np.uint8))
    sidecar = {"laterality": "L", "view": "MLO", "study_instance_uid": "1.2.3.4.5"}
    (root / "film" / "mdb002.png.json").write_text(json.dumps(sidecar))
    return {"root": root, "complete": complete, "duplicate": duplicate}


def _first(files: dict[tuple[str, str], Path]) -> Any:
    import pydicom

    return pydicom.dcmread(next(iter(files.values())))


def _by_patient(result: IngestResult) -> dict[str | None, Study]:
    return {study.patient_id: study for study in result.studies}


def test_folder_assembly(batch: dict[str, Any]) -> None:
    result = load_studies(batch["root"])
    studies = _by_patient(result)
    assert set(studies) == {"P1", "P2", None}
    complete = studies["P1"]
    assert complete.status is StudyStatus.COMPLETE
    assert _views(complete.images) == FOUR_VIEWS  # R before L, CC before MLO
    assert all(image.is_processed and image.pixels is not None for image in complete.images)
    assert [m.code for m in complete.messages] == ["duplicate_instance"]
    assert str(batch["duplicate"]) in complete.messages[0].text

    partial = studies["P2"]
    assert partial.status is StudyStatus.PARTIAL
    assert _views(partial.images) == [("R", "CC"), ("L", "CC"), ("L", "MLO")]
    notes = [m for m in partial.messages if m.code == "missing_view"]
    assert len(notes) == 2 and all(m.severity.value == "warning" for m in notes)
    assert "right CC image was rejected (for_processing)" in notes[0].text
    assert "No right MLO image" in notes[1].text

    film = studies[None]
    assert film.study_instance_uid == "1.2.3.4.5"
    assert _views(film.images) == [("L", "MLO")]
    assert film.images[0].laterality_source is TagSource.OTHER


def test_every_input_is_reported_once(batch: dict[str, Any]) -> None:
    result = load_studies(batch["root"])
    reported = [image.source for image in result.images()]
    expected = {
        str(path)
        for path in Path(batch["root"]).rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.parts)
        and not path.name.endswith(".json")  # a sidecar is part of its image
        and path.name != "README.txt"  # documents beside the images are not inputs
    }
    assert len(reported) == len(set(reported)) and set(reported) == expected
    unassigned = {Path(str(i.source)).name: i.rejection_code for i in result.unassigned}
    assert unassigned == {
        "scan.bin": RejectionCode.NOT_DICOM,
        "again.dcm": RejectionCode.DUPLICATE,
        "no_study.dcm": RejectionCode.MISSING_METADATA,
    }
    assert all(i.rejection_text and i.status.value == "rejected" for i in result.unassigned)


@pytest.mark.parametrize("zipped", [False, True])
def test_a_copy_cut_short_does_not_push_out_the_whole_one(
    tmp_path: Path, mg: DicomFactory, zipped: bool
) -> None:
    # the cut copy sorts first, as a half-finished re-transfer beside the original would
    files = _study_files(mg, tmp_path / "whole", [("L", "CC")])
    whole = files[("L", "CC")].read_bytes()
    root = tmp_path / "delivery"
    root.mkdir()
    if zipped:
        with zipfile.ZipFile(root / "exam.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("a_cut.dcm", whole[: len(whole) // 3])
            z.writestr("b_whole.dcm", whole)
    else:
        (root / "a_cut.dcm").write_bytes(whole[: len(whole) // 3])
        (root / "b_whole.dcm").write_bytes(whole)
    result = load_studies(root)
    (study,) = result.studies
    (image,) = study.images
    assert image.is_processed and str(image.source).endswith("b_whole.dcm")
    (skipped,) = result.unassigned
    assert str(skipped.source).endswith("a_cut.dcm")
    assert skipped.rejection_code is RejectionCode.DUPLICATE
    assert "b_whole.dcm (the larger file), which is read instead" in str(skipped.rejection_text)
    assert [m.code for m in study.messages if m.code != "missing_view"] == ["duplicate_instance"]


def _longer_pixel_data(mg: DicomFactory, ds: Any) -> bytes:
    ds.PixelData = ds.PixelData + bytes(4 * ds.Columns)  # two rows past the matrix
    return mg.to_bytes(ds)


def _header_claims_other_rows(mg: DicomFactory, ds: Any) -> bytes:
    ds.Rows = ds.Rows // 2  # the pixel data hold twice the matrix
    ds.ImageComments = "re-sent by the archive " * 4  # and the file grew
    return mg.to_bytes(ds)


def _cut_short_but_larger(mg: DicomFactory, ds: Any) -> bytes:
    ds.ImageComments = "x" * 4000  # a longer header, then the pixel data cut off
    return mg.to_bytes(ds)[:-2000]


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (_longer_pixel_data, RejectionCode.DECODE_FAILED),
        (_header_claims_other_rows, RejectionCode.DECODE_FAILED),
        (_cut_short_but_larger, RejectionCode.TRUNCATED_PIXEL_DATA),
    ],
    ids=["pixels_past_the_matrix", "rows_wrong", "cut_short_but_larger"],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_damaged_larger_copy_gives_way_to_the_good_one(
    tmp_path: Path, mg: DicomFactory, damage: Any, code: RejectionCode, workers: int
) -> None:
    # the larger copy is read first; when its file is rejected, the smaller one is the image
    ds = mg.mg_dataset(ImageLaterality="L", ViewPosition="CC")
    good, damaged = tmp_path / "a_good.dcm", tmp_path / "b_damaged.dcm"
    good.write_bytes(mg.to_bytes(ds))
    damaged.write_bytes(damage(mg, mg.reread(ds)))
    assert damaged.stat().st_size > good.stat().st_size
    stream = iter_studies(tmp_path, workers=workers)
    for _ in range(2):  # each iteration decodes again, and must tell the same story
        (study,) = list(stream)
        (image,) = study.images
        assert image.is_processed and image.pixels is not None
        assert image.source == str(good)
        (rejected,) = stream.unassigned
        assert rejected.source == str(damaged)
        assert rejected.rejection_code is code
        assert str(rejected.rejection_text).endswith(
            f"Another copy of this SOPInstanceUID, {good}, was read instead."
        )
        (note,) = [m for m in study.messages if m.code == "duplicate_instance"]
        assert note.text == (
            f"{good} repeats SOPInstanceUID {ds.SOPInstanceUID} of {damaged} (the larger file), "
            f"which was read first and rejected ({code.value}); this copy was read instead."
        )
        reported = [
            str(i.source)
            for i in IngestResult(studies=[study], unassigned=stream.unassigned).images()
        ]
        assert sorted(reported) == [str(good), str(damaged)]


def test_copies_are_tried_larger_first_until_one_is_read(tmp_path: Path, mg: DicomFactory) -> None:
    ds = mg.mg_dataset()
    files = {
        "a_good.dcm": mg.to_bytes(ds),
        "b_spare.dcm": mg.to_bytes(ds)[:-100],  # smaller still: not read
        "c_longer.dcm": _longer_pixel_data(mg, mg.reread(ds)),
        "d_cut.dcm": _cut_short_but_larger(mg, mg.reread(ds)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = load_studies(tmp_path)
    (study,) = result.studies
    assert [i.source for i in study.images] == [str(tmp_path / "a_good.dcm")]
    unassigned = {Path(str(i.source)).name: i for i in result.unassigned}
    assert {name: i.rejection_code for name, i in unassigned.items()} == {
        "b_spare.dcm": RejectionCode.DUPLICATE,
        "c_longer.dcm": RejectionCode.DECODE_FAILED,
        "d_cut.dcm": RejectionCode.TRUNCATED_PIXEL_DATA,
    }
    assert "a_good.dcm (the larger file), which is read instead" in str(
        unassigned["b_spare.dcm"].rejection_text
    )
    notes = [m.text for m in study.messages if m.code == "duplicate_instance"]
    assert len(notes) == 2
    assert (
        f"of {tmp_path / 'd_cut.dcm'} (the larger file) and {tmp_path / 'c_longer.dcm'} "
        in notes[0]
    )
    assert "(truncated_pixel_data, decode_failed); this copy was read instead." in notes[0]


def test_when_every_copy_is_damaged_each_is_rejected_for_its_own_reason(
    tmp_path: Path, mg: DicomFactory
) -> None:
    ds = mg.mg_dataset()
    longer, cut = tmp_path / "a_longer.dcm", tmp_path / "b_cut.dcm"
    longer.write_bytes(_longer_pixel_data(mg, mg.reread(ds)))
    cut.write_bytes(_cut_short_but_larger(mg, mg.reread(ds)))
    result = load_studies(tmp_path)
    (study,) = result.studies
    (image,) = study.images  # the larger copy, read first, stands for the image
    assert image.source == str(cut) and image.rejection_code is RejectionCode.TRUNCATED_PIXEL_DATA
    (other,) = result.unassigned
    assert other.source == str(longer) and other.rejection_code is RejectionCode.DECODE_FAILED
    (note,) = [m for m in study.messages if m.code == "duplicate_instance"]
    assert note.text.startswith(f"SOPInstanceUID {ds.SOPInstanceUID} is in 2 files, each rejected")


def test_each_skipped_copy_names_the_copy_read(tmp_path: Path, mg: DicomFactory) -> None:
    # met smallest first, each copy pushed out the one before: the first named the second
    ds = mg.mg_dataset()
    for name, comment in (("a.dcm", "x"), ("b.dcm", "x" * 100), ("c.dcm", "x" * 200)):
        ds.ImageComments = comment
        (tmp_path / name).write_bytes(mg.to_bytes(ds))
    result = load_studies(tmp_path)
    assert [i.source for i in result.studies[0].images] == [str(tmp_path / "c.dcm")]
    for image in result.unassigned:
        assert f"of {tmp_path / 'c.dcm'} (the larger file), which is read instead" in str(
            image.rejection_text
        )


def test_copies_rejected_for_what_the_instance_is_are_read_once(
    tmp_path: Path, mg: DicomFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FOR PROCESSING is the instance's, so every copy would say the same: the other is not read
    ds = mg.mg_dataset(PresentationIntentType="FOR PROCESSING")
    (tmp_path / "a.dcm").write_bytes(mg.to_bytes(ds))
    ds.ImageComments = "a longer copy"
    (tmp_path / "b.dcm").write_bytes(mg.to_bytes(ds))
    decoded: list[str] = []
    real = assemble._read_entry

    def counting(entry: Any, options: Any) -> Any:
        decoded.append(entry.source.name)
        return real(entry, options)

    monkeypatch.setattr(assemble, "_read_entry", counting)
    result = load_studies(tmp_path)
    assert decoded == [str(tmp_path / "b.dcm")]
    (study,) = result.studies
    assert study.images[0].rejection_code is RejectionCode.FOR_PROCESSING
    (skipped,) = result.unassigned
    assert skipped.rejection_code is RejectionCode.DUPLICATE
    assert str(skipped.rejection_text).endswith("which is read instead; this copy was skipped.")


def test_zip_archive_members_are_read_in_memory(
    batch: dict[str, Any], tmp_path: Path, mg: DicomFactory
) -> None:
    archive = tmp_path / "exam.zip"
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("x.dcm", b"anything")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for (side, view), path in batch["complete"].items():
            zipped.write(path, f"exam/{side}{view}.dcm")
        zipped.writestr("__MACOSX/exam/._LCC.dcm", b"resource fork")
        zipped.writestr("exam/notes.txt", "radiographer notes")  # companion: passed over
        zipped.writestr("exam/scan.bin", b"not an image at all" * 20)
        zipped.write(inner, "exam/inner.zip")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:200])
    result = load_studies([archive, broken])
    assert len(result.studies) == 1
    study = result.studies[0]
    assert study.status is StudyStatus.COMPLETE
    assert [i.source for i in study.images] == [
        f"{archive}!exam/{side}{view}.dcm" for side, view in FOUR_VIEWS
    ]
    assert {str(i.source): i.rejection_code for i in result.unassigned} == {
        f"{archive}!exam/scan.bin": RejectionCode.NOT_DICOM,
        f"{archive}!exam/inner.zip": RejectionCode.NOT_DICOM,
        str(broken): RejectionCode.UNREADABLE,
    }


def test_zip_members_sharing_a_name_are_each_read(tmp_path: Path, mg: DicomFactory) -> None:
    # zip allows two members of one name (two studies' IM0001.dcm zipped together), but
    # ZipFile.open(name) gives the last of them: the first image was lost, and the second
    # reported as a duplicate of itself
    first = mg.mg_dataset(mg.phantom(seed=1), PatientID="PA")
    second = mg.mg_dataset(mg.phantom(seed=2), PatientID="PB", ImageLaterality="R")
    archive = tmp_path / "two_studies.zip"
    with zipfile.ZipFile(archive, "w") as zipped, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        for ds in (first, second):
            zipped.writestr("IM0001.dcm", mg.to_bytes(ds))
            zipped.writestr("truth.json", "{}")  # a companion, however many: passed over
    result = load_studies([archive])
    assert result.unassigned == []
    assert {
        study.study_instance_uid: [(i.source, i.status, i.sop_instance_uid) for i in study.images]
        for study in result.studies
    } == {
        first.StudyInstanceUID: [(f"{archive}!IM0001.dcm", "processed", first.SOPInstanceUID)],
        second.StudyInstanceUID: [(f"{archive}!IM0001.dcm#2", "processed", second.SOPInstanceUID)],
    }
    # the DICOM outputs re-read each header by the name the result shows
    for name, ds in ((f"{archive}!IM0001.dcm", first), (f"{archive}!IM0001.dcm#2", second)):
        header = read_header(name)
        assert header is not None and header.SOPInstanceUID == ds.SOPInstanceUID


def test_headers_are_scanned_before_any_decode(
    batch: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real = assemble._read_entry

    def counting(entry: Any, options: Any) -> Any:
        decoded.append(entry.source.name)
        return real(entry, options)

    monkeypatch.setattr(assemble, "_read_entry", counting)
    stream = iter_studies(batch["root"])
    assert len(stream) == 3 and len(stream.unassigned) == 3
    assert decoded == []  # nothing decoded yet: only headers were read
    first = next(iter(stream))
    assert len(decoded) == len(first.images)  # one study at a time


def test_threads_give_the_same_studies(batch: dict[str, Any]) -> None:
    serial = load_studies(batch["root"])
    threaded = load_studies(batch["root"], workers=2)
    assert [s.study_instance_uid for s in serial.studies] == [
        s.study_instance_uid for s in threaded.studies
    ]
    for one, two in zip(serial.studies, threaded.studies, strict=True):
        for a, b in zip(one.images, two.images, strict=True):
            assert a.source == b.source
            if a.pixels is not None:
                np.testing.assert_array_equal(a.pixels, b.pixels)


def test_group_by_patient_merges_studies(tmp_path: Path, mg: DicomFactory) -> None:
    left = _study_files(mg, tmp_path / "a", [("L", "CC"), ("L", "MLO")], PatientID="Z9")
    _study_files(mg, tmp_path / "b", [("R", "CC"), ("R", "MLO")], PatientID="Z9")
    by_study = load_studies(tmp_path)
    assert len(by_study.studies) == 2
    by_patient = load_studies(tmp_path, group_by=GroupBy.PATIENT)
    again = load_studies(tmp_path, group_by="patient")
    assert len(by_patient.studies) == 1
    study = by_patient.studies[0]
    assert study.status is StudyStatus.COMPLETE and study.patient_id == "Z9"
    assert [m.code for m in study.messages] == ["merged_studies"]
    assert study.study_instance_uid == again.studies[0].study_instance_uid  # deterministic
    originals = {image.study_instance_uid for image in study.images}
    assert len(originals) == 2 and _first(left).StudyInstanceUID in originals


def _codes(study: Study) -> list[str]:
    return [message.code for message in study.messages]


def test_views_stored_as_studies_of_one_patient_get_a_hint(
    tmp_path: Path, mg: DicomFactory
) -> None:
    _study_files(mg, tmp_path / "cc", [("L", "CC")], PatientID="Z9")
    _study_files(mg, tmp_path / "mlo", [("L", "MLO")], PatientID="Z9")
    _study_files(mg, tmp_path / "other", [("R", "CC")], PatientID="Y1")
    by_study = {s.study_instance_uid: s for s in load_studies(tmp_path).studies}
    hinted = [s for s in by_study.values() if "same_patient_studies" in _codes(s)]
    assert sorted(str(s.patient_id) for s in hinted) == ["Z9", "Z9"]
    text = next(m.text for m in hinted[0].messages if m.code == "same_patient_studies")
    assert "1 other study" in text and "--group-by patient" in text
    merged = load_studies(tmp_path, group_by="patient").studies
    assert not [s for s in merged if "same_patient_studies" in _codes(s)]


def test_full_studies_of_one_patient_get_no_hint(tmp_path: Path, mg: DicomFactory) -> None:
    four = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]
    _study_files(mg, tmp_path / "now", four, PatientID="Z9")
    _study_files(mg, tmp_path / "prior", four, PatientID="Z9")  # a prior examination
    assert not [s for s in load_studies(tmp_path).studies if "same_patient_studies" in _codes(s)]


def test_missing_input_and_bad_arguments(tmp_path: Path) -> None:
    result = load_studies(tmp_path / "nowhere")
    assert result.studies == []
    assert [i.rejection_code for i in result.unassigned] == [RejectionCode.UNREADABLE]
    with pytest.raises(ValueError, match="workers"):
        iter_studies(tmp_path, workers=0)
    with pytest.raises(ValueError):
        iter_studies(tmp_path, group_by="series")


@pytest.fixture(scope="module")
def cbis(shared_data: Path) -> IngestResult:
    """The eight CBIS-DDSM files, decoded once for all tests of this module."""
    return load_studies(shared_data / "cbis-ddsm-sample", group_by="patient", workers=2)


def test_cbis_ddsm_patients_form_two_complete_studies(cbis: IngestResult) -> None:
    assert sorted(str(s.patient_id) for s in cbis.studies) == ["P_00173", "P_00820"]
    for study in cbis.studies:
        assert study.status is StudyStatus.COMPLETE
        assert _views(study.images) == FOUR_VIEWS
        assert all(i.laterality_source is TagSource.LATERALITY for i in study.images)
        for image in study.images:
            assert image.pixels is not None and image.pixels.shape == (image.rows, image.columns)
            assert image.patient_id is not None
            side = {Laterality.L: "LEFT", Laterality.R: "RIGHT"}[image.laterality]  # type: ignore[index]
            assert image.patient_id.endswith(f"_{side}_{image.view.value}")  # type: ignore[union-attr]
            # digitised film without VOI: min-max mapping uses the whole range
            assert image.pixels.min() == 0.0 and image.pixels.max() == 1.0
    # the licence, README and SOURCE files beside the images are companions, not inputs
    assert cbis.unassigned == []


def test_cbis_ddsm_chest_wall_side_agrees_with_laterality(cbis: IngestResult) -> None:
    # these films are stored as displayed: a left breast has its chest wall on the left edge
    # (bright tissue there), a right breast on the right; a wrong laterality tag or a wrong
    # inversion in the display pipeline would break this
    for study in cbis.studies:
        for image in study.images:
            pixels = image.pixels[::16, ::16]  # type: ignore[index]
            quarter = pixels.shape[1] // 4
            left, right = float(pixels[:, :quarter].mean()), float(pixels[:, -quarter:].mean())
            brighter = Laterality.L if left > right else Laterality.R
            assert brighter is image.laterality and abs(left - right) > 0.15, image.source


def test_a_companion_named_explicitly_is_still_rejected(tmp_path: Path) -> None:
    notes = tmp_path / "report.txt"
    notes.write_text("radiology report, not an image\n")
    result = load_studies([notes])
    assert [i.rejection_code for i in result.unassigned] == [RejectionCode.NOT_DICOM]


def test_a_breast_whose_image_does_not_say_its_view(tmp_path: Path) -> None:
    # a bare PNG: its side given (or inferred later), its view unknown — the right breast's
    # CC and MLO are not absent but unknown, and the warning says so once
    path = tmp_path / "film.png"
    cv2.imwrite(str(path), np.full((64, 48), 128, np.uint8))
    image = read_raster(path, laterality=Laterality.R)
    assert image.is_processed and image.view is None
    study = Study(study_instance_uid="1.2", patient_id=None, images=[image])
    texts = [m.text for m in assemble.missing_view_messages(study)]
    assert len(texts) == 3
    assert texts[2].startswith("The right breast's image does not say the view")
    assert "its CC and MLO count as missing" in texts[2] and '"view" in a sidecar' in texts[2]
    # no image of the left breast at all: it is not read, not "read without" a view
    assert texts[:2] == [
        f"No left {view} image in this study: the left breast is not read, no image of it "
        "could be; add or resend its views if they exist."
        for view in ("CC", "MLO")
    ]


def test_a_breast_whose_every_image_was_rejected_is_not_read(tmp_path: Path) -> None:
    images = []
    for side, name in ((Laterality.R, "r"), (Laterality.L, "l")):
        for view in (ViewPosition.CC, ViewPosition.MLO):
            path = tmp_path / f"{name}{view.value}.png"
            cv2.imwrite(str(path), np.full((64, 48), 128, np.uint8))
            images.append(read_raster(path, laterality=side, view=view))
    for image in images[2:]:  # the left CC and MLO could not be read
        image.reject(RejectionCode.DECODE_FAILED, "cut short")
    study = Study(study_instance_uid="1.4", patient_id=None, images=images)
    assert [m.text for m in assemble.missing_view_messages(study)] == [
        f"The left {view} image was rejected (decode_failed): the left breast is not read, "
        "no image of it could be; add or resend its views if they exist."
        for view in ("CC", "MLO")
    ]
    images[3] = read_raster(tmp_path / "lMLO.png", laterality=Laterality.L, view=ViewPosition.MLO)
    texts = [m.text for m in assemble.missing_view_messages(study)]
    assert texts == [
        "The left CC image was rejected (decode_failed): the left breast is read without it; "
        "add the view if it exists."
    ]


def test_an_ml_view_stands_in_for_the_missing_mlo(tmp_path: Path) -> None:
    # INbreast's file names write its MLO views as ML: the warning names the ML image
    cv2.imwrite(str(tmp_path / "cc.png"), np.full((64, 48), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "ml.png"), np.full((64, 48), 120, np.uint8))
    images = [
        read_raster(tmp_path / "cc.png", laterality=Laterality.R, view=ViewPosition.CC),
        read_raster(tmp_path / "ml.png", laterality=Laterality.R, view=ViewPosition.ML),
    ]
    study = Study(study_instance_uid="1.3", patient_id=None, images=images)
    right = [m.text for m in assemble.missing_view_messages(study) if "right" in m.text]
    assert right == [
        "No right MLO image in this study: its ML image is read in its place (a 90° lateral "
        "view, not the screening MLO); if that image is an MLO, give View Position MLO."
    ]
