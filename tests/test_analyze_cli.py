"""``mammocad analyze`` end to end: a folder, a zip, garbage files, an untrained tiny bundle.

Untrained weights give arbitrary detections: enough for the contract (schema, every input
reported, overlays, statuses). Where boxes are checked against known truth, a detector
subclass reports a box chosen in ORIGINAL pixels through the model-input frame, so the test
depends on the coordinate mapping only, not on training.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import mammocad.commands.analyze as analyze_module
from mammocad.cli import app
from mammocad.commands.analyze import STAGING_FOLDER, print_summary, resolve_model, run_analyze
from mammocad.commands.eval_study import read_results
from mammocad.detect import Detections, load_bundle
from mammocad.detect.predict import Detector, ImagePrediction
from mammocad.errors import ModelBundleError, RejectionCode
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.preprocess import PreprocessParams
from mammocad.report.schema import validation_errors
from mammocad.structures import Laterality, PreprocessedImage, Study, ViewPosition
from mammocad.synthetic import read_truth, write_studies

MAX_SIDE = 2048  # render_overlay's default


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    folder: Path  # study A (four views) and two garbage files
    archive: Path  # study B without its left MLO, zipped
    complete_uid: str
    partial_uid: str
    expected_sources: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    exit_code: int
    output: str
    out: Path
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("inputs")
    study_a, study_b = write_studies(n_studies=2, out_dir=root / "written", seed=5, size="small")
    folder = root / "batch"
    study_a.rename(folder)
    rng = np.random.default_rng(0)
    (folder / "garbage.dcm").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "scan.bin").write_bytes(b"not an image at all\n")
    truth_b = read_truth(study_b / "truth.json")
    dropped = truth_b.view(Laterality.L, ViewPosition.MLO).file_name
    assert dropped is not None
    (study_b / dropped).unlink()
    archive = root / "study_b.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(study_b.iterdir()):
            handle.write(path, path.name)
    sources = {str(p) for p in folder.iterdir() if p.suffix != ".json"}
    sources |= {f"{archive}!{p.name}" for p in study_b.iterdir() if p.suffix == ".dcm"}
    return Inputs(
        folder=folder,
        archive=archive,
        complete_uid=read_truth(folder / "truth.json").study_instance_uid,
        partial_uid=truth_b.study_instance_uid,
        expected_sources=frozenset(sources),
    )


@pytest.fixture(scope="module")
def run(bundle: Path, inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("analyzed")
    threads = torch.get_num_threads()
    # one thread: two on two cores already busy (CI, a training run) were 15x slower here
    arguments = [str(inputs.folder), str(inputs.archive), "--out", str(out), "--model", str(bundle)]
    arguments += ["--threads", "1"]
    try:
        result = CliRunner().invoke(app, ["analyze", *arguments])
    finally:
        torch.set_num_threads(threads)  # from_bundle sets it process-wide
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return Run(exit_code=result.exit_code, output=result.output, out=out, summary=summary)


def _result(run: Run, uid: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run.out / uid / "result.json").read_text("utf-8"))
    return document


def test_every_input_is_reported_once_and_the_command_succeeds(inputs: Inputs, run: Run) -> None:
    assert run.exit_code == 0, run.output
    sources = [entry["source"] for entry in run.summary["inputs"]]
    assert sorted(sources) == sorted(inputs.expected_sources)
    assert {s["study_instance_uid"] for s in run.summary["studies"]} == {
        inputs.complete_uid,
        inputs.partial_uid,
    }
    assert run.summary["model"]["name"] == "tiny-test"


def test_garbage_files_are_rejected_with_a_code_and_a_sentence(inputs: Inputs, run: Run) -> None:
    entries = {Path(e["source"]).name: e for e in run.summary["inputs"]}
    for name in ("garbage.dcm", "scan.bin"):
        entry = entries[name]
        assert entry["status"] == "rejected" and entry["rejection_code"], entry
        assert entry["text"] and entry["result"] is None
        assert name in run.output  # the printed summary lists it


def test_results_follow_the_schema_with_the_right_status(inputs: Inputs, run: Run) -> None:
    complete, partial = _result(run, inputs.complete_uid), _result(run, inputs.partial_uid)
    assert validation_errors(complete) == [] and validation_errors(partial) == []
    assert complete["status"] == "complete" and partial["status"] == "partial"
    for breast in complete["breasts"]:  # the unrounded value `eval study --level breast` reads
        unrounded = breast["x_malignancy_probability_unrounded"]
        assert breast["malignancy_probability"] == round(unrounded, 2)
    assert [m["code"] for m in partial["messages"]].count("missing_view") == 1
    assert len(partial["images"]) == 3
    for result in (complete, partial):
        assert result["model"]["intended_use"]
        for image in result["images"]:
            for finding in image["findings"]:
                x1, y1, x2, y2 = finding["box"]
                assert 0 <= x1 < x2 <= image["columns"] and 0 <= y1 < y2 <= image["rows"]


def test_an_overlay_per_processed_image_on_the_original_grid(inputs: Inputs, run: Run) -> None:
    for uid in (inputs.complete_uid, inputs.partial_uid):
        for image in _result(run, uid)["images"]:
            path = run.out / uid / "overlays" / f"{image['sop_instance_uid']}.png"
            picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
            assert picture is not None, f"{path} missing"
            factor = min(1.0, MAX_SIDE / max(image["rows"], image["columns"]))
            expected = (round(image["rows"] * factor), round(image["columns"] * factor), 3)
            assert picture.shape == expected


def test_missing_model_says_how_to_train_one(
    inputs: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAMMOCAD_MODEL", raising=False)
    monkeypatch.setattr(analyze_module, "DEFAULT_MODEL_DIR", tmp_path / "no-bundle")
    result = CliRunner().invoke(app, ["analyze", str(inputs.folder), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "mammocad train detector" in " ".join(result.output.split())


def test_model_location_order(bundle: Path, tmp_path: Path) -> None:
    assert resolve_model(None, environ={"MAMMOCAD_MODEL": str(bundle)}) == bundle
    assert resolve_model(bundle, environ={"MAMMOCAD_MODEL": str(tmp_path)}) == bundle
    with pytest.raises(ModelBundleError, match="MAMMOCAD_MODEL"):
        resolve_model(None, environ={"MAMMOCAD_MODEL": str(tmp_path)})


class KnownBoxDetector(Detector):
    """One mass per image at a box chosen in ORIGINAL pixels (left part of the breast box),
    handed over in INPUT pixels as the model would: only the mapping back decides where
    result.json puts it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.truth: dict[str, list[float]] = {}

    def _predict_one(self, item: PreprocessedImage) -> ImagePrediction:
        x1, y1, x2, y2 = item.breast_box
        width, height = x2 - x1, y2 - y1
        original = [x1 + 0.2 * width, y1 + 0.4 * height, x1 + 0.45 * width, y1 + 0.6 * height]
        self.truth[item.image.key] = original
        boxes = torch.tensor(item.transform.boxes_to_input([original]), dtype=torch.float32)
        found = Detections(
            boxes=boxes,
            labels=torch.tensor([self.model.config.classes.index("mass")]),
            scores=torch.tensor([0.9]),
            malignancy=torch.tensor([0.7]),
            nipple_box=torch.zeros((0, 4)),
            nipple_score=torch.zeros(0),
        )
        return self._to_prediction(item, found)


