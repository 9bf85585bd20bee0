"""``mammocad preprocess`` end to end on a corpus of vendor quirks built from phantoms.

Every file of the corpus is one view of a small :mod:`mammocad.synthetic` study, written by
``write_study`` in a fixed vendor :class:`~mammocad.synthetic.Variant` and, where a quirk has
no variant of its own, edited with pydicom afterwards (a dropped tag, a For Processing or CT
copy, a cut file). The command runs once, through Typer's ``CliRunner``; the tests then read
what it wrote: ``summary.json``, ``<key>.json``, ``<key>.mask.png``, ``<key>.input.png``.

Truth comes from the phantom: laterality, view and chest-wall side from its ``ViewTruth``; the
tissue mask from a threshold of the clean display image (the same view rendered without
burned-in label or marker), since the phantom exposes no mask of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.errors import RejectionCode
from mammocad.preprocess import PreprocessParams
from mammocad.report.schema import validation_errors
from mammocad.structures import Laterality, TagSource, ViewPosition
from mammocad.synthetic import (
    SMALL,
    ChestWallSide,
    Defect,
    PhotometricInterpretation,
    TagStyle,
    Variant,
    ViewTruth,
    VoiKind,
    generate_study,
    read_truth,
    write_study,
)

# pydicom's note on reading the cut JPEG 2000 file: expected, the file is rejected
pytestmark = pytest.mark.filterwarnings("ignore:End of file reached before delimiter")

L, R = Laterality.L, Laterality.R
CC, MLO = ViewPosition.CC, ViewPosition.MLO
MG_FOR_PROCESSING = UID("1.2.840.10008.5.1.4.1.1.1.2.1")
# the clean phantom's background noise stays under ~0.03 (99.9th percentile); between that and
# the tissue lie only the pixels of its anti-aliased outline
TISSUE_LEVEL = 0.05
MIN_IOU = 0.9
TEXT_FILE = "notes.dat"

BASE = Variant(
    grid=SMALL,
    photometric=PhotometricInterpretation.MONOCHROME2,
    voi=VoiKind.WINDOW,
    bits_stored=12,
    transfer_syntax_uid=ExplicitVRLittleEndian,
    tag_style=TagStyle.FULL,
    right_chest_wall_left=False,
    burned_in_label=False,
    lead_marker=False,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySpec:
    """One phantom study: a seed, its vendor variant and defects per view."""

    seed: int
    variant: Variant = BASE
    defects: dict[tuple[Laterality, ViewPosition], tuple[Defect, ...]] = field(default_factory=dict)


STUDIES: dict[str, StudySpec] = {
    "plain": StudySpec(seed=101),
    "mono1-j2k": StudySpec(
        seed=102,
        variant=replace(
            BASE,
            photometric=PhotometricInterpretation.MONOCHROME1,
            voi=VoiKind.SIGMOID,
            transfer_syntax_uid=JPEG2000Lossless,
        ),
    ),
    "lut-jpegls": StudySpec(
        seed=103, variant=replace(BASE, voi=VoiKind.LUT, transfer_syntax_uid=JPEGLSLossless)
    ),
    "rle": StudySpec(seed=104, variant=replace(BASE, transfer_syntax_uid=RLELossless)),
    "series-laterality": StudySpec(
        seed=105, variant=replace(BASE, tag_style=TagStyle.SERIES_LATERALITY)
    ),
    "code-sequence": StudySpec(
        seed=106, variant=replace(BASE, tag_style=TagStyle.CODE_SEQUENCE_ONLY)
    ),
    "right-wall-left": StudySpec(seed=107, variant=replace(BASE, right_chest_wall_left=True)),
    "burned-in": StudySpec(seed=108, variant=replace(BASE, burned_in_label=True, lead_marker=True)),
    "noise": StudySpec(seed=109, defects={(L, CC): (Defect.NOISE,)}),
}


def _rescale(ds: Dataset) -> None:
    """Stored values unchanged, Modality LUT 0.5·x − 20, windows moved into its output units."""
    slope, intercept = 0.5, -20.0
    centres = ds.WindowCenter if ds["WindowCenter"].VM > 1 else [ds.WindowCenter]
    widths = ds.WindowWidth if ds["WindowWidth"].VM > 1 else [ds.WindowWidth]
    ds.WindowCenter = [float(c) * slope + intercept for c in centres]
    ds.WindowWidth = [float(w) * slope for w in widths]
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"


def _drop_laterality(ds: Dataset) -> None:
    for keyword in ("ImageLaterality", "Laterality"):
        if keyword in ds:
            delattr(ds, keyword)


def _for_processing(ds: Dataset) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MG_FOR_PROCESSING
    ds.PresentationIntentType = "FOR PROCESSING"


def _ct(ds: Dataset) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One corpus file ``<name>.dcm``: a view of a study, edited, maybe cut; what to expect."""

    name: str
    study: str
    laterality: Laterality
    view: ViewPosition
    edit: Callable[[Dataset], None] | None = None
    keep_bytes: float | None = None  # cut the file to this share of its bytes
    code: RejectionCode | None = None  # None: must be processed
    laterality_source: TagSource = TagSource.IMAGE_LATERALITY
    view_source: TagSource = TagSource.VIEW_POSITION


