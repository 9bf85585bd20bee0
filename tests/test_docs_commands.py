"""Every ``mammocad`` command line in the README and docs/ names options its command has: a
renamed or removed option must not leave a documented recipe that stops with "No such
option" (the measured figures in docs/ cite these commands as how to reproduce them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from mammocad.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_SPAN = re.compile(r"`(mammocad [^`]+)`")
# what may stand before the command on a line: variables, nice, a venv path
_PREFIX = re.compile(r"^(?:[A-Z_]+=\S+\s+|nice\s+(?:-n\s*\d+\s+)?|time\s+)*(?:\S*/)?mammocad\s")


def command_lines(text: str) -> Iterator[str]:
    """Shell lines of fenced blocks (continuations joined) and inline code spans."""
    for block in _BLOCK.findall(text):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            yield from re.split(r"&&|;|\|", line.split(" #")[0])
    yield from _SPAN.findall(text)


def resolve(words: list[str]) -> tuple[str, Any, list[str]] | None:
    """The command ``mammocad WORDS…`` runs, its name and the words after it; ``None`` when
    the first word names no command (prose in a table, "mammocad reads …")."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = words
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest[0]]
        path.append(rest[0])
        rest = rest[1:]
    if not path or hasattr(command, "commands"):
        return None
    return " ".join(path), command, rest


def unknown_options(documents: list[Path] = DOCUMENTS) -> Iterator[tuple[str, str, str]]:
    """(document, command, option) for every option a documented command line gives that its
    command does not have."""
    for document in documents:
        for line in command_lines(document.read_text(encoding="utf-8")):
            start = _PREFIX.match(line.strip())
            if start is None:
                continue
            found = resolve(line.strip()[start.end() :].split())
            if found is None:
                continue
            name, command, rest = found
            known = {o for p in command.params for o in [*p.opts, *p.secondary_opts]}
            for word in rest:
                option = word.split("=")[0]
                if option.startswith("--") and option not in known | {"--help"}:
                    yield document.name, name, option


def test_documented_command_lines_name_existing_options() -> None:
    assert len(DOCUMENTS) > 10, "README.md and docs/*.md not found"
    unknown = sorted({f"{doc}: mammocad {cmd} {option}" for doc, cmd, option in unknown_options()})
    assert not unknown, "documented options the commands do not have:\n" + "\n".join(unknown)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mammocad analyze in --out out --dicom --outt x", [("analyze", "--outt")]),
        ("nice -n 10 .venv/bin/mammocad eval study --result=r", [("eval study", "--result")]),
        ("X=1 mammocad train detector --data d \\\n  --epoch 3", [("train detector", "--epoch")]),
        ("mammocad synth --out s && mammocad analyze s --modle m", [("analyze", "--modle")]),
        ("mammocad reads grayscale (MONOCHROME1/2) --not-an-option", []),
    ],
)
def test_command_lines_are_read_as_a_shell_would(
    line: str, expected: list[tuple[str, str]], tmp_path: Path
) -> None:
    document = tmp_path / "doc.md"
    document.write_text(f"```bash\n{line}\n```\n", encoding="utf-8")
    assert [(name, option) for _, name, option in unknown_options([document])] == expected