def _iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def test_boxes_come_back_on_the_original_grid_flipped_or_not(
    bundle: Path, inputs: Inputs, tmp_path: Path
) -> None:
    loaded = load_bundle(bundle)
    detector = KnownBoxDetector(model=loaded.model, manifest=loaded.manifest)
    preprocessing = PreprocessParams.from_dict(loaded.manifest.preprocessing)
    pipeline = Pipeline(detector=detector, preprocessing=preprocessing)
    run_analyze([inputs.folder], out_dir=tmp_path, pipeline=pipeline)
    result = json.loads((tmp_path / inputs.complete_uid / "result.json").read_text("utf-8"))
    assert validation_errors(result) == []
    flipped = {image["laterality"]: image["flipped"] for image in result["images"]}
    assert flipped == {"R": True, "L": False}  # phantom right breasts: chest wall on the right
    for image in result["images"]:
        (finding,) = image["findings"]
        assert _iou(finding["box"], detector.truth[image["sop_instance_uid"]]) >= 0.99
        # the overlay draws it where result.json says: coloured pixels along the box's bottom
        # edge (the label covers the top one)
        picture = cv2.imread(
            str(tmp_path / inputs.complete_uid / "overlays" / f"{image['sop_instance_uid']}.png"),
            cv2.IMREAD_COLOR,
        )
        x1, _, x2, y2 = (round(v) for v in finding["box"])
        edge = picture[y2, x1 + 2 : x2 - 2].astype(int)
        assert (np.ptp(edge, axis=1) > 60).mean() > 0.9
    # noisy-OR per breast over CC and MLO: 1 − (1 − 0.9·0.7)² = 0.8631
    assert [b["malignancy_probability"] for b in result["breasts"]] == [0.86, 0.86]
    assert (result["malignancy_probability"], result["suspicion"]) == (0.86, "high")
    # `eval findings` reads the same boxes back: lesions where the detector put them are all
    # found without a false positive; moved one box-width away, all missed
    for shift, expected in ((0.0, {"sensitivity": 1.0, "fp_per_image": 0.0}),
                            (1.0, {"sensitivity": 0.0, "fp_per_image": 1.0})):  # fmt: skip
        lines = ["sop_instance_uid,x1,y1,x2,y2,label,malignant"]
        for uid, (x1, y1, x2, y2) in detector.truth.items():
            dx = shift * (x2 - x1)
            lines.append(f"{uid},{x1 + dx},{y1},{x2 + dx},{y2},mass,1")
        (tmp_path / "boxes.csv").write_text("\n".join(lines) + "\n")
        arguments = ["eval", "findings", "--results", str(tmp_path), "--bootstrap", "0"]
        arguments += ["--boxes", str(tmp_path / "boxes.csv"), "--out", str(tmp_path / "froc")]
        outcome = CliRunner().invoke(app, arguments)
        assert outcome.exit_code == 0, outcome.output
        froc = json.loads((tmp_path / "froc" / "findings_froc.json").read_text())
        assert froc["operating_point"]["mass"] == expected


