"""Bad input to ``mammocad train …`` and ``mammocad eval detector``: a usage error (exit 2)
with a sentence saying what to do, before the data are rendered where it can be; never a
traceback, and never a run that goes on with settings it was not started with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.exceptions import Exit
from typer.testing import CliRunner, Result

from mammocad.cli import app

PHANTOM = "phantom:n=1,seed=3,size=small"
TINY = ["--no-mlflow", "--warmup-steps", "1", "--no-augment", "--batch-size", "2"]


def _squeezed(text: str) -> str:
    """``text`` without spaces, line breaks and panel borders: Rich wraps long paths anywhere."""
    return "".join(text.replace("│", "").split())


def _usage_error(result: Result, *fragments: str) -> None:
    """Exit 2 with every fragment in the message, and no traceback behind it."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit | Exit), result.exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert _squeezed(fragment) in _squeezed(result.output), result.output


@pytest.fixture
def mias_folder(tmp_path: Path) -> Path:
    """A folder that looks like mini-MIAS to the spec checks (its Info.txt lists nothing)."""
    folder = tmp_path / "mias"
    folder.mkdir()
    (folder / "Info.txt").write_text("")
    return folder


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("phantom:n=abc", "n=abc in 'phantom:n=abc' must be a whole number"),
        ("phantom:n=1,seed=x", "seed=x"),
        ("phantom:n=1,n=2,seed=3", "gives n more than once"),
        ("phantom:n=1,size=huge", "use size=small or size=full"),
        ("phantom:n=1,malignant_rate=2", "share between 0 and 1"),
        ("mias:path={missing}", "is not a folder"),
        ("mias:path={empty}", "holds no Info.txt"),
        ("mias:path={mias},fold=7,folds=5", "with folds=5 the folds are 0 to 4"),
        ("mias:path={mias},folds=0,fold=0", "folds=0"),
        ("mias:path={mias},fold=1,exclude_fold=2", "not both"),
    ],
)
def test_data_spec_values_are_checked_where_typed(
    tmp_path: Path, mias_folder: Path, spec: str, fragment: str
) -> None:
    (tmp_path / "empty").mkdir()
    places = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "mias": mias_folder}
    text = spec.format(**places)
    for command in (["train", "detector", "--no-mlflow"], ["train", "backbone"]):
        result = CliRunner().invoke(app, [*command, "--data", text, "--out", str(tmp_path / "run")])
        _usage_error(result, fragment.format(**places))


def test_out_that_is_a_file_stops_before_training(tmp_path: Path, tiny_bundle: Path) -> None:
    taken = tmp_path / "results"
    taken.write_text("an earlier report")
    commands = [
        ["train", "detector", "--data", PHANTOM, *TINY],
        ["train", "backbone", "--data", PHANTOM],
        ["train", "malignancy", "--model", str(tiny_bundle), "--data", PHANTOM, "--no-mlflow"],
        ["train", "risk", "--model", str(tiny_bundle), "--data", PHANTOM],
        ["train", "fusion", "--model", str(tiny_bundle), "--data", PHANTOM],
        ["eval", "detector", "--model", str(tiny_bundle), "--data", PHANTOM],
    ]
    for command in commands:
        for out in (taken, taken / "run1"):
            result = CliRunner().invoke(app, [*command, "--out", str(out)])
            _usage_error(result, f"--out {out}", "give a folder")
            assert "preparing" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_device_this_machine_lacks(tmp_path: Path, tiny_bundle: Path) -> None:
    commands = [
        ["train", "detector", "--data", PHANTOM, *TINY],
        ["train", "backbone", "--data", PHANTOM],
        ["train", "risk", "--model", str(tiny_bundle), "--data", PHANTOM],
        ["eval", "detector", "--model", str(tiny_bundle), "--data", PHANTOM],
    ]
    for command in commands:
        result = CliRunner().invoke(
            app, [*command, "--out", str(tmp_path / "run"), "--device", "cuda"]
        )
        _usage_error(result, "no CUDA GPU", "--device cpu")


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--input-size", "16x16"], "too small"),
        (["--backbone", "resnet999"], "unknown backbone 'resnet999'"),
    ],
)
def test_detector_settings_it_cannot_build(
    tmp_path: Path, option: list[str], fragment: str
) -> None:
    for command in (["train", "detector", *TINY], ["train", "backbone"]):
        result = CliRunner().invoke(
            app, [*command, "--data", PHANTOM, "--out", str(tmp_path), *option]
        )
        _usage_error(result, fragment)


