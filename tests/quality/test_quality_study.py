"""Study status from the gate: a study with no acceptable image is rejected, without probability;
and ``mammocad train quality`` writes a model the gate can use."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.datasets.phantoms import view_image
from mammocad.errors import RejectionCode
from mammocad.pipeline import Pipeline
from mammocad.quality import QualityParams, assess_quality
from mammocad.quality.learned import QualityModel
from mammocad.report.schema import validation_errors
from mammocad.structures import Laterality, Study, StudyStatus, ViewPosition
from mammocad.synthetic import Defect, generate_study

VIEWS = [(side, view) for side in Laterality for view in (ViewPosition.CC, ViewPosition.MLO)]


def _study(defects: dict[tuple[Laterality, ViewPosition], list[Defect]]) -> Study:
    # seed 3: all four views pass the gate without a defect (seed 41's R MLO runs off the
    # bottom edge and is refused as cut off)
    phantom = generate_study(seed=3, size="small", malignant=False, defects=defects)
    images = [view_image(view, source=f"phantom-{k}") for k, view in enumerate(phantom.views)]
    return Study(study_instance_uid=phantom.truth.study_instance_uid, images=images)


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path) -> Pipeline:
    return Pipeline.from_bundle(tiny_bundle, num_threads=1)


def test_study_without_an_acceptable_image_is_rejected_without_probability(pipeline):
    study = _study({key: [Defect.MOTION_BLUR] for key in VIEWS})
    result = pipeline.analyze(study).result
    assert validation_errors(result) == []
    assert result["status"] == StudyStatus.REJECTED.value
    assert result["malignancy_probability"] is None and result["suspicion"] is None
    assert len(result["images"]) == 4
    for image in result["images"]:
        assert image["status"] == "rejected" and image["findings"] == []
        assert image["rejection_code"] == RejectionCode.QUALITY.value
        rejection, *causes = image["quality"]["issues"]
        assert rejection["code"] == RejectionCode.QUALITY.value
        assert "motion_blur" in rejection["text"]
        # the gate's own code beside the rejection, so no reader has to parse the text
        assert [cause["code"] for cause in causes] == ["motion_blur"]


def test_images_without_tissue_carry_the_gates_code(pipeline):
    """White noise and a blank exposure: preprocessing finds no tissue, and the result says
    which of the two the gate saw."""
    study = _study({VIEWS[0]: [Defect.NOISE], VIEWS[1]: [Defect.BLANK]})
    result = pipeline.analyze(study).result
    assert validation_errors(result) == []
    rejected = [image for image in result["images"] if image["status"] == "rejected"]
    codes = sorted([issue["code"] for issue in image["quality"]["issues"]] for image in rejected)
    assert codes == [["no_tissue", "blank"], ["no_tissue", "no_anatomy"]]
    assert result["status"] == StudyStatus.PARTIAL.value


def test_one_acceptable_image_keeps_the_study_and_its_probability(pipeline):
    """Views of no diagnostic value are rejected one by one: they add nothing to the reading,
    and the study is ``partial`` (it was ``complete`` with three blurred views of four)."""
    study = _study({key: [Defect.MOTION_BLUR] for key in VIEWS[1:]})
    result = pipeline.analyze(study).result
    assert validation_errors(result) == []
    assert result["status"] == StudyStatus.PARTIAL.value
    assert result["malignancy_probability"] is not None
    processed = [image for image in result["images"] if image["status"] == "processed"]
    assert [image["quality"]["acceptable"] for image in processed] == [True]
    rejected = [image for image in result["images"] if image["status"] == "rejected"]
    assert len(rejected) == 3
    for image in rejected:
        assert image["findings"] == []
        assert image["rejection_code"] == RejectionCode.QUALITY.value
        rejection, *causes = image["quality"]["issues"]
        assert rejection["text"].startswith("This view failed the quality gate (motion_blur)")
        assert "left out of the study's reading" in rejection["text"]
        assert [cause["code"] for cause in causes] == ["motion_blur"]


def test_a_refused_view_is_still_drawn_with_its_reasons(pipeline, tmp_path):
    """Rejected for its quality, the view keeps its pixels: its overlay shows the user why
    (before views were rejected one by one, an unfit view was drawn as processed)."""
    from mammocad.commands.analyze import AnalyzeSummary, write_study_outputs

    analysis = pipeline.analyze(_study({VIEWS[0]: [Defect.MOTION_BLUR]}))
    (refused,) = analysis.refused
    (written,) = [i for i in analysis.result["images"] if i["sop_instance_uid"] == refused]
    # the gate's score, not a 0 that says nothing (it was 0 for every refused view)
    gate_score = analysis.refused[refused].quality.score
    assert 0.0 < gate_score < 1.0
    assert written["quality"]["score"] == pytest.approx(gate_score, abs=1e-3)
    summary = AnalyzeSummary(model=analysis.result["model"])
    write_study_outputs(analysis, tmp_path, summary)
    overlays = {entry["key"]: entry["overlay"] for entry in summary.inputs}
    assert all(overlays.values()) and len(overlays) == 4
    picture = cv2.imread(str(tmp_path / overlays[refused]))
    assert picture is not None and picture.shape[2] == 3


def test_four_good_views_stay_processed_and_complete(pipeline):
    """The gate refuses no good view of this phantom (the studies above rely on it)."""
    result = pipeline.analyze(_study({})).result
    assert result["status"] == StudyStatus.COMPLETE.value
    assert all(image["status"] == "processed" for image in result["images"])


def test_train_quality_cli_writes_a_model_the_gate_uses(tmp_path, phantom, run_gate):
    real = tmp_path / "real"
    real.mkdir()
    for seed in (51, 52):  # phantoms written as PNG stand in for a folder of real films
        pixels = np.asarray(phantom(seed=seed, view=ViewPosition.MLO).pixels)
        cv2.imwrite(str(real / f"film{seed}.png"), np.round(pixels * 255).astype(np.uint8))
    out = tmp_path / "model.json"
    args = ["train", "quality", "--out", str(out), "--phantoms", "3", "--seed", "500"]
    outcome = CliRunner().invoke(app, [*args, "--real", str(real)])
    assert outcome.exit_code == 0, outcome.output
    model = QualityModel.load(out)
    assert model.description["phantom_seeds"] == [500, 502]
    assert any(key.startswith("real:") for key in model.description["examples"])
    gated = run_gate(phantom(seed=53, defects=[Defect.BURNED_OUT]))
    assert gated.prepared is not None
    quality = assess_quality(gated.image, gated.prepared, QualityParams(), model=model)
    assert not quality.acceptable


@pytest.mark.parametrize("side", [Laterality.L, Laterality.R])
def test_a_framed_copy_runs_into_the_chest_wall_edge(phantom, side):
    """``train quality --framed`` adds each real image as a digital detector frames it: the
    tissue cut at the chest-wall edge, a few mm of background on the other sides."""
    from mammocad.commands.train_quality import framed
    from mammocad.preprocess import PreprocessParams, preprocess_image

    image = phantom(seed=3, view=ViewPosition.MLO, laterality=side)
    tight = framed(image, margin_mm=4.0)
    assert tight is not None and tight.pixels is not None
    assert tight.pixels.shape == (tight.rows, tight.columns)
    assert tight.rows * tight.columns < 0.8 * image.rows * image.columns
    prepared = preprocess_image(tight, PreprocessParams())
    x0, _, x1, _ = prepared.breast_box
    at_the_wall = tight.columns - x1 if prepared.chest_wall_on_right else x0
    assert at_the_wall == 0  # the tissue runs into the chest-wall edge


def test_a_framed_copy_of_a_file_without_spacing_keeps_the_films_spacing(phantom):
    """A bare PNG's spacing is assumed from its height; the framed copy is shorter, so it
    states the film's spacing instead of having a finer one assumed from its own height."""
    from dataclasses import replace

    from mammocad.commands.train_quality import framed

    bare = replace(phantom(seed=3, view=ViewPosition.MLO), pixel_spacing_mm=None)
    tight = framed(bare, margin_mm=4.0)
    assert tight is not None and tight.rows < bare.rows
    assert tight.spacing_or_assumed_mm == pytest.approx(bare.spacing_or_assumed_mm)