def _one_study_per_view(folder: Path, out: Path) -> list[str]:
    """The DICOM files of ``folder`` with a Study Instance UID of their own each, as CBIS-DDSM
    stores its views; returns the new UIDs."""
    import pydicom
    from pydicom.uid import generate_uid

    out.mkdir()
    uids = []
    for path in sorted(folder.glob("*.dcm")):
        try:
            dataset = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue  # the garbage file
        dataset.StudyInstanceUID = generate_uid(entropy_srcs=["per view", path.name])
        dataset.save_as(out / path.name)
        uids.append(dataset.StudyInstanceUID)
    return uids


def test_group_by_patient_reads_views_stored_as_studies_as_one_study(
    bundle: Path, inputs: Inputs, tmp_path: Path
) -> None:
    uids = _one_study_per_view(inputs.folder, tmp_path / "views")
    assert len(uids) == 4
    pipeline = Pipeline.from_bundle(bundle, num_threads=1)
    apart = run_analyze([tmp_path / "views"], out_dir=tmp_path / "apart", pipeline=pipeline)
    assert sorted(s["study_instance_uid"] for s in apart.studies) == sorted(uids)
    assert {s["status"] for s in apart.studies} == {"partial"}
    assert apart.split_patient_studies == 4  # each hinted at --group-by patient
    console = Console(record=True, width=200)
    print_summary(apart, out_dir=tmp_path / "apart", console=console)
    assert "--group-by patient reads them as one study" in " ".join(console.export_text().split())
    together = run_analyze(
        [tmp_path / "views"], out_dir=tmp_path / "together", pipeline=pipeline, group_by="patient"
    )
    [study] = together.studies
    assert together.split_patient_studies == 0
    assert study["status"] == "complete" and study["study_instance_uid"] not in uids
    # each input points at the study its result is in, not at the UID it was stored with
    assert {e["study_instance_uid"] for e in together.inputs} == {study["study_instance_uid"]}
    result = json.loads(
        (tmp_path / "together" / study["study_instance_uid"] / "result.json").read_text("utf-8")
    )
    assert validation_errors(result) == []
    assert len(result["images"]) == 4 and len(result["breasts"]) == 2
    assert "merged_studies" in [m["code"] for m in result["messages"]]


