"""``mammocad`` command line (Typer). Each command parses its arguments and calls into
``mammocad.commands``; exit status 0 means every input was handled (processed or rejected),
2 a usage error."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mammocad import __version__

app = typer.Typer(
    name="mammocad",
    help="Open-source mammography CAD (research use only): DICOM in, findings out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


class PhantomSize(str, Enum):
    small = "small"
    full = "full"


@app.command()
def version() -> None:
    """Print the mammocad version."""
    typer.echo(__version__)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the studies into.")],
    studies: Annotated[int, typer.Option("--studies", min=1, help="Number of studies.")] = 4,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed: same seed, same studies.")] = 0,
    size: Annotated[PhantomSize, typer.Option("--size", help="small (fast) or full.")] = (
        PhantomSize.small
    ),
    malignant_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.3,
    defect_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
) -> None:
    """Write phantom four-view studies as DICOM, each with a truth.json."""
    from mammocad.commands.progress import batch_progress
    from mammocad.synthetic import write_studies

    with batch_progress(console) as progress:
        task = progress.add_task("synth", total=studies)
        folders = write_studies(
            n_studies=studies,
            out_dir=out,
            seed=seed,
            size=size.value,
            malignant_rate=malignant_rate,
            defect_rate=defect_rate,
            on_study=lambda _index, _folder: progress.advance(task),
        )
    console.print(f"wrote {len(folders)} studies under [bold]{out}[/bold]")


@app.command()
def preprocess(
    inputs: Annotated[
        list[Path], typer.Argument(help="DICOM/PNG/PGM files, folders or zip archives.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for masks, inputs and JSON.")],
) -> None:
    """Segment, orient and crop every image; write masks, model inputs and image JSON."""
    from mammocad.commands.preprocess import run_preprocess

    missing = [str(path) for path in inputs if not path.exists()]
    if missing:
        console.print(f"[red]no such file or folder: {', '.join(missing)}[/red]")
        raise typer.Exit(code=2)
    summary = run_preprocess(inputs, out_dir=out, console=console)
    console.print(
        f"{summary.processed} processed, {summary.rejected} rejected; "
        f"pictures and JSON in [bold]{out}[/bold] (summary.json lists every input)"
    )
    for entry in summary.entries:
        if entry["status"] == "rejected":
            console.print(
                f"  [yellow]{entry['source']}[/yellow]: {entry['rejection_code']} — {entry['text']}"
            )


if __name__ == "__main__":
    app()
