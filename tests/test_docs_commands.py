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


_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_FENCE = re.compile(r"```.*?```", re.S)


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown text's headings: lower case, punctuation dropped, spaces
    as hyphens, ``-1``, ``-2`` … after a repeated one."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def broken_links(documents: list[Path] = DOCUMENTS) -> Iterator[str]:
    """``document -> target#anchor`` for every relative link to a file that does not exist or
    to a heading its file does not have (a heading renamed, a date or version in it updated)."""
    for document in documents:
        for target, anchor in _LINK.findall(_FENCE.sub("", document.read_text(encoding="utf-8"))):
            path = (document.parent / target) if target else document
            if not path.exists():
                yield f"{document.name} -> {target}"
            elif (
                anchor
                and path.suffix == ".md"
                and anchor not in heading_anchors(path.read_text(encoding="utf-8"))
            ):
                yield f"{document.name} -> {target}#{anchor}"


def test_documented_links_reach_their_files_and_headings() -> None:
    broken = sorted(set(broken_links()))
    assert not broken, "links to missing files or headings:\n" + "\n".join(broken)


def test_a_link_to_a_renamed_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# B\n\n### Measured (2026-12-07, bundle 0.5.2)\n", "utf-8")
    document = tmp_path / "a.md"
    document.write_text(
        "[ok](b.md#measured-2026-12-07-bundle-052), [old](b.md#measured-2026-12-06-bundle-051),"
        " [gone](c.md), [web](https://example.org/x#y)\n",
        encoding="utf-8",
    )
    assert list(broken_links([document])) == [
        "a.md -> b.md#measured-2026-12-06-bundle-051",
        "a.md -> c.md",
    ]