def test_folders_that_are_not_bundles(tmp_path: Path, tiny_bundle: Path) -> None:
    not_bundle = tmp_path / "not-a-bundle"
    not_bundle.mkdir()
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_bundle, no_weights)
    (no_weights / "weights.pt").unlink()
    out = str(tmp_path / "out")
    cases = [
        (["train", "detector", "--init-bundle", str(not_bundle), *TINY, "--input-size",
          "256x208"], "is not a model bundle folder"),
        (["train", "malignancy", "--model", str(not_bundle), "--no-mlflow"],
         "is not a model bundle folder"),
        (["train", "risk", "--model", str(not_bundle)], "is not a model bundle folder"),
        (["train", "fusion", "--model", str(not_bundle)], "is not a model bundle folder"),
        (["eval", "detector", "--model", str(no_weights)], "weights.pt is missing"),
    ]  # fmt: skip
    for command, fragment in cases:
        result = CliRunner().invoke(app, [*command, "--data", PHANTOM, "--out", out])
        _usage_error(result, fragment)


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"PK\x03\x04 cut short"])
def test_a_broken_checkpoint_or_backbone_file(tmp_path: Path, content: bytes) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(content)
    (run / "checkpoint.pt").write_bytes(content)
    base = ["--data", PHANTOM, "--out", str(run), "--input-size", "128x104"]
    result = CliRunner().invoke(app, ["train", "detector", *base, *TINY, "--resume"])
    _usage_error(result, "last.pt cannot be read as a training checkpoint", "delete it")
    assert "preparing" not in result.output  # said before the data are rendered
    result = CliRunner().invoke(app, ["train", "backbone", *base, "--resume", "--steps", "1"])
    _usage_error(result, "checkpoint.pt cannot be read as a training checkpoint")
    backbone = run / "checkpoint.pt"
    result = CliRunner().invoke(
        app, ["train", "detector", *base, *TINY, "--init-backbone", str(backbone)]
    )
    _usage_error(result, "cannot be read as a pre-trained backbone")


def test_resume_with_another_input_size_is_refused(tmp_path: Path) -> None:
    args = ["train", "detector", "--data", PHANTOM, "--out", str(tmp_path), "--epochs", "2",
            "--time-limit", "0.5", *TINY]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--input-size", "128x104"])
    assert first.exit_code == 0, first.output
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    again = CliRunner().invoke(app, [*args, "--input-size", "128x128", "--resume"])
    _usage_error(again, "other settings", "input_size [128, 104] (now [128, 128])")
    assert "preparing" not in again.output
    # nothing was written over: the run still resumes with the settings that started it
    assert (
        torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["step"]
        == (saved["step"])
    )
    same = CliRunner().invoke(app, [*args, "--input-size", "128x104", "--resume"])
    assert same.exit_code == 0, same.output


def test_resume_with_another_batch_size_seed_or_data_is_refused(tmp_path: Path) -> None:
    # a resumed epoch is cut at batch × batch size of an order drawn from the seed, over the
    # training images: another batch size, seed or data set would skip or repeat samples
    # (another learning rate would be overridden by the restored optimiser without a word)
    args = ["train", "detector", "--out", str(tmp_path), "--epochs", "2", "--time-limit", "0.5",
            "--input-size", "128x104", *TINY]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--data", PHANTOM])
    assert first.exit_code == 0, first.output
    for option, fragment in [
        (["--batch-size", "4"], "batch_size 2 (now 4)"),
        (["--seed", "5"], "seed 0 (now 5)"),
        (["--learning-rate", "1e-3"], "learning_rate"),
    ]:
        again = CliRunner().invoke(app, [*args, "--data", PHANTOM, *option, "--resume"])
        _usage_error(again, "other settings", fragment, "--out")
        assert "preparing" not in again.output  # said before the data are rendered
    more = CliRunner().invoke(app, [*args, "--data", "phantom:n=2,seed=3,size=small", "--resume"])
    _usage_error(more, "other settings", "train_data", "'n': '2'")
    assert "preparing" not in more.output
    # as many images from another seed: the image count alone let this one through
    other = CliRunner().invoke(app, [*args, "--data", "phantom:n=1,seed=4,size=small", "--resume"])
    _usage_error(other, "other settings", "train_data", "'seed': '4'")
    assert "preparing" not in other.output  # said before the data are rendered
    # the budget may grow on a resume
    longer = [*args[: -len(TINY)], *TINY]
    same = CliRunner().invoke(app, [*longer, "--data", PHANTOM, "--epochs", "3", "--resume"])
    assert same.exit_code == 0, same.output


def test_backbone_resume_with_another_input_size_is_refused(tmp_path: Path) -> None:
    args = ["train", "backbone", "--data", PHANTOM, "--out", str(tmp_path), "--batch-size", "4",
            "--patch-size", "32"]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--steps", "1", "--input-size", "128x104"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, [*args, "--steps", "2", "--input-size", "128x128", "--resume"])
    _usage_error(again, "other settings (detector.input_size)")
    same = CliRunner().invoke(app, [*args, "--steps", "2", "--input-size", "128x104", "--resume"])
    assert same.exit_code == 0, same.output


def test_an_unreachable_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    result = CliRunner().invoke(
        app,
        ["train", "detector", "--data", PHANTOM, "--out", str(tmp_path),
         "--tracking-uri", "http://127.0.0.1:9"],
    )  # fmt: skip
    _usage_error(result, "MLflow tracking at http://127.0.0.1:9 cannot be used", "--no-mlflow")
    assert "preparing" not in result.output  # said before the data are rendered


def test_the_tracking_uri_comes_from_mlflows_own_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_TRACKING_URI (MLflow's setting) was ignored for ./mlruns: it is the default of
    --tracking-uri."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(
        app, ["train", "detector", "--data", PHANTOM, "--out", str(tmp_path)]
    )
    _usage_error(result, "MLflow tracking at http://127.0.0.1:9 cannot be used", "--no-mlflow")