CASES: tuple[Case, ...] = (
    Case(name="mono1-sigmoid-j2k", study="mono1-j2k", laterality=L, view=MLO),
    Case(name="voi-lut-jpegls", study="lut-jpegls", laterality=R, view=MLO),
    Case(name="rescaled-rle", study="rle", laterality=L, view=CC, edit=_rescale),
    Case(
        name="series-laterality",
        study="series-laterality",
        laterality=R,
        view=MLO,
        laterality_source=TagSource.LATERALITY,
    ),
    Case(
        name="untagged-side",
        study="series-laterality",
        laterality=R,
        view=CC,
        edit=_drop_laterality,
        laterality_source=TagSource.IMAGE,
    ),
    Case(
        name="view-code-only",
        study="code-sequence",
        laterality=L,
        view=MLO,
        view_source=TagSource.VIEW_CODE_SEQUENCE,
    ),
    Case(name="right-wall-left", study="right-wall-left", laterality=R, view=CC),
    Case(name="right-wall-right", study="plain", laterality=R, view=CC),
    Case(name="burned-in-a", study="burned-in", laterality=L, view=MLO),
    Case(name="burned-in-b", study="burned-in", laterality=R, view=CC),
    Case(
        name="for-processing",
        study="plain",
        laterality=L,
        view=CC,
        edit=_for_processing,
        code=RejectionCode.FOR_PROCESSING,
    ),
    Case(
        name="ct",
        study="plain",
        laterality=R,
        view=MLO,
        edit=_ct,
        code=RejectionCode.NOT_MAMMOGRAPHY,
    ),
    Case(
        name="truncated-native",
        study="plain",
        laterality=L,
        view=MLO,
        keep_bytes=0.6,
        code=RejectionCode.TRUNCATED_PIXEL_DATA,
    ),
    Case(
        name="truncated-j2k",
        study="mono1-j2k",
        laterality=R,
        view=CC,
        keep_bytes=0.8,
        code=RejectionCode.TRUNCATED_PIXEL_DATA,
    ),
    Case(name="noise", study="noise", laterality=L, view=CC, code=RejectionCode.NO_TISSUE),
)
PROCESSED = [case for case in CASES if case.code is None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    folder: Path
    truth: dict[str, ViewTruth]  # case name → truth of its view
    tissue: dict[str, np.ndarray]  # processed case name → bool truth mask


def _clean_pixels(spec: StudySpec, laterality: Laterality, view: ViewPosition) -> np.ndarray:
    """The view rendered without burned-in marks (the anatomy does not depend on them)."""
    variant = replace(spec.variant, burned_in_label=False, lead_marker=False)
    study = generate_study(seed=spec.seed, variant=variant, defects=spec.defects)
    return study.view(laterality, view).pixels


def _write_case(case: Case, source: Path, corpus: Path) -> None:
    target = corpus / f"{case.name}.dcm"
    if case.edit is None:
        target.write_bytes(source.read_bytes())
    else:
        ds = pydicom.dcmread(source)
        case.edit(ds)
        ds.save_as(target, enforce_file_format=True)
    if case.keep_bytes is not None:
        raw = target.read_bytes()
        target.write_bytes(raw[: int(len(raw) * case.keep_bytes)])


def build_corpus(root: Path) -> Corpus:
    """Write every case into ``root/corpus`` (the studies go to ``root/studies``)."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    truth: dict[str, ViewTruth] = {}
    tissue: dict[str, np.ndarray] = {}
    for study_name, spec in STUDIES.items():
        study = generate_study(seed=spec.seed, variant=spec.variant, defects=spec.defects)
        folder = write_study(study, root / "studies" / study_name)
        written = read_truth(folder / "truth.json")
        for case in (c for c in CASES if c.study == study_name):
            view = written.view(case.laterality, case.view)
            assert view.file_name is not None
            _write_case(case, folder / view.file_name, corpus)
            truth[case.name] = view
            if case.code is None:
                pixels = study.view(case.laterality, case.view).pixels
                if view.burned_in:
                    pixels = _clean_pixels(spec, case.laterality, case.view)
                tissue[case.name] = pixels > TISSUE_LEVEL
    (corpus / TEXT_FILE).write_text("radiology report, not an image\n", encoding="utf-8")
    return Corpus(folder=corpus, truth=truth, tissue=tissue)


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    exit_code: int
    output: str
    out: Path
    listed: list[str]  # input file names, in summary.json order
    summary: dict[str, dict[str, Any]]  # input file name → its summary entry


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("quirks"))


@pytest.fixture(scope="module")
def run(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("preprocessed")
    result = CliRunner().invoke(app, ["preprocess", str(corpus.folder), "--out", str(out)])
    entries = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    names = [Path(entry["source"]).name for entry in entries]
    return Run(
        exit_code=result.exit_code,
        output=result.output,
        out=out,
        listed=names,
        summary=dict(zip(names, entries, strict=True)),
    )


def _document(run: Run, file_name: str) -> dict[str, Any]:
    key = run.summary[file_name]["key"]
    document: dict[str, Any] = json.loads((run.out / f"{key}.json").read_text(encoding="utf-8"))
    return document


def _picture(run: Run, file_name: str, suffix: str) -> np.ndarray:
    """``<key>.<suffix>.png`` of an input, as written (grey, uint8)."""
    path = run.out / f"{run.summary[file_name]['key']}.{suffix}.png"
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if picture is None:
        pytest.fail(f"{path.name} is missing or not a PNG")
    return np.asarray(picture)


def _codes(document: dict[str, Any]) -> set[str]:
    return {message["code"] for message in document.get("x_messages", [])}


def test_every_input_is_listed_once_and_the_command_succeeds(corpus: Corpus, run: Run) -> None:
    assert run.exit_code == 0, run.output
    inputs = sorted(path.name for path in corpus.folder.iterdir())
    assert sorted(run.listed) == inputs


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_status_and_rejection_code(case: Case, run: Run) -> None:
    entry = run.summary[f"{case.name}.dcm"]
    if case.code is None:
        assert (entry["status"], entry["rejection_code"]) == ("processed", None), entry["text"]
    else:
        assert (entry["status"], entry["rejection_code"]) == ("rejected", case.code.value)
        assert entry["text"], "a rejection must say what to do"


def test_text_file_is_rejected_as_not_dicom(run: Run) -> None:
    entry = run.summary[TEXT_FILE]
    assert (entry["status"], entry["rejection_code"]) == ("rejected", "not_dicom")
    document = _document(run, TEXT_FILE)
    assert document["rejection_code"] == "not_dicom"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_image_json_follows_the_schema(case: Case, run: Run) -> None:
    document = _document(run, f"{case.name}.dcm")
    assert validation_errors(document, image_only=True) == []
    assert document["status"] == run.summary[f"{case.name}.dcm"]["status"]


@pytest.mark.parametrize("case", PROCESSED, ids=lambda case: case.name)
def test_laterality_view_and_flip(case: Case, corpus: Corpus, run: Run) -> None:
    truth = corpus.truth[case.name]
    document = _document(run, f"{case.name}.dcm")
    assert (document["laterality"], document["laterality_source"]) == (
        truth.laterality.value,
        case.laterality_source.value,
    )
    assert (document["view"], document["view_source"]) == (
        truth.view.value,
        case.view_source.value,
    )
    # the model sees the chest wall on the left: mirror iff it is on the image's right
    assert document["flipped"] is (truth.chest_wall_side is ChestWallSide.RIGHT)
    inferred = "laterality_from_image" in _codes(document)
    assert inferred is (case.laterality_source is TagSource.IMAGE)


@pytest.mark.parametrize("case", PROCESSED, ids=lambda case: case.name)
def test_mask_is_on_the_original_grid_and_matches_the_phantom(
    case: Case, corpus: Corpus, run: Run
) -> None:
    truth = corpus.truth[case.name]
    mask = _picture(run, f"{case.name}.dcm", "mask")
    assert mask.shape == (truth.rows, truth.columns)
    assert set(np.unique(mask).tolist()) <= {0, 255}
    found, expected = mask > 0, corpus.tissue[case.name]
    iou = (found & expected).sum() / (found | expected).sum()
    assert iou >= MIN_IOU, f"tissue IoU {iou:.3f}"
    picture = _picture(run, f"{case.name}.dcm", "input")
    rows, columns = PreprocessParams().input_size
    assert picture.shape[0] == rows and picture.shape[1] > 2 * columns  # two channels side by side


@pytest.mark.parametrize("name", ["burned-in-a", "burned-in-b"])
def test_label_and_marker_stay_outside_the_mask(name: str, corpus: Corpus, run: Run) -> None:
    burned = corpus.truth[name].burned_in
    assert {item.kind.value for item in burned} == {"text", "marker"}
    mask = _picture(run, f"{name}.dcm", "mask") > 0
    for item in burned:
        x1, y1, x2, y2 = (round(v) for v in item.box)
        inside = mask[y1:y2, x1:x2].mean()
        assert inside < 0.02, f"{item.kind.value} box is {inside:.0%} inside the tissue mask"
