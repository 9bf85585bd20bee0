"""``Pipeline.analyze`` on a phantom study with an untrained tiny bundle: the result contract.

Untrained weights give arbitrary detections, which is all these tests need: they check the
shape of what comes out (schema, original-pixel boxes, statuses), not what the model finds.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mammocad.detect import ImagePrediction
from mammocad.errors import ModelBundleError, RejectionCode
from mammocad.io import iter_studies
from mammocad.pipeline import INTERNAL_ERROR, Pipeline, nipple_depth
from mammocad.preprocess import PreprocessParams
from mammocad.report.overlay import render_overlay
from mammocad.report.schema import validation_errors
from mammocad.risk.bundle import LoadedRisk
from mammocad.risk.model import RiskModel, Tree
from mammocad.structures import (
    Finding,
    FindingLabel,
    Image,
    Laterality,
    PreprocessedImage,
    Study,
    StudyStatus,
    ViewPosition,
)
from mammocad.synthetic import write_studies

SIZE = (256, 208)


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def pipeline(bundle: Path) -> Iterator[Pipeline]:
    threads = torch.get_num_threads()
    # one thread: two on two cores already busy (CI, a training run) were 15x slower here
    yield Pipeline.from_bundle(bundle, num_threads=1)
    torch.set_num_threads(threads)  # from_bundle sets it process-wide


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("studies"), seed=11, size="small"
    )
    return folder


@pytest.fixture
def study(study_folder: Path) -> Study:
    """Decoded afresh for every test: the pipeline mutates studies (rejections, messages)."""
    (decoded,) = list(iter_studies(study_folder))
    return decoded


def _image(study: Study, side: Laterality, view: ViewPosition) -> Image:
    return next(i for i in study.images if i.laterality is side and i.view is view)


def test_preprocessing_is_the_bundles(pipeline: Pipeline) -> None:
    assert pipeline.preprocessing.input_size == SIZE != PreprocessParams().input_size
    assert pipeline.preprocessing == PreprocessParams.from_dict(
        pipeline.detector.manifest.preprocessing
    )


def test_result_follows_the_schema_with_boxes_on_the_original_grid(
    pipeline: Pipeline, study: Study
) -> None:
    analysis = pipeline.analyze(study)
    result = analysis.result
    assert validation_errors(result) == []
    assert result["status"] == StudyStatus.COMPLETE.value
    assert set(analysis.timings_ms) == {"preprocess", "detect", "aggregate", "total"}
    assert analysis.timings_ms["total"] >= analysis.timings_ms["detect"] > 0
    assert result["model"]["name"] == "tiny-test"
    assert len(analysis.preprocessed) == len(analysis.predictions) == 4
    for item in result["images"]:
        for found in item["findings"]:
            x1, y1, x2, y2 = found["box"]
            assert 0 <= x1 < x2 <= item["columns"] and 0 <= y1 < y2 <= item["rows"], found
    breasts = {b["laterality"]: b for b in result["breasts"]}
    assert breasts["L"]["views"] == breasts["R"]["views"] == ["CC", "MLO"]
    shown = max(b["malignancy_probability"] for b in breasts.values())
    assert result["malignancy_probability"] == shown
    listed = {f["id"] for item in result["images"] for f in item["findings"]}
    assert listed == {fid for b in breasts.values() for fid in b["finding_ids"]}


def test_blank_view_is_rejected_and_the_study_is_partial(pipeline: Pipeline, study: Study) -> None:
    blank = _image(study, Laterality.L, ViewPosition.MLO)
    assert blank.pixels is not None
    blank.pixels = np.zeros_like(blank.pixels)
    result = pipeline.analyze(study).result
    assert validation_errors(result) == []
    assert result["status"] == StudyStatus.PARTIAL.value
    (written,) = [i for i in result["images"] if i["sop_instance_uid"] == blank.key]
    assert (written["status"], written["rejection_code"]) == (
        "rejected",
        RejectionCode.NO_TISSUE.value,
    )
    assert written["findings"] == []
    missing = [m for m in result["messages"] if m["code"] == "missing_view"]
    assert len(missing) == 1 and "no_tissue" in missing[0]["text"]
    left = next(b for b in result["breasts"] if b["laterality"] == "L")
    assert left["views"] == ["CC"] and left["malignancy_probability"] is not None


def test_unexpected_preprocessing_error_rejects_only_that_image(
    pipeline: Pipeline,
    study: Study,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import mammocad.pipeline as module

    broken = _image(study, Laterality.R, ViewPosition.CC)
    real = module.preprocess_image

    def flaky(image: Image, params: PreprocessParams) -> PreprocessedImage:
        if image is broken:
            raise RuntimeError("simulated bug")
        return real(image, params)

    monkeypatch.setattr(module, "preprocess_image", flaky)
    with caplog.at_level(logging.ERROR, logger="mammocad.pipeline"):
        analysis = pipeline.analyze(study)
    assert broken.rejection_code is INTERNAL_ERROR
    assert "simulated bug" in caplog.text and "Traceback" in caplog.text
    result = analysis.result
    assert validation_errors(result) == []
    assert result["status"] == StudyStatus.PARTIAL.value
    codes = {i["sop_instance_uid"]: i["rejection_code"] for i in result["images"]}
    assert codes.pop(broken.key) == "internal_error"
    assert set(codes.values()) == {None}


def test_unexpected_detection_error_rejects_only_that_image(
    pipeline: Pipeline, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _image(study, Laterality.L, ViewPosition.CC)
    real = pipeline.detector.predict

    def flaky(items: list[PreprocessedImage]) -> list[ImagePrediction]:
        if items[0].image is broken:
            raise RuntimeError("simulated detector failure")
        return real(items)

    monkeypatch.setattr(pipeline.detector, "predict", flaky)
    analysis = pipeline.analyze(study)
    assert broken.key not in analysis.preprocessed and broken.key not in analysis.predictions
    assert len(analysis.predictions) == 3
    result = analysis.result
    assert validation_errors(result) == []
    assert result["status"] == StudyStatus.PARTIAL.value
    assert any(m["code"] == "missing_view" for m in result["messages"])


def test_detected_nipple_replaces_the_contour_estimate(
    pipeline: Pipeline, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.detector.predict
    marked = _image(study, Laterality.R, ViewPosition.MLO)

    def with_nipple(items: list[PreprocessedImage]) -> list[ImagePrediction]:
        found = real(items)
        if items[0].image is marked:
            found[0] = replace(found[0], nipple=(123.5, 321.5), nipple_score=0.9)
        else:
            found[0] = replace(found[0], nipple=None, nipple_score=None)
        return found

    monkeypatch.setattr(pipeline.detector, "predict", with_nipple)
    analysis = pipeline.analyze(study)
    nipples = {i["sop_instance_uid"]: i.get("nipple") for i in analysis.result["images"]}
    assert nipples[marked.key] == [123.5, 321.5]
    # where the detector is silent, the preprocessing estimate stays
    other = _image(study, Laterality.L, ViewPosition.CC)
    assert nipples[other.key] == [round(v, 1) for v in analysis.preprocessed[other.key].nipple]


def test_a_detected_nipple_at_the_chest_wall_is_not_taken(
    pipeline: Pipeline, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the detector put the WG04 MG1 MLO's nipple in the axilla, 0.72 of the breast's depth
    # from the chest wall (mini-MIAS: at the chest wall): every nipple distance the two views'
    # findings are linked by went with it. The outline estimate stays there
    real = pipeline.detector.predict
    marked = _image(study, Laterality.R, ViewPosition.CC)
    wrong: list[tuple[float, float]] = []

    def at_the_chest_wall(items: list[PreprocessedImage]) -> list[ImagePrediction]:
        found = real(items)
        if items[0].image is marked:
            x1, y1, x2, y2 = items[0].breast_box
            x = x2 - 0.1 * (x2 - x1) if items[0].chest_wall_on_right else x1 + 0.1 * (x2 - x1)
            wrong.append((x, (y1 + y2) / 2))
            found[0] = replace(found[0], nipple=wrong[0], nipple_score=0.9)
        return found

    monkeypatch.setattr(pipeline.detector, "predict", at_the_chest_wall)
    analysis = pipeline.analyze(study)
    prepared = analysis.preprocessed[marked.key]
    assert prepared.nipple is not None and prepared.nipple != wrong[0]
    assert nipple_depth(prepared, prepared.nipple) > 0.9  # the outline's apex


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p.update(input_size=[320, 256]), "input_size"),
        (lambda p: p.pop("crop_margin"), "missing"),
    ],
    ids=["other-input-size", "missing-key"],
)
def test_bundle_preprocessing_that_does_not_fit_is_refused(
    bundle: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], object], match: str
) -> None:
    folder = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    edit(manifest["preprocessing"])
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelBundleError, match=match):
        Pipeline.from_bundle(folder, num_threads=1)


def test_quality_gate_issues_reach_the_result(pipeline: Pipeline) -> None:
    from mammocad.datasets.phantoms import view_image
    from mammocad.synthetic import Defect, generate_study

    phantom = generate_study(
        seed=31, size="small", defects={(Laterality.L, ViewPosition.CC): [Defect.MOTION_BLUR]}
    )
    images = [view_image(view, source=f"phantom-{k}") for k, view in enumerate(phantom.views)]
    study = Study(study_instance_uid=phantom.truth.study_instance_uid, images=images)
    result = pipeline.analyze(study).result
    assert validation_errors(result) == []
    quality = {(i["laterality"], i["view"]): i["quality"] for i in result["images"] if i["quality"]}
    blurred = quality[("L", "CC")]
    assert not blurred["acceptable"]
    assert "motion_blur" in [issue["code"] for issue in blurred["issues"]]
    assert quality[("R", "CC")]["acceptable"]


def _candidate_risk() -> LoadedRisk:
    """A risk model reading only ``max_candidate_contribution``: 0.95 above 0.1, else 0.05."""
    split = Tree(
        feature=(0, -1, -1),
        threshold=(0.1, 0.0, 0.0),
        missing_left=(True, False, False),
        left=(1, -1, -1),
        right=(2, -1, -1),
        is_leaf=(False, True, True),
        value=(0.0, -math.log(19.0), math.log(19.0)),
    )
    model = RiskModel(features=("max_candidate_contribution",), baseline=0.0, trees=(split,))
    return LoadedRisk(model=model, section={"candidate_score": 0.01})


def test_a_candidate_below_the_finding_threshold_that_drives_the_breast_is_shown(
    pipeline: Pipeline, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The right breast is high only because of a box under the finding threshold: the result
    names it (x_leading_candidate, original pixels) and the overlay draws it dashed; the left
    breast, low, gets none."""
    target = _image(study, Laterality.R, ViewPosition.CC)
    box = (40.0, 60.0, 90.0, 110.0)
    hidden = Finding(
        id=f"{target.key}-f1",
        sop_instance_uid=target.key,
        label=FindingLabel.MASS,
        score=0.2,
        malignancy_probability=0.9,
        box=box,
    )

    def predict(items: list[PreprocessedImage]) -> list[ImagePrediction]:
        key = items[0].image.key
        return [ImagePrediction(image_key=key, candidates=[hidden] if key == target.key else [])]

    monkeypatch.setattr(pipeline, "risk", _candidate_risk())
    monkeypatch.setattr(pipeline.detector, "predict", predict)
    analysis = pipeline.analyze(study)
    result = analysis.result
    assert validation_errors(result) == []
    breasts = {b["laterality"]: b for b in result["breasts"]}
    assert breasts["R"]["malignancy_probability"] == 0.95 and breasts["R"]["finding_ids"] == []
    shown = breasts["R"]["x_leading_candidate"]
    assert shown["id"] == hidden.id and shown["sop_instance_uid"] == target.key
    assert shown["box"] == list(box) and shown["malignancy_probability"] == 0.9
    assert "x_leading_candidate" not in breasts["L"]
    assert all(not image.get("findings") for image in result["images"])
    assert analysis.unreported_candidates(target.key) == [hidden]
    other = _image(study, Laterality.L, ViewPosition.CC)
    assert analysis.unreported_candidates(other.key) == []

    # the overlay the analyze command writes draws it; without it the box area is untouched
    from mammocad.commands.analyze import _overlay_picture

    drawn = _overlay_picture(analysis, target, footer="")
    plain = render_overlay(target, [], nipple=None)
    x1, y1, _, y2 = (int(v) for v in box)
    left_side = (slice(y1 - 2, y2 + 3), slice(x1 - 2, x1 + 3))
    blue, green, red = np.moveaxis(drawn[left_side].astype(int), -1, 0)
    magenta = (blue > 200) & (green < 100) & (red > 200)
    assert magenta.any() and not np.array_equal(drawn[left_side], plain[left_side])


