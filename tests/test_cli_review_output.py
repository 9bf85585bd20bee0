"""``analyze --out`` and ``batch --out`` that cannot be written: a usage error (exit 2) with a
sentence, before any model is loaded or any study analysed; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammocad.cli import app


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.bin").write_bytes(b"not an image" * 20)
    return folder


@pytest.mark.parametrize("under", [False, True])
def test_analyze_out_that_is_a_file(inputs: Path, tmp_path: Path, under: bool) -> None:
    taken = tmp_path / "results"
    taken.write_text("an earlier report")
    out = taken / "run1" if under else taken  # a file, or a folder to make inside one
    no_bundle = tmp_path / "no-bundle"  # the output is checked before any model loads
    no_bundle.mkdir()

    result = CliRunner().invoke(
        app, ["analyze", str(inputs), "--out", str(out), "--model", str(no_bundle)]
    )

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    text = _one_line(result.output)
    if under:
        assert f"--out {out} is inside {taken}, which is a file" in text
    else:
        assert f"--out {out} is a file, not a folder" in text
    assert taken.read_text() == "an earlier report"


def test_batch_out_that_is_a_folder(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    no_bundle = tmp_path / "no-bundle"
    no_bundle.mkdir()

    result = CliRunner().invoke(
        app, ["batch", str(inputs), "--out", str(out), "--model", str(no_bundle)]
    )

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    text = _one_line(result.output)
    assert f"--out {out} is a folder: name the archive to write" in text
    assert not (tmp_path / "results.work").exists()  # nothing analysed


def test_batch_out_under_a_file(inputs: Path, tmp_path: Path) -> None:
    taken = tmp_path / "results"
    taken.write_text("an earlier report")
    no_bundle = tmp_path / "no-bundle"
    no_bundle.mkdir()
    out = taken / "r.zip"

    result = CliRunner().invoke(
        app, ["batch", str(inputs), "--out", str(out), "--model", str(no_bundle)]
    )

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"--out {out} is inside {taken}, which is a file" in _one_line(result.output)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cuda", "--device cuda: this machine has no CUDA GPU"),
        ("cuda:3", "--device cuda:3: this machine has no CUDA GPU"),
        ("gpu0", "--device gpu0 is no device"),
    ],
)
def test_analyze_on_a_device_this_machine_lacks(
    inputs: Path,
    tmp_path: Path,
    tiny_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    expected: str,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    result = CliRunner().invoke(
        app,
        ["analyze", str(inputs), "--out", str(tmp_path / "out"), "--model", str(tiny_bundle),
         "--device", device],
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    text = _one_line(result.output)
    assert expected in text and "--device cpu" in text


@pytest.mark.parametrize("command", ["analyze", "batch"])
def test_inputs_without_any_file_say_so(tmp_path: Path, tiny_bundle: Path, command: str) -> None:
    empty = tmp_path / "exam"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"finder")
    (empty / "README.txt").write_text("scans to follow")
    out = tmp_path / ("out" if command == "analyze" else "out.zip")

    result = CliRunner().invoke(
        app, [command, str(empty), "--out", str(out), "--model", str(tiny_bundle)]
    )

    assert result.exit_code == 0, result.output  # nothing was left unhandled
    assert "no input file found" in _one_line(result.output)
