"""Review of the secondary training commands: bad outputs and caches are usage errors (exit 2,
before any work), and a cache is never reused for content it does not hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mammocad.cli import app

PHANTOM = "phantom:n=1,seed=3,size=small"


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_train_quality_out_that_cannot_be_the_model_file_is_a_usage_error(
    tmp_path: Path, where: str
) -> None:
    """--out a folder (or a path inside a file) used to end in IsADirectoryError /
    FileExistsError after every example had been collected."""
    if where == "folder":
        out = tmp_path / "models"
        out.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "quality.json"
    result = CliRunner().invoke(app, ["train", "quality", "--out", str(out), "--phantoms", "1"])
    assert result.exit_code == 2, result.output
    assert "--out" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_train_risk_cache_that_is_a_file_is_a_usage_error(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """--cache a file used to end in NotADirectoryError after the bundle was loaded."""
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    args = ["train", "risk", "--model", str(tiny_bundle), "--data", PHANTOM]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out"), "--cache", str(cache)])
    assert result.exit_code == 2, result.output
    assert "--cache" in result.output


def test_fusion_cache_key_follows_the_bundle_preprocessing(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """A bundle copy with other preprocessing (same weights) feeds the detector other inputs:
    its fusion / risk cases must not be read from the original's cache."""
    from mammocad.commands.train_fusion import collection_pipeline
    from mammocad.datasets.spec import parse_spec, phantom_spec
    from mammocad.fuse import copy_bundle
    from mammocad.fuse.collect import cache_key

    other = copy_bundle(tiny_bundle, tmp_path / "margin")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["preprocessing"]["crop_margin"] = 0.1
    (other / "manifest.json").write_text(json.dumps(manifest))
    spec = phantom_spec(parse_spec(PHANTOM))
    keys = [
        cache_key(collection_pipeline(b, candidate_score=None, device="cpu", threads=1), spec)
        for b in (tiny_bundle, other)
    ]
    assert keys[0] != keys[1]


def _malignancy(bundle: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("train", "malignancy", "--model", str(bundle), "--out", str(out)),
        *("--data", "phantom:n=2,seed=11,size=small,malignant_rate=1.0,benign_rate=1.0"),
        *("--epochs", "1", "--crop-size", "32", "--no-mlflow", *extra),
    ]


def test_malignancy_patch_cache_follows_the_window_context(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """Patches are cut PATCH_EXTENT window sides wide, the window being --context box sides:
    patches cut for --context 2 are too small for --context 4 (the jittered windows run off
    them into zeros), so a run with another context must cut its own."""
    threads = torch.get_num_threads()
    try:
        first = CliRunner().invoke(app, _malignancy(tiny_bundle, tmp_path, "--context", "2"))
        assert first.exit_code == 0, first.output
        second = CliRunner().invoke(app, _malignancy(tiny_bundle, tmp_path, "--context", "4"))
        assert second.exit_code == 0, second.output
    finally:
        torch.set_num_threads(threads)
    assert len(list((tmp_path / "patches").glob("*.pt"))) == 2


def test_malignancy_patch_cache_cut_short_is_not_a_traceback(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """A patch cache cut short (a run stopped while writing it, a full disk) used to be read
    forever after and fail with a torch unpickling traceback; it is cut again instead."""
    threads = torch.get_num_threads()
    try:
        first = CliRunner().invoke(app, _malignancy(tiny_bundle, tmp_path))
        assert first.exit_code == 0, first.output
        (cache,) = (tmp_path / "patches").glob("*.pt")
        cache.write_bytes(cache.read_bytes()[:100])
        again = CliRunner().invoke(app, _malignancy(tiny_bundle, tmp_path))
    finally:
        torch.set_num_threads(threads)
    assert again.exit_code == 0, again.output
    assert cache.stat().st_size > 100


def test_malignancy_patch_cache_is_written_whole_or_not_at_all(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped (Ctrl-C) while the cache is being written: no file under the cache's name."""
    from mammocad.datasets.spec import parse_spec
    from mammocad.detect.bundle import read_manifest
    from mammocad.malignancy import train
    from mammocad.malignancy.model import ClassifierConfig

    def interrupted(patches: object, path: str) -> None:
        Path(path).write_bytes(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_patches", interrupted)
    cache = tmp_path / "patches" / "key.pt"
    with pytest.raises(KeyboardInterrupt):
        train.collect_patches(
            [parse_spec("phantom:n=1,seed=11,size=small")],
            read_manifest(tiny_bundle),
            ClassifierConfig(crop_size=32),
            cache=cache,
        )
    assert not cache.exists()


@pytest.mark.parametrize(
    ("command", "val_seed"), [("fusion", "7"), ("risk", "7"), ("malignancy", "7"), ("risk", "07")]
)
def test_validation_phantoms_of_a_training_seed_are_a_usage_error(
    tiny_bundle: Path, tmp_path: Path, command: str, val_seed: str
) -> None:
    """The same phantom seed draws the same studies: a --val sharing a --data seed measures
    the model on breasts it was trained on (and records that AUC in the bundle); seed=07 is
    seed 7."""
    args = ["train", command, "--model", str(tiny_bundle), "--out", str(tmp_path / "out")]
    args += ["--data", "phantom:n=3,seed=7,size=small"]
    args += ["--val", f"phantom:n=1,seed={val_seed},size=small"]
    if command == "malignancy":
        args.append("--no-mlflow")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "seed" in result.output
    assert not (tmp_path / "out" / "bundle").exists()


@pytest.mark.parametrize("command", ["fusion", "risk", "malignancy"])
def test_out_whose_bundle_is_the_model_is_refused_before_any_work(
    tiny_bundle: Path, tmp_path: Path, command: str
) -> None:
    """--model RUN/bundle --out RUN (training again from a run's own output) used to render,
    collect and train, and only then refuse to write the copy over its source."""
    from mammocad.fuse import copy_bundle

    model = copy_bundle(tiny_bundle, tmp_path / "run" / "bundle")
    args = ["train", command, "--model", str(model), "--out", str(tmp_path / "run")]
    args += ["--data", "phantom:n=2,seed=11,size=small,malignant_rate=1.0,benign_rate=1.0"]
    if command == "malignancy":
        args += ["--no-mlflow", "--epochs", "1", "--crop-size", "32"]
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 2, result.output
    assert "--out" in result.output
    assert "studies" not in result.output and "patches" not in result.output


def test_fusion_cache_file_cut_short_is_a_usage_error(tiny_bundle: Path, tmp_path: Path) -> None:
    """A damaged study file in --cache (a copy of the cache folder cut short) used to end in a
    zipfile.BadZipFile traceback; like a file of another format it is a sentence naming it."""
    from mammocad.commands.train_fusion import collection_pipeline
    from mammocad.datasets.spec import parse_spec, phantom_spec
    from mammocad.fuse.collect import cache_key

    pipeline = collection_pipeline(tiny_bundle, candidate_score=None, device="cpu", threads=1)
    key = cache_key(pipeline, phantom_spec(parse_spec(PHANTOM)))
    damaged = tmp_path / "cache" / key / "study-00000.npz"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"PK\x03\x04" + bytes(60))
    args = ["train", "risk", "--model", str(tiny_bundle), "--data", PHANTOM]
    args += ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "study-00000.npz" in result.output.replace("\n", "")