def test_the_wg04_mg1_nipple_is_not_put_in_the_axilla(shared_data: Path) -> None:
    # the shipped detector reports MG1's nipple near the top border, in the axilla (row 161 of
    # 4664); the nipple is near row 3385, at the breast's front, where the outline puts it
    bundle = Path(__file__).resolve().parents[1] / "models" / "mammocad-detector"
    pipeline = Pipeline.from_bundle(bundle, num_threads=2)
    (study,) = iter_studies([shared_data / "dicom-samples" / "wg04-mg1" / "MG1_J2KI.dcm"])
    analysis = pipeline.analyze(study)
    (image,) = analysis.result["images"]
    x, y = image["nipple"]
    assert y > image["rows"] / 2, f"nipple at {x, y}"


def test_an_overlay_says_which_breast_and_view_it_shows(
    pipeline: Pipeline, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # overlay files are named by SOP Instance UID: without a label of its own a reader of
    # out/<study>/overlays/ could not tell RCC from LMLO where the film carries no marker
    import mammocad.commands.analyze as analyze

    analysis = pipeline.analyze(study)
    footers: list[str | None] = []

    def keep(*args: object, footer: str | None = None, **kwargs: object) -> None:
        footers.append(footer)

    monkeypatch.setattr(analyze, "render_overlay", keep)
    for laterality, view in ((Laterality.R, ViewPosition.CC), (Laterality.L, ViewPosition.MLO)):
        analyze._overlay_picture(analysis, _image(study, laterality, view), footer="model 1.0")
    assert footers == ["R CC | model 1.0", "L MLO | model 1.0"]
