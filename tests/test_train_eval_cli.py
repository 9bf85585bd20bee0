"""``mammocad train detector`` and ``mammocad eval detector`` end to end, tiny and fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.datasets.spec import iter_samples, parse_spec, phantom_spec
from mammocad.detect.bundle import load_bundle

SMALL_PHANTOM = "phantom:n=1,seed=77,size=small"
TINY = ["--input-size", "256x208", "--no-mlflow", "--warmup-steps", "1", "--no-augment"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(
        app,
        ["train", "detector", "--data", "phantom:n=1,seed=3,size=small", "--out", str(out),
         "--epochs", "1", *TINY],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out / "mammocad-detector"


def test_training_writes_a_loadable_bundle_with_its_preprocessing(trained: Path) -> None:
    bundle = load_bundle(trained)
    assert bundle.manifest.detector.input_size == (256, 208)
    assert bundle.manifest.preprocessing["input_size"] == [256, 208]
    assert bundle.manifest.training_data["train"] == [
        {"kind": "phantom", "n": "1", "seed": "3", "size": "small"}
    ]


def test_warm_start_and_time_budget(trained: Path, tmp_path: Path) -> None:
    """A warm start may change what only steers training (the proposal matcher's overlap,
    the second stage's sample), not the layers; the new bundle records what it trained with."""
    result = CliRunner().invoke(
        app,
        ["train", "detector", "--data", "phantom:n=1,seed=4,size=small", "--out", str(tmp_path),
         "--epochs", "50", "--time-limit", "0.5", "--init-bundle", str(trained), *TINY,
         "--rpn-fg-iou", "0.5", "--roi-batch-size", "64"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warm start" in result.output
    said = " ".join(result.output.split())
    assert "rpn_fg_iou: 0.7 in the bundle, 0.5 in this run" in said
    assert "roi_batch_size_per_image: 256 in the bundle, 64 in this run" in said
    # fifty epochs cannot run in half a second: the budget stopped the run, the bundle exists
    config = load_bundle(tmp_path / "mammocad-detector").manifest.detector
    assert (config.rpn_fg_iou, config.roi_batch_size_per_image) == (0.5, 64)
    assert load_bundle(trained).manifest.detector.rpn_fg_iou == 0.7


def test_warm_start_from_another_configuration_is_refused_before_the_data(
    trained: Path, tmp_path: Path
) -> None:
    base = ["train", "detector", "--data", "phantom:n=1,seed=4,size=small", "--out",
            str(tmp_path), *TINY]  # fmt: skip
    other = CliRunner().invoke(
        app, [*base, "--input-size", "128x104", "--init-bundle", str(trained)]
    )
    assert other.exit_code == 2, other.output
    said = "".join(other.output.split())  # Rich wraps the sentence anywhere
    assert "holdsadifferentdetectorconfiguration" in said
    assert "preparing" not in other.output  # said before the phantoms are rendered
    both = ["--init-bundle", str(trained), "--init-backbone", str(trained / "weights.pt")]
    twice = CliRunner().invoke(app, [*base, *both])
    assert twice.exit_code == 2 and "not both" in twice.output, twice.output
    assert "preparing" not in twice.output


def test_resume_goes_on_with_what_is_left_of_the_budget(tmp_path: Path) -> None:
    import torch

    args = ["train", "detector", "--data", "phantom:n=1,seed=4,size=small", "--out",
            str(tmp_path), "--epochs", "50", "--time-limit", "0.5", *TINY]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    first = torch.load(checkpoint, weights_only=True)
    assert first["epoch"] < 50 and first["elapsed_s"] >= 0.5
    again = CliRunner().invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert "resuming from" in again.output
    # the budget of the run was spent: the resumed call takes no step
    assert torch.load(checkpoint, weights_only=True)["step"] == first["step"]


def test_select_by_must_name_a_validation_metric(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", "detector", "--data", SMALL_PHANTOM, "--out", str(tmp_path),
         "--select-by", "train/loss", *TINY],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "name a validation metric" in result.output


def test_eval_writes_froc_tables(trained: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["eval", "detector", "--model", str(trained), "--data", SMALL_PHANTOM,
         "--out", str(tmp_path), "--bootstrap", "5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "froc.json").read_text())
    assert summary["images"] >= 3
    assert "froc/any_lesion/sens@0.25fp" in summary["metrics"]
    ends = summary["all_candidates"]["any_lesion"]
    assert ends["sensitivity"] >= summary["metrics"]["froc/any_lesion/sens@4fp"]["value"]
    header = (tmp_path / "froc.csv").read_text().splitlines()[0]
    assert header.startswith("curve,fp_per_image,sensitivity")


def test_more_candidates_only_extend_the_froc(trained: Path, tmp_path: Path) -> None:
    summaries = []
    for name, extra in (
        ("bundle", []),
        ("all", ["--score-threshold", "0", "--detections-per-image", "100"]),
    ):
        result = CliRunner().invoke(
            app,
            ["eval", "detector", "--model", str(trained), "--data", SMALL_PHANTOM,
             "--out", str(tmp_path / name), "--bootstrap", "0", *extra],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summaries.append(json.loads((tmp_path / name / "froc.json").read_text()))
    default, everything = summaries
    assert default["candidates"] == {"score_threshold": 0.05, "detections_per_image": 20}
    assert everything["candidates"] == {"score_threshold": 0.0, "detections_per_image": 100}
    for key, value in default["metrics"].items():
        assert everything["metrics"][key]["value"] >= value["value"], key


def test_bad_data_spec_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "detector", "--data", "kaggle:n=1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown data kind" in result.output


def test_spec_parsing() -> None:
    spec = parse_spec("mias:path=/data/mias,fold=2,folds=5")
    assert spec.kind == "mias" and spec.options == {"path": "/data/mias", "fold": "2", "folds": "5"}
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("phantom:n")


def test_a_key_the_kind_does_not_know_is_an_error_not_a_default() -> None:
    with pytest.raises(ValueError, match="phantom does not take sed"):
        parse_spec("phantom:n=1,sed=3")
    with pytest.raises(ValueError, match="mias does not take n"):
        parse_spec("mias:path=/data/mias,n=3")
    for bad in ("0", "-1", "1.5", "two"):
        with pytest.raises(ValueError, match="whole number"):
            parse_spec(f"phantom:n=1,repeat={bad}")


def test_repeat_weights_a_source_in_training_only(trained: Path, tmp_path: Path) -> None:
    from mammocad.detect.config import DetectorConfig
    from mammocad.preprocess import PreprocessParams

    classes = DetectorConfig().classes
    params = PreprocessParams(input_size=(256, 208))
    once = list(iter_samples([parse_spec(SMALL_PHANTOM)], classes=classes, params=params))
    twice = list(
        iter_samples([parse_spec(SMALL_PHANTOM + ",repeat=2")], classes=classes, params=params)
    )
    assert once and [s.image_id for s in twice] == [s.image_id for s in once for _ in range(2)]
    assert all(a is b for a, b in zip(twice[::2], twice[1::2], strict=True))  # shared, not copied

    with pytest.raises(ValueError, match="drop repeat=2"):
        phantom_spec(parse_spec(SMALL_PHANTOM + ",repeat=2"))
    result = CliRunner().invoke(
        app,
        ["eval", "detector", "--model", str(trained), "--data", SMALL_PHANTOM + ",repeat=2",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "evaluation counts every image once" in " ".join(result.output.split())
    validated = CliRunner().invoke(
        app,
        ["train", "detector", "--data", SMALL_PHANTOM, "--val", SMALL_PHANTOM + ",repeat=3",
         "--out", str(tmp_path / "run"), *TINY],
    )  # fmt: skip
    assert validated.exit_code == 2
    assert "validation counts every image once" in " ".join(validated.output.split())


def test_eval_pool_combines_disjoint_evaluations(trained: Path, tmp_path: Path) -> None:
    truths = []
    for seed in (77, 78):
        result = CliRunner().invoke(
            app,
            ["eval", "detector", "--model", str(trained), "--data",
             f"phantom:n=1,seed={seed},size=small", "--out", str(tmp_path / f"fold{seed}"),
             "--bootstrap", "0"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / f"fold{seed}" / "froc.json").read_text())
        truths.append(metrics["images"])
    runs = [str(tmp_path / "fold77"), str(tmp_path / "fold78")]
    result = CliRunner().invoke(
        app, ["eval", "pool", *runs, "--out", str(tmp_path / "pooled"), "--bootstrap", "0"]
    )
    assert result.exit_code == 0, result.output
    pooled = json.loads((tmp_path / "pooled" / "froc.json").read_text())
    assert pooled["images"] == sum(truths)
    assert (tmp_path / "pooled" / "froc.csv").is_file()

    again = CliRunner().invoke(app, ["eval", "pool", runs[0], runs[0], "--out", str(tmp_path)])
    assert again.exit_code == 2 and "pool disjoint folds only" in " ".join(again.output.split())


def test_pretrained_backbone_starts_a_detector_run(tmp_path: Path) -> None:
    common = ["--data", "phantom:n=1,seed=5,size=small", "--input-size", "256x208"]
    result = CliRunner().invoke(
        app,
        ["train", "backbone", *common, "--val", SMALL_PHANTOM, "--out", str(tmp_path / "pre"),
         "--steps", "2", "--batch-size", "8", "--patch-size", "64", "--warmup-steps", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "validation window AUC" in result.output
    backbone = tmp_path / "pre" / "backbone.pt"
    assert backbone.is_file()

    run = ["train", "detector", *common, "--epochs", "1", "--no-mlflow", "--warmup-steps", "1",
           "--no-augment", "--init-backbone", str(backbone)]  # fmt: skip
    result = CliRunner().invoke(app, [*run, "--out", str(tmp_path / "det")])
    assert result.exit_code == 0, result.output
    assert "backbone pre-trained in" in result.output
    # another backbone cannot start from it: a usage error before any data is prepared
    result = CliRunner().invoke(
        app, [*run, "--out", str(tmp_path / "other"), "--backbone", "resnet34"]
    )
    assert result.exit_code == 2
    assert "pre-trained for" in result.output
    assert "preparing training samples" not in result.output