def test_dicom_outputs_of_merged_patients_are_refused_before_any_work(
    inputs: Inputs, tmp_path: Path
) -> None:
    arguments = [str(inputs.folder), "--out", str(tmp_path / "out"), "--dicom"]
    result = CliRunner().invoke(app, ["analyze", *arguments, "--group-by", "patient"])
    assert result.exit_code == 2
    assert "drop --dicom" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_cbis_ddsm_views_become_two_complete_patient_studies(
    shared_data: Path, bundle: Path, tmp_path: Path
) -> None:
    pipeline = Pipeline.from_bundle(bundle, num_threads=1)
    out = tmp_path / "analyzed"
    summary = run_analyze(
        [shared_data / "cbis-ddsm-sample"], out_dir=out, pipeline=pipeline, group_by="patient"
    )
    assert [s["status"] for s in summary.studies] == ["complete", "complete"]
    assert summary.processed == 8 and summary.rejected == 0
    # and the breast level against CBIS-DDSM's own case descriptions: both patients' four
    # breasts are labelled (P_00820's left mass is the malignant one), each has a probability
    cases = shared_data / "annotation-formats" / "cbis-ddsm"
    arguments = ["eval", "study", "--results", str(out), "--level", "breast", "--bootstrap", "20"]
    for path in sorted(cases.glob("*_case_description_test_set.csv")):
        arguments += ["--dataset-labels", str(path)]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "4 breasts (1 malignant), 0 without a probability, 0 without a label" in output


def test_folder_names_of_different_uids_never_coincide() -> None:
    """Invalid UIDs cleaned to one folder name made the second study's result.json replace
    the first's; a safe UID keeps its own name."""
    from mammocad.commands.analyze import safe_name

    names = ["1.2/3", "1.2_3", "1.2:3", ".", "..", "", "left CC"]
    assert len({safe_name(n) for n in names}) == len(names)
    assert safe_name("1.2.840.113619.2.55") == "1.2.840.113619.2.55"
    assert all(safe_name(n).strip(".") and "/" not in safe_name(n) for n in names)


class _Rerun:
    """The tiny bundle's pipeline for a second run into the same folder: it fails on the study
    ``fail`` (a bug of a new model) and rejects the image ``reject`` before analysing."""

    def __init__(self, inner: Pipeline, *, fail: str = "", reject: str = "") -> None:
        self.inner, self.fail, self.reject = inner, fail, reject
        self.model_info = inner.model_info

    def analyze(self, study: Study) -> StudyAnalysis:
        if study.study_instance_uid == self.fail:
            raise RuntimeError("simulated bug in the new model")
        for image in study.images:
            if image.key == self.reject:
                image.reject(RejectionCode.DECODE_FAILED, "simulated: now undecodable")
        return self.inner.analyze(study)


def _rerun(run: Run, tmp_path: Path, bundle: Path, inputs: list[Path], **rerun: str) -> Path:
    """A copy of the first run's output folder, analysed again into with ``inputs``."""
    out = tmp_path / "out"
    shutil.copytree(run.out, out)
    pipeline = Pipeline.from_bundle(bundle, num_threads=1)
    run_analyze(inputs, out_dir=out, pipeline=_Rerun(pipeline, **rerun))  # type: ignore[arg-type]
    return out


def test_a_study_failing_on_a_rerun_keeps_nothing_of_the_earlier_run(
    bundle: Path, inputs: Inputs, run: Run, tmp_path: Path
) -> None:
    """The earlier run's result.json of a study this run failed on was read by eval study as
    if this run had made it, while summary.json said the study failed."""
    assert (run.out / inputs.partial_uid / "result.json").is_file()
    sources = [inputs.folder, inputs.archive]
    out = _rerun(run, tmp_path, bundle, sources, fail=inputs.partial_uid)
    assert not (out / inputs.partial_uid).exists()
    assert not (out / STAGING_FOLDER).exists()
    read = {r["study_instance_uid"]: r for r in read_results(out)}
    assert read.keys() == {inputs.complete_uid, inputs.partial_uid}
    # counted as this run's rejection (a technical defect), not as the earlier probability
    assert read[inputs.partial_uid]["malignancy_probability"] is None
    assert read[inputs.partial_uid]["images"] == []


def test_a_rerun_with_fewer_inputs_is_evaluated_alone(
    bundle: Path, inputs: Inputs, run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A study of the earlier run only keeps its folder (--out may hold what mammocad did not
    write), but eval reads the studies this run's summary.json lists, and says so."""
    out = _rerun(run, tmp_path, bundle, [inputs.folder])
    assert (out / inputs.partial_uid / "result.json").is_file()
    with caplog.at_level(logging.WARNING, logger="mammocad.commands.eval_study"):
        read = read_results(out)
    assert [r["study_instance_uid"] for r in read] == [inputs.complete_uid]
    assert "1 result folders are not among the studies its summary.json lists" in caplog.text


def test_the_overlay_of_an_image_rejected_on_a_rerun_is_gone(
    bundle: Path, inputs: Inputs, run: Run, tmp_path: Path
) -> None:
    """Outputs were written over the earlier run's folder, so an overlay of an image this run
    rejected stayed beside a result.json that lists it rejected."""
    overlays = sorted((run.out / inputs.complete_uid / "overlays").glob("*.png"))
    assert len(overlays) == 4
    key = overlays[0].stem  # the SOP Instance UID: safe as it is
    out = _rerun(run, tmp_path, bundle, [inputs.folder], reject=key)
    left = sorted(path.name for path in (out / inputs.complete_uid / "overlays").glob("*.png"))
    assert left == [path.name for path in overlays[1:]]
    result = json.loads((out / inputs.complete_uid / "result.json").read_text("utf-8"))
    [image] = [i for i in result["images"] if i["sop_instance_uid"] == key]
    assert image["status"] == "rejected"


def test_an_out_folder_holding_the_inputs_is_refused_before_anything_is_written(
    bundle: Path, inputs: Inputs, tmp_path: Path
) -> None:
    """An export laid out as <StudyInstanceUID>/*.dcm analysed into its own folder: the
    results of a study replace out/<StudyInstanceUID>/, which would be its images."""
    export = tmp_path / "export"
    images = export / inputs.complete_uid
    shutil.copytree(inputs.folder, images)
    before = sorted(p.name for p in images.iterdir())
    for given in (export, images):
        result = CliRunner().invoke(
            app, ["analyze", str(given), "--out", str(export), "--model", str(bundle)]
        )
        assert result.exit_code == 2, result.output
        assert "holds the input" in " ".join(result.output.split())  # Rich wraps lines
    assert sorted(p.name for p in images.iterdir()) == before
    with pytest.raises(ValueError, match="holds the input"):
        run_analyze([images / before[0]], out_dir=export, pipeline=None)  # type: ignore[arg-type]


def test_a_study_folder_mammocad_did_not_write_is_left_alone(
    run: Run, bundle: Path, inputs: Inputs, tmp_path: Path
) -> None:
    """The results of a study go to out/<StudyInstanceUID>/; a folder of that name holding
    other files (the user's) is neither replaced nor removed: that study fails, saying why."""
    out = tmp_path / "out"
    shutil.copytree(run.out, out)
    theirs = out / inputs.complete_uid / "report_by_radiologist.pdf"
    theirs.write_bytes(b"%PDF-1.4 the user's own file\n")
    pipeline = Pipeline.from_bundle(bundle, num_threads=1)
    summary = run_analyze([inputs.folder], out_dir=out, pipeline=pipeline)
    assert theirs.read_bytes() == b"%PDF-1.4 the user's own file\n"
    assert (out / inputs.complete_uid / "result.json").is_file()  # the earlier run's, untouched
    (entry,) = [s for s in summary.studies if s["study_instance_uid"] == inputs.complete_uid]
    assert entry["result"] is None and entry["status"] == "rejected"
    mine = [i for i in summary.inputs if i["study_instance_uid"] == inputs.complete_uid]
    assert mine and {i["rejection_code"] for i in mine} == {"output_conflict"}
    assert all("did not write" in i["text"] and "move those files" in i["text"] for i in mine)
    assert summary.internal_errors == 0 and summary.unwritten == len(mine)
    # not a mammocad bug, yet no result: the command says so and exits 1 for scripts
    result = CliRunner().invoke(
        app, ["analyze", str(inputs.folder), "--out", str(out), "--model", str(bundle)]
    )
    assert result.exit_code == 1, result.output
    assert "report this" not in result.output
