"""``mammocad`` command line (Typer). Each command parses its arguments and calls into
``mammocad.commands``; exit status 0 means every input was handled (processed or rejected),
2 a usage error."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mammocad import __version__

if TYPE_CHECKING:
    from mammocad.datasets.spec import DataSpec
    from mammocad.pipeline import Pipeline

app = typer.Typer(
    name="mammocad",
    help="Open-source mammography CAD (research use only): DICOM in, findings out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
train_app = typer.Typer(help="Train models from phantom studies and local datasets.")
app.add_typer(train_app, name="train")
eval_app = typer.Typer(
    help="Evaluate models: detector FROC, reported findings' localisation, study- and "
    "breast-level ROC-AUC."
)
app.add_typer(eval_app, name="eval")


class PhantomSize(str, Enum):
    small = "small"
    full = "full"


class RiskMethod(str, Enum):
    boosting = "boosting"
    logistic = "logistic"


class Grouping(str, Enum):
    """``mammocad.io.GroupBy`` by name (importing mammocad.io here would load pydicom)."""

    study = "study"
    patient = "patient"


GroupByOption = Annotated[
    Grouping,
    typer.Option(
        "--group-by",
        help="study: by Study Instance UID; patient: a patient's images as one study, for "
        "collections that give each view its own study (CBIS-DDSM).",
    ),
]


class EvalLevel(str, Enum):
    study = "study"
    breast = "breast"


class SubgroupChoice(str, Enum):
    label = "label"
    manufacturer = "manufacturer"


class SrTemplateName(str, Enum):
    """``mammocad.report.dicom.SrTemplate`` by name (importing that here would load highdicom)."""

    tid1500 = "tid1500"
    mammography_cad = "mammography-cad"


class SendSyntaxName(str, Enum):
    """``mammocad.dicomnode.SendSyntax`` by name (importing that here would load pydicom)."""

    explicit = "explicit"
    implicit = "implicit"
    deflated = "deflated"


DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Service data folder (default: $MAMMOCAD_DATA_DIR)."),
]
# options several train / eval commands share, declared once so their help stays the same
StudySpecsOption = Annotated[
    list[str],
    typer.Option("--data", help="Training studies: phantom:n=N,seed=S,size=full[,...]"),
]
ValStudySpecsOption = Annotated[
    list[str], typer.Option("--val", help="Validation studies (phantom spec).")
]
TrainDataOption = Annotated[
    list[str],
    typer.Option("--data", help="Training data: phantom:n=N,seed=S,size=full | mias:path=DIR"),
]
ValDataOption = Annotated[list[str], typer.Option("--val", help="Validation data, same form.")]
TimeLimitOption = Annotated[
    float | None,
    typer.Option(help="Wall-clock budget (s) of the optimisation; --resume gets what is left."),
]
InputSizeOption = Annotated[str, typer.Option(help="Model input ROWSxCOLS.")]
ResumeOption = Annotated[bool, typer.Option(help="Continue from the run folder's checkpoint.")]
RenderWorkersOption = Annotated[int, typer.Option(help="Processes rendering phantoms.")]
BootstrapOption = Annotated[int, typer.Option(help="Bootstrap resamples for 95% CIs.")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help="CPU threads (default: usable CPUs).")
]


def _require_inputs(inputs: list[Path]) -> None:
    """Usage error (exit 2) when an input path does not exist."""
    missing = [str(path) for path in inputs if not path.exists()]
    if missing:
        console.print(f"[red]no such file or folder: {', '.join(missing)}[/red]")
        raise typer.Exit(code=2)


def _file_in_the_way(path: Path) -> Path | None:
    """``path`` or the nearest of its parents that exists as something other than a folder
    (a parent that cannot be looked into is left to the write probe, which says so)."""

    def blocks(candidate: Path) -> bool:
        try:
            return candidate.exists() and not candidate.is_dir()
        except OSError:  # e.g. PermissionError: a folder above cannot be entered
            return False

    return next((p for p in (path, *path.parents) if blocks(p)), None)


def _output_error(path: Path, option: str, what: str) -> str | None:
    """Why ``path`` cannot be the folder ``what`` is written into, or ``None``.

    Made (with its parents) and probed with a temporary file, so that a file in the way, a
    read-only disk or a missing permission stop the command before the model loads, not
    after the studies were analysed.
    """
    blocker = _file_in_the_way(path)
    if blocker == path:
        return f"{option} {path} is a file, not a folder: give a folder for {what}."
    if blocker is not None:
        return f"{option} {path} is inside {blocker}, which is a file: give a folder for {what}."
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        return f"{option} {path} cannot be written ({reason}): give a folder you can write to."
    return None


def _require_output(path: Path, option: str = "--out", what: str = "the results") -> None:
    """Usage error (exit 2) when ``path`` cannot be written (see :func:`_output_error`)."""
    if (error := _output_error(path, option, what)) is not None:
        console.print(error, style="red", markup=False)
        raise typer.Exit(code=2)


def _require_output_apart(inputs: list[Path], out: Path, option: str = "--out") -> None:
    """Usage error (exit 2) when ``out`` is, holds or lies inside an input
    (``check_output_apart``)."""
    from mammocad.commands.analyze import check_output_apart

    try:
        check_output_apart(inputs, out, option=option)
    except ValueError as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=2) from None


def _require_output_file(out: Path, what: str, example: str) -> None:
    """Usage error (exit 2) when ``--out``, a file to write (``what``, e.g. "archive"), is a
    folder, lies under a file, or its folder cannot be written."""
    if out.is_dir():
        error = f"--out {out} is a folder: name the {what} to write, e.g. {out / example}."
    elif (blocker := _file_in_the_way(out.parent)) is not None:
        error = f"--out {out} is inside {blocker}, which is a file: put the {what} in a folder."
    else:
        error = _output_error(out.parent, "--out", f"the {what}") or ""
    if error:
        console.print(error, style="red", markup=False)
        raise typer.Exit(code=2)


def _require_archive(inputs: list[Path], out: Path, work_dir: Path | None) -> None:
    """Usage error (exit 2) for a batch archive that cannot be written, or its work folder,
    or either among or inside the inputs."""
    from mammocad.commands.batch import default_work_dir

    work = work_dir if work_dir is not None else default_work_dir(out)
    _require_output_apart(inputs, out)
    _require_output_apart(inputs, work, "the work folder")
    _require_output_file(out, "archive", "results.zip")
    _require_output(work, "--work-dir" if work_dir is not None else "--out", "the work folder")


def _check_grouping(group_by: Grouping, *, dicom: bool) -> None:
    """Usage error (exit 2) for a grouping the outputs cannot follow, before any model loads."""
    from mammocad.commands.analyze import check_grouping

    try:
        check_grouping(group_by.value, dicom=dicom)
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=2) from None


def _parse_specs(texts: list[str], *, studies: bool = False) -> list[DataSpec]:
    """The ``--data`` / ``--val`` specifications, every value checked; ``studies``: the
    command needs whole four-view studies with breast labels, which only phantoms have."""
    from mammocad.datasets.spec import check_local_data, parse_spec

    if studies and any(text.partition(":")[0] != "phantom" for text in texts):
        raise typer.BadParameter(
            "this command needs four-view studies with breast labels, which only phantom "
            "data have here: use phantom:n=N,seed=S,size=full"
        )
    try:
        specs = [parse_spec(text) for text in texts]
        for spec, text in zip(specs, texts, strict=True):
            check_local_data(spec, text)
        return specs
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


def _require_run_inputs(out: Path, device: str = "cpu", what: str = "the run") -> None:
    """Usage error (exit 2) for a train or eval command's ``--out`` that cannot be written or
    ``--device`` this machine lacks ("auto": CUDA when present, else the CPU), before any
    data are rendered or model loaded."""
    _require_output(out, "--out", what)
    if device != "auto" and (error := _device_error(device)) is not None:
        console.print(error, style="red", markup=False)
        raise typer.Exit(code=2)


def _require_tracking(enabled: bool, tracking_uri: str) -> None:
    """Usage error (exit 2) when MLflow tracking is on and its store cannot be used."""
    from mammocad.train.config import TrackingConfig
    from mammocad.train.tracking import check_tracking

    with _usage_errors(ValueError, ImportError):
        check_tracking(TrackingConfig(enabled=enabled, tracking_uri=tracking_uri))


@contextmanager
def _usage_errors(*errors: type[Exception]) -> Iterator[None]:
    """Exit 2 with the error's own sentence (no traceback) for ``errors`` (default
    ValueError): what a bad input, option or bundle raises below the command line."""
    caught = errors or (ValueError,)
    try:
        yield
    except caught as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=2) from None


def _device_error(device: str) -> str | None:
    """Why ``--device`` names no device of this machine, or ``None``."""
    import torch

    try:
        target = torch.device(device)
    except (RuntimeError, ValueError):
        return f"--device {device} is no device: use cpu, cuda or cuda:N (or --device cpu)."
    if target.type != "cuda":
        return None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        return (
            f"--device {device}: this machine has no CUDA GPU (or no NVIDIA driver): use "
            "--device cpu."
        )
    if (target.index or 0) >= count:
        return (
            f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0 to "
            f"cuda:{count - 1}: choose one of them, or --device cpu."
        )
    return None


def _load_pipeline(model: Path | None, device: str, threads: int | None) -> Pipeline:
    """The analysis pipeline of ``model`` (or the default bundle); exit 2 when it is unusable
    or ``device`` is not on this machine."""
    from mammocad.commands.analyze import resolve_model
    from mammocad.errors import ModelBundleError
    from mammocad.pipeline import Pipeline

    if (error := _device_error(device)) is not None:
        console.print(error, style="red", markup=False)
        raise typer.Exit(code=2)
    with _usage_errors(ModelBundleError):
        return Pipeline.from_bundle(resolve_model(model), device=device, num_threads=threads)


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

    _require_inputs(inputs)
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


def _input_size(text: str) -> tuple[int, int]:
    rows, sep, cols = text.lower().partition("x")
    if not sep or not rows.isdigit() or not cols.isdigit():
        raise typer.BadParameter(f"{text!r}: give the input size as ROWSxCOLS, e.g. 1024x832")
    return int(rows), int(cols)


@train_app.command("detector")
def train_detector_command(
    data: TrainDataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, eval, bundle.")],
    val: ValDataOption = [],  # noqa: B006
    epochs: int = 12,
    batch_size: int = 2,
    learning_rate: float = 3e-4,
    warmup_steps: int = 300,
    seed: int = 0,
    device: str = "auto",
    time_limit: TimeLimitOption = None,
    workers: RenderWorkersOption = 1,
    backbone: str = "resnet18",
    input_size: InputSizeOption = "1024x832",
    roi_batch_size: Annotated[
        int | None,
        typer.Option(min=8, help="Proposals sampled per image for the second-stage loss."),
    ] = None,
    rpn_fg_iou: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Overlap at which an anchor counts as a lesion in the proposal loss (default "
            "0.7; 0.5 gives each lesion several anchors, docs/detector.md).",
        ),
    ] = None,
    augment: bool = True,
    crop: Annotated[
        str | None,
        typer.Option(help="Train on ROWSxCOLS windows of the input, lesion-centred in part."),
    ] = None,
    crop_lesion_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of windows aimed at a lesion.")
    ] = 0.6,
    validate_every: Annotated[
        int, typer.Option(help="Validate every N epochs (0: only after the last).")
    ] = 1,
    select_by: Annotated[
        str | None,
        typer.Option(
            help="Write the bundle from the validated epoch with the highest value of this "
            "metric, e.g. val/malignant/mean_sens (default: the last weights)."
        ),
    ] = None,
    mlflow: Annotated[bool, typer.Option(help="Track the run with MLflow.")] = True,
    tracking_uri: Annotated[
        str, typer.Option(help="MLflow tracking URI.", envvar="MLFLOW_TRACKING_URI")
    ] = "./mlruns",
    resume: ResumeOption = False,
    checkpoint_every: Annotated[
        float,
        typer.Option(min=0.0, help="Also checkpoint within an epoch every N s (0: epoch ends)."),
    ] = 600.0,
    name: str = "mammocad-detector",
    version: str = "0.1.0",
    init_bundle: Annotated[
        Path | None, typer.Option(help="Warm-start from this bundle's weights.")
    ] = None,
    init_backbone: Annotated[
        Path | None,
        typer.Option(help="Start the backbone from `train backbone`'s backbone.pt."),
    ] = None,
) -> None:
    """Train the lesion detector (from scratch or warm-started) and write its model bundle."""
    from mammocad.commands.train import DetectorRun, run_train_detector
    from mammocad.detect.config import DetectorConfig
    from mammocad.errors import ModelBundleError
    from mammocad.preprocess import PreprocessParams
    from mammocad.train.config import TrackingConfig, TrainConfig

    train_specs, val_specs = _parse_specs(data), _parse_specs(val)
    size = _input_size(input_size)
    _require_run_inputs(out, device)
    _require_tracking(mlflow, tracking_uri)
    # settings DetectorConfig or TrainConfig refuse, a bad --init-bundle, errors while training
    with _usage_errors(ValueError, ModelBundleError):
        detector = DetectorConfig(backbone=backbone, input_size=size)
        if roi_batch_size is not None:
            detector = replace(detector, roi_batch_size_per_image=roi_batch_size)
        if rpn_fg_iou is not None:
            detector = replace(detector, rpn_fg_iou=rpn_fg_iou)
        run = DetectorRun(
            train=train_specs,
            val=val_specs,
            out_dir=out,
            detector=detector,
            training=TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                warmup_steps=warmup_steps,
                seed=seed,
                device=device,
                augment=augment,
                crop_size=None if crop is None else _input_size(crop),
                crop_lesion_fraction=crop_lesion_fraction,
                validate_every=validate_every,
                select_by=select_by,
                resume=resume,
                time_limit_s=time_limit,
                checkpoint_every_s=checkpoint_every or None,
                tracking=TrackingConfig(enabled=mlflow, tracking_uri=tracking_uri),
            ),
            preprocessing=PreprocessParams(input_size=size),
            name=name,
            version=version,
            workers=workers,
            init_bundle=init_bundle,
            init_backbone=init_backbone,
        )
        result = run_train_detector(run, console=console)
    console.print(f"bundle written to [bold]{result.bundle_dir}[/bold]")


@train_app.command("ranker")
def train_ranker_command(
    evaluations: Annotated[
        list[Path],
        typer.Argument(help="`eval detector --out` folders of the bundle on training studies."),
    ],
    model: Annotated[Path, typer.Option("--model", help="The bundle the ranker is for.")],
    out: Annotated[Path, typer.Option("--out", help="New folder: the bundle with the ranker.")],
    test: Annotated[
        list[Path],
        typer.Option(help="`eval detector --out` folders on other studies, to measure it on."),
    ] = [],  # noqa: B006
    version: Annotated[
        str | None, typer.Option(help="The new bundle's version (default: VERSION+rank.DATE).")
    ] = None,
    bootstrap: BootstrapOption = 2000,
) -> None:
    """Fit the lesion ranker (P(malignant lesion) per finding) on a bundle's held-out
    detections and write a copy of the bundle with it."""
    from mammocad.commands.rank import run_train_ranker
    from mammocad.errors import ModelBundleError

    _require_inputs(evaluations)
    fitted_on = {folder.resolve() for folder in evaluations}
    if shared := [str(folder) for folder in test if folder.resolve() in fitted_on]:
        console.print(
            f"--test {', '.join(shared)} is also a training evaluation: the held-out gain "
            "would be measured on the boxes the ranker was fitted on; give --test folders of "
            "other studies",
            style="red",
            markup=False,
        )
        raise typer.Exit(code=2)
    with _usage_errors(ValueError, ModelBundleError):
        outcome = run_train_ranker(
            evaluations=evaluations,
            model=model,
            out=out,
            test=test,
            version=version,
            bootstrap=bootstrap,
            console=console,
        )
    console.print(f"bundle with the lesion ranker written to [bold]{outcome.bundle}[/bold]")


@train_app.command("backbone")
def train_backbone_command(
    data: TrainDataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoint.pt, backbone.pt.")],
    val: ValDataOption = [],  # noqa: B006
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 2000,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per step.")] = 64,
    patch_size: Annotated[int, typer.Option(min=32, help="Window side in input pixels.")] = 128,
    lesion_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of windows aimed at a lesion.")
    ] = 0.5,
    learning_rate: float = 1e-3,
    warmup_steps: int = 100,
    seed: int = 0,
    device: str = "auto",
    time_limit: TimeLimitOption = None,
    workers: RenderWorkersOption = 1,
    backbone: str = "resnet18",
    input_size: InputSizeOption = "1024x832",
    resume: ResumeOption = False,
) -> None:
    """Pre-train the detector's backbone on windows of the training images (which classes sit
    at each window's centre); start `train detector --init-backbone OUT/backbone.pt` from it."""
    from mammocad.commands.train_backbone import BackboneRun, run_train_backbone
    from mammocad.detect.config import DetectorConfig
    from mammocad.preprocess import PreprocessParams
    from mammocad.train.config import TrackingConfig, TrainConfig
    from mammocad.train.pretrain import PatchSettings

    size = _input_size(input_size)
    _require_run_inputs(out, device)
    with _usage_errors():
        detector = DetectorConfig(backbone=backbone, input_size=size)
        run = BackboneRun(
            train=_parse_specs(data),
            val=_parse_specs(val),
            out_dir=out,
            detector=detector,
            training=TrainConfig(
                batch_size=batch_size,
                learning_rate=learning_rate,
                warmup_steps=warmup_steps,
                seed=seed,
                device=device,
                resume=resume,
                time_limit_s=time_limit,
                tracking=TrackingConfig(enabled=False),
            ),
            steps=steps,
            patches=PatchSettings(
                size=patch_size,
                lesion_fraction=lesion_fraction,
                landmark=detector.landmark_index,
            ),
            preprocessing=PreprocessParams(input_size=size),
            workers=workers,
        )
        result = run_train_backbone(run, console=console)
    aucs = ", ".join(f"{name} {auc:.3f}" for name, auc in result.validation_auc.items())
    console.print(f"{result.steps} steps; validation window AUC: {aucs or 'no validation data'}")
    console.print(f"backbone written to [bold]{result.path}[/bold]")


@train_app.command("quality")
def train_quality_command(
    out: Annotated[Path, typer.Option("--out", help="Model file to write (JSON).")],
    phantoms: Annotated[int, typer.Option(min=1, help="Phantom seeds, each good + defects.")] = 120,
    seed: Annotated[int, typer.Option(help="First phantom seed; seeds the degradations.")] = 0,
    real: Annotated[
        list[Path], typer.Option("--real", help="Folder of real images (good), degraded too.")
    ] = [],  # noqa: B006
    framed: Annotated[
        bool,
        typer.Option(
            help="Also each real image cut to its breast as a digital detector frames it, as a "
            "good example (docs/quality.md, 'Framing')."
        ),
    ] = False,
) -> None:
    """Train the learned quality model (logistic regression, stored as JSON) from phantom
    defects and degraded real images."""
    from mammocad.commands.train_quality import run_train_quality

    for folder in real:
        if not folder.is_dir():
            raise typer.BadParameter(f"{folder} is not a folder", param_hint="--real")
    # checked before the examples are collected: the model file is written last
    _require_output_file(out, "model file", "quality.json")
    model, counts = run_train_quality(
        out=out, phantoms=phantoms, seed=seed, real=real, framed=framed
    )
    console.print(
        f"{sum(counts.values())} examples: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    console.print(
        f"quality model written to [bold]{out}[/bold] "
        f"(refuses at P(defective) >= {model.refuse_probability:.2f})"
    )


@train_app.command("fusion")
def train_fusion_command(
    model: Annotated[Path, typer.Option("--model", help="Detector bundle folder (only read).")],
    data: StudySpecsOption,
    out: Annotated[Path, typer.Option("--out", help="Folder for cache/, bundle/, report.")],
    val: ValStudySpecsOption = [],  # noqa: B006
    candidate_score: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Detections down to this score feed fusion (default: the finding threshold).",
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(min=1, help="Training epochs (few: see docs/fusion.md).")
    ] = 5,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="AdamW learning rate.")] = 1e-3,
    model_dim: Annotated[int, typer.Option(min=4, help="Width of the attention module.")] = 16,
    seed: Annotated[int, typer.Option(help="Seeds the module's training.")] = 0,
    bootstrap: BootstrapOption = 1000,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
) -> None:
    """Train cross-view fusion on a detector bundle's findings over phantom studies (breast
    labels only); writes OUT/bundle, a copy of the bundle with the fusion weights."""
    from mammocad.commands.train_fusion import FusionRun, run_train_fusion
    from mammocad.errors import ModelBundleError
    from mammocad.fuse.train import TrainParams

    _require_inputs([model])
    _require_run_inputs(out, device)
    run = FusionRun(
        model=model,
        data=_parse_specs(data, studies=True),
        val=_parse_specs(val, studies=True),
        out_dir=out,
        candidate_score=candidate_score,
        params=TrainParams(epochs=epochs, learning_rate=learning_rate, seed=seed),
        model_dim=model_dim,
        bootstrap=bootstrap,
        device=device,
        threads=threads,
    )
    with _usage_errors(ValueError, ModelBundleError):
        outcome = run_train_fusion(run, console=console)
    console.print(f"bundle with fusion written to [bold]{outcome.bundle_dir}[/bold]")


@train_app.command("malignancy")
def train_malignancy_command(
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder (only read).")],
    data: Annotated[
        list[str],
        typer.Option("--data", help="Training data: phantom:n=N,seed=S | mias:path=DIR[,...]"),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for patches/, bundle/, history.")],
    val: ValDataOption = [],  # noqa: B006
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    batch_size: Annotated[int, typer.Option(min=2)] = 32,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 3e-3,
    crop_size: Annotated[int, typer.Option(help="Window side the CNN reads (pixels).")] = 48,
    context: Annotated[float, typer.Option(help="Window side ÷ box side.")] = 2.0,
    seed: Annotated[int, typer.Option()] = 0,
    workers: RenderWorkersOption = 1,
    hard_negatives: Annotated[
        int,
        typer.Option(
            min=0,
            help="Per image, the bundle detector's best-scoring boxes that touch no annotated "
            "lesion, as not-malignant windows (0: plain tissue only).",
        ),
    ] = 0,
    time_limit: TimeLimitOption = None,
    mlflow: Annotated[bool, typer.Option(help="Track the run with MLflow.")] = True,
    tracking_uri: Annotated[
        str, typer.Option(help="MLflow tracking URI.", envvar="MLFLOW_TRACKING_URI")
    ] = "./mlruns",
) -> None:
    """Train the second-stage malignancy classifier on windows around lesions (and plain
    tissue); writes OUT/bundle, a copy of the bundle whose findings it rescores."""
    from mammocad.commands.train_malignancy import MalignancyRun, run_train_malignancy
    from mammocad.errors import ModelBundleError
    from mammocad.malignancy.model import ClassifierConfig
    from mammocad.malignancy.train import ClassifierTraining
    from mammocad.train.config import TrackingConfig

    _require_inputs([model])
    _require_run_inputs(out)
    _require_tracking(mlflow, tracking_uri)
    with _usage_errors(ValueError, ModelBundleError):
        run = MalignancyRun(
            model=model,
            data=_parse_specs(data),
            val=_parse_specs(val),
            out_dir=out,
            config=ClassifierConfig(crop_size=crop_size, context=context),
            training=ClassifierTraining(
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
                time_limit=time_limit,
            ),
            workers=workers,
            hard_negatives=hard_negatives,
            tracking=TrackingConfig(
                enabled=mlflow, tracking_uri=tracking_uri, experiment="mammocad-malignancy"
            ),
        )
        bundle, result = run_train_malignancy(run, console=console)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
    console.print(f"best epoch {result.best_epoch}: {shown or 'no validation data'}")
    console.print(f"bundle with the classifier written to [bold]{bundle}[/bold]")


@train_app.command("risk")
def train_risk_command(
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder (only read).")],
    data: StudySpecsOption,
    out: Annotated[Path, typer.Option("--out", help="Folder for bundle/ and the report.")],
    val: ValStudySpecsOption = [],  # noqa: B006
    cache: Annotated[
        Path | None,
        typer.Option(help="Per-study case cache (default OUT/cache); a fusion run's is reused."),
    ] = None,
    candidate_score: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Detections kept in the cache and read by the candidate features (default: "
            "the bundle's fusion candidate score, else its risk model's, else the finding "
            "threshold).",
        ),
    ] = None,
    method: Annotated[
        RiskMethod,
        typer.Option(
            help="Gradient-boosted trees over every feature, or a logistic model over the "
            "log-odds of --features (docs/risk.md).",
        ),
    ] = RiskMethod.boosting,
    features: Annotated[
        str,
        typer.Option(help="Comma-separated features of the logistic model."),
    ] = "max_candidate_contribution",
    iterations: Annotated[int, typer.Option(min=1, help="Boosting iterations.")] = 20,
    seed: Annotated[int, typer.Option(help="Seeds the boosting.")] = 0,
    bootstrap: BootstrapOption = 1000,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
) -> None:
    """Train the breast-level risk model (gradient boosting, calibrated) on a bundle's outputs
    over phantom studies; writes OUT/bundle, a copy of the bundle with the risk model."""
    from mammocad.commands.train_risk import RiskRun, run_train_risk
    from mammocad.errors import ModelBundleError
    from mammocad.risk.calibration import CalibrationError
    from mammocad.risk.model import BoostParams, LogisticParams, ModelParams

    _require_inputs([model])
    _require_run_inputs(out, device)
    if cache is not None:
        _require_output(cache, "--cache", "the case cache")
    params: ModelParams = BoostParams(max_iter=iterations, seed=seed)
    if method is RiskMethod.logistic:
        try:
            params = LogisticParams(features=tuple(n.strip() for n in features.split(",")))
        except ValueError as error:
            console.print(f"--features: {error}", style="red", markup=False)
            raise typer.Exit(code=2) from None
    run = RiskRun(
        model=model,
        data=_parse_specs(data, studies=True),
        val=_parse_specs(val, studies=True),
        out_dir=out,
        cache_dir=cache,
        candidate_score=candidate_score,
        params=params,
        bootstrap=bootstrap,
        device=device,
        threads=threads,
    )
    with _usage_errors(ValueError, CalibrationError, ModelBundleError):
        report = run_train_risk(run, console=console)
    console.print(f"bundle with risk model written to [bold]{report['bundle']}[/bold]")


@eval_app.command("detector")
def eval_detector_command(
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder.")],
    data: Annotated[
        list[str],
        typer.Option("--data", help="Evaluation data: phantom:n=N,seed=S | mias:path=DIR,fold=K"),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for froc.csv, .png, .json.")],
    bootstrap: BootstrapOption = 1000,
    workers: RenderWorkersOption = 1,
    device: DeviceOption = "cpu",
    score_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Candidate score cut-off (default: the bundle's, 0.05)."
        ),
    ] = None,
    detections_per_image: Annotated[
        int | None, typer.Option(min=1, help="Candidates kept per image (default: the bundle's).")
    ] = None,
    mirror_average: Annotated[
        bool,
        typer.Option(help="Average each image's detections with its top-bottom mirror's."),
    ] = False,
    ranker: Annotated[
        bool,
        typer.Option(help="Rank the malignant curve by the bundle's lesion ranker, if any."),
    ] = True,
) -> None:
    """FROC of a detector bundle: sensitivity at 0.125 … 4 false positives per image."""
    from mammocad.commands.evaluate import run_eval_detector
    from mammocad.errors import ModelBundleError

    specs = _parse_specs(data)
    _require_inputs([model])
    _require_run_inputs(out, device, "the evaluation")
    with _usage_errors(ValueError, ModelBundleError):
        result = run_eval_detector(
            model=model,
            data=specs,
            out_dir=out,
            bootstrap=bootstrap,
            workers=workers,
            device=device,
            score_threshold=score_threshold,
            detections_per_image=detections_per_image,
            mirror_average=mirror_average,
            use_ranker=ranker,
            console=console,
        )
    console.print(f"{result.n_images} images; results in [bold]{out}[/bold]")


@eval_app.command("pool")
def eval_pool_command(
    runs: Annotated[
        list[Path],
        typer.Argument(help="`eval detector --out` folders of disjoint image sets (CV folds)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the pooled froc.csv, .png, .json.")
    ],
    bootstrap: BootstrapOption = 1000,
) -> None:
    """One FROC over the images of several detector evaluations: cross-validation folds."""
    from mammocad.commands.evaluate import run_eval_pool

    _require_inputs(runs)
    with _usage_errors():
        run_eval_pool(runs=runs, out_dir=out, bootstrap=bootstrap, console=console)
    console.print(f"pooled {len(runs)} evaluations; results in [bold]{out}[/bold]")


@eval_app.command("breasts")
def eval_breasts_command(
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder.")],
    mias: Annotated[
        Path, typer.Option("--mias", help="mini-MIAS folder (Info.txt and mdbNNN.png).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for breasts.csv and the reports.")],
    fold: Annotated[
        int | None,
        typer.Option(help="Evaluate this patient-level fold only (the training's folds)."),
    ] = None,
    folds: Annotated[int, typer.Option(help="Number of patient-level folds.")] = 5,
    fold_seed: Annotated[
        int, typer.Option(help="Seed of the fold assignment (the training spec's fold_seed).")
    ] = 0,
    bootstrap: Annotated[int, typer.Option(help="Patient-bootstrap resamples.")] = 1000,
    threads: ThreadsOption = None,
) -> None:
    """Breast-level ROC-AUC on mini-MIAS: abnormal vs normal and malignant vs the rest."""
    from mammocad.errors import ModelBundleError
    from mammocad.eval.mias_breasts import evaluate_mias_breasts, write_breast_reports
    from mammocad.pipeline import Pipeline

    with _usage_errors(ModelBundleError, FileNotFoundError, ValueError):
        pipeline = Pipeline.from_bundle(model, num_threads=threads)
        evaluation = evaluate_mias_breasts(
            pipeline, mias, fold=fold, folds=folds, fold_seed=fold_seed, n_bootstrap=bootstrap
        )
    write_breast_reports(evaluation, out)
    for (component, source), count in evaluation.trained.items():
        console.print(
            f"[yellow]warning:[/yellow] {count} of the {len(evaluation.rows)} films evaluated "
            f"are in the {component}'s training data ({escape(source)}): their figures are "
            "not held out (evaluate the fold the training left out: --fold, --fold-seed)"
        )
    console.print(
        f"{len(evaluation.rows)} breasts, {evaluation.n_rejected} rejected (left out of the AUC)"
    )
    for name, task in evaluation.tasks.items():
        auc = task.metrics.auc
        console.print(
            f"{name}: AUC {auc.auc:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}] "
            f"({task.metrics.n_positive} positive of {task.metrics.n})",
            markup=False,  # an interval without bootstrap, "[nan, nan]", is no style tag
        )
    console.print(f"reports in [bold]{out}[/bold]")


@app.command()
def analyze(
    inputs: Annotated[
        list[Path], typer.Argument(help="DICOM/PNG/PGM files, folders or zip archives.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for results, overlays, summary.")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Model bundle folder (default: $MAMMOCAD_MODEL, else models/mammocad-detector).",
        ),
    ] = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    dicom: Annotated[
        bool,
        typer.Option(
            "--dicom", help="Also write DICOM SR, Secondary Captures and GSPS per study (dicom/)."
        ),
    ] = False,
    sr_template: Annotated[
        SrTemplateName,
        typer.Option(
            "--sr-template",
            help="The one SR of --dicom: tid1500 (Comprehensive SR) or mammography-cad (TID 4000).",
        ),
    ] = SrTemplateName.tid1500,
    group_by: GroupByOption = Grouping.study,
) -> None:
    """Find lesions in every study; write result.json, overlay pictures and summary.json."""
    from mammocad.commands.analyze import AnalyzeStorageError, print_summary, run_analyze

    _require_inputs(inputs)
    _check_grouping(group_by, dicom=dicom)
    _require_output_apart(inputs, out)  # before _require_output makes the folder
    _require_output(out)
    pipeline = _load_pipeline(model, device, threads)
    try:
        summary = run_analyze(
            inputs, out_dir=out, pipeline=pipeline, console=console, dicom=dicom,
            sr_template=sr_template.value, group_by=group_by.value,
        )  # fmt: skip
    except AnalyzeStorageError as error:  # the disk's or the folder's; it says what to do
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=1) from None
    print_summary(summary, out_dir=out, console=console)
    if summary.internal_errors or summary.unwritten:
        # our own failure, or a study left without result (its folder holds the user's
        # files), not bad input: scripts and CI must notice
        raise typer.Exit(code=1)


@app.command()
def batch(
    input_dir: Annotated[
        Path, typer.Argument(help="Folder (or zip) of studies: DICOM/PNG/PGM, any depth.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The archive to write, e.g. results.zip.")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Model bundle folder (default: $MAMMOCAD_MODEL, else models/mammocad-detector).",
        ),
    ] = None,
    dicom: Annotated[
        bool, typer.Option("--dicom", help="Also put DICOM SR, SC and GSPS of each study in.")
    ] = False,
    sr_template: Annotated[
        SrTemplateName,
        typer.Option(
            "--sr-template",
            help="The one SR of --dicom: tid1500 (Comprehensive SR) or mammography-cad (TID 4000).",
        ),
    ] = SrTemplateName.tid1500,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", help="Resumable work folder (default: <out>.work beside it)."),
    ] = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    group_by: GroupByOption = Grouping.study,
) -> None:
    """Analyse every study into one zip (predictions.csv, results, overlays, summary.html);
    interrupted, the same command resumes where it stopped."""
    from mammocad.commands.batch import (
        BatchBusyError,
        BatchStorageError,
        default_work_dir,
        run_batch,
    )

    _require_inputs([input_dir])
    _check_grouping(group_by, dicom=dicom)
    _require_archive([input_dir], out, work_dir)
    pipeline = _load_pipeline(model, device, threads)
    try:
        result = run_batch(
            [input_dir], out=out, pipeline=pipeline, work_dir=work_dir, dicom=dicom,
            sr_template=sr_template.value, console=console, group_by=group_by.value,
        )  # fmt: skip
    except KeyboardInterrupt:
        work = work_dir if work_dir is not None else default_work_dir(out)
        console.print(
            f"interrupted: finished studies are kept in {work}; run the same command again "
            "to resume",
            markup=False,
        )
        raise typer.Exit(code=130) from None
    except (BatchBusyError, BatchStorageError) as error:  # says what to do; studies kept
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=1) from None
    failures = result.failures
    console.print(
        f"{len(result.summary.studies)} studies ({len(result.analysed)} analysed, "
        f"{len(result.skipped)} already done), {len(failures)} inputs rejected; archive "
        f"{result.archive} (failures.csv lists the rejections)",
        markup=False,
    )
    if hint := result.summary.split_patient_hint():
        console.print(hint, markup=False)
    if hint := result.summary.no_inputs_hint():
        console.print(hint, style="yellow", markup=False)
    if result.summary.internal_errors:
        # our own failure, not bad input: scripts and CI must notice (the log has the traceback)
        raise typer.Exit(code=1)


@eval_app.command("study")
def eval_study_command(
    results: Annotated[
        Path, typer.Option("--results", help="analyze output folder, or batch archive (.zip).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for study_metrics.md and .csv.")],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="CSV: study_instance_uid,label[,patient_id][,group] (and laterality at --level "
            "breast)."
        ),
    ] = None,
    phantoms: Annotated[
        Path | None, typer.Option(help="Phantom folder: labels from its truth.json files.")
    ] = None,
    dataset_labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--dataset-labels",
            help="A public dataset's label file, recognised by its columns (repeatable): "
            "CBIS-DDSM case descriptions, CMMD clinical data (.xlsx or CSV), RSNA 2023 "
            "train.csv, INbreast.csv, VinDr-Mammo's breast-level or finding annotations, "
            "mini-MIAS Info.txt, or patient_id,laterality,label[,group]. Breast labels, "
            "matched by Patient ID (INbreast, VinDr-Mammo, mini-MIAS: by file name); at "
            "study level a study is malignant when a breast is, labelled when all its "
            "breasts are.",
        ),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Patient-bootstrap resamples.")] = 1000,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Calibration test's operating point (default: the results' 'high' threshold).",
        ),
    ] = None,
    level: Annotated[
        EvalLevel,
        typer.Option(
            help="study, or breast: each breast's probability against breast labels "
            "(CSV: study_instance_uid,laterality,label[,patient_id][,group])."
        ),
    ] = EvalLevel.study,
    subgroups: Annotated[
        SubgroupChoice,
        typer.Option(
            help="Subgroup tables by the labels' group (density, site) or by the images' "
            "manufacturer (the vendor: Manufacturer (0008,0070))."
        ),
    ] = SubgroupChoice.label,
) -> None:
    """Study-level ROC-AUC (patient bootstrap CI), operating points, calibration, rounding,
    and the Moscow experiment's calibration test; or the same per breast (--level breast)."""
    from mammocad.commands import eval_study as ev

    given = [source for source in (labels, phantoms, dataset_labels) if source]
    if len(given) != 1:
        console.print(
            "[red]give exactly one of --labels CSV, --phantoms DIR or --dataset-labels FILE[/red]"
        )
        raise typer.Exit(code=2)
    with _usage_errors(ValueError, OSError):  # unreadable labels, nothing to score
        read = ev.read_results(results)  # once: dataset labels are matched on them
        if level is EvalLevel.breast:
            if dataset_labels:
                breast_truth = ev.breast_labels_from_dataset(dataset_labels, read)
            elif labels is not None:
                breast_truth = ev.breast_labels_from_csv(labels)
            else:
                assert phantoms is not None  # exactly one source was given
                breast_truth = ev.breast_labels_from_phantoms(phantoms)
            evaluation = ev.run_eval_breasts(
                results_dir=results, labels=breast_truth, out_dir=out, bootstrap=bootstrap,
                console=console, results=read, subgroups_by=subgroups.value,
            )  # fmt: skip
        else:
            if dataset_labels:  # breast labels: a study is malignant when a breast is
                breasts = ev.breast_labels_from_dataset(dataset_labels, read)
                truth = ev.study_labels_from_breasts(breasts, read)
            elif labels is not None:
                truth = ev.labels_from_csv(labels)
            else:
                assert phantoms is not None
                truth = ev.labels_from_phantoms(phantoms)
            evaluation = ev.run_eval_study(
                results_dir=results, labels=truth, out_dir=out, bootstrap=bootstrap,
                threshold=threshold, console=console, results=read,
                subgroups_by=subgroups.value,
            )  # fmt: skip
    console.print(f"report: [bold]{evaluation.report}[/bold]")


@eval_app.command("findings")
def eval_findings_command(
    results: Annotated[
        Path, typer.Option("--results", help="analyze output folder, or batch archive (.zip).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for findings_froc.csv/.png/.json.")],
    boxes: Annotated[
        Path | None,
        typer.Option(
            help="CSV: sop_instance_uid (or image: file name without extension),x1,y1,x2,"
            "y2,label[,malignant] in original pixels; or VinDr-Mammo's finding_annotations.csv."
        ),
    ] = None,
    phantoms: Annotated[
        Path | None, typer.Option(help="Phantom folder: lesion boxes from its truth.json files.")
    ] = None,
    mias: Annotated[
        Path | None,
        typer.Option(help="mini-MIAS folder: lesion boxes from Info.txt (films by file name)."),
    ] = None,
    inbreast: Annotated[
        Path | None,
        typer.Option(
            help="INbreast's AllXML folder: lesion boxes from its ROI files (images by the "
            "File Name their file names start with)."
        ),
    ] = None,
    cbis_ddsm: Annotated[
        list[Path] | None,
        typer.Option(
            "--cbis-ddsm",
            help="CBIS-DDSM case description CSV (repeatable): boxes from the ROI masks under "
            "--images.",
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="The CBIS-DDSM DICOM folder, any layout (with --cbis-ddsm)."),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Image-bootstrap resamples.")] = 1000,
) -> None:
    """Lesion localisation of the reported findings: FROC against lesion boxes, ending at the
    operating point users see (the bundle's finding threshold)."""
    from mammocad.commands import eval_findings as ef

    if sum(bool(source) for source in (boxes, phantoms, mias, inbreast, cbis_ddsm)) != 1:
        console.print(
            "[red]give exactly one of --boxes CSV, --phantoms DIR, --mias DIR, --inbreast DIR "
            "or --cbis-ddsm CSV[/red]"
        )
        raise typer.Exit(code=2)
    if bool(cbis_ddsm) != (images is not None):
        console.print("[red]--cbis-ddsm needs --images DIR (its ROI masks), and only it[/red]")
        raise typer.Exit(code=2)
    with _usage_errors(ValueError, OSError):  # unreadable labels, nothing to score
        if boxes is not None:
            truth = ef.truth_from_boxes(boxes)
        elif cbis_ddsm and images is not None:
            truth = ef.truth_from_cbis_ddsm(cbis_ddsm, images)
        elif mias is not None:
            truth = ef.truth_from_mias(mias)
        elif inbreast is not None:
            truth = ef.truth_from_inbreast(inbreast)
        else:
            assert phantoms is not None  # exactly one source was given
            truth = ef.truth_from_phantoms(phantoms)
        evaluation = ef.run_eval_findings(
            results_dir=results, truth=truth, out_dir=out, bootstrap=bootstrap, console=console
        )
    console.print(f"curves: [bold]{evaluation.csv}[/bold], {evaluation.png}")


class CalibrationChoice(str, Enum):
    auto = "auto"
    isotonic = "isotonic"
    platt = "platt"


@app.command()
def calibrate(
    results: Annotated[
        Path, typer.Option("--results", help="analyze output folder, or batch archive (.zip).")
    ],
    model: Annotated[Path, typer.Option("--model", help="The bundle that made the results.")],
    out: Annotated[Path, typer.Option("--out", help="New bundle folder to write.")],
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="CSV: study_instance_uid,label[,patient_id][,group]."),
    ] = None,
    dataset_labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--dataset-labels",
            help="Instead of --labels: a dataset's breast label file (repeatable), as eval "
            "study reads it; a study is malignant when a breast is.",
        ),
    ] = None,
    method: Annotated[
        CalibrationChoice, typer.Option(help="auto: isotonic from 200 studies, else Platt.")
    ] = CalibrationChoice.auto,
    version: Annotated[
        str | None, typer.Option(help="Version of the new bundle (default: <source>+cal.DATE).")
    ] = None,
) -> None:
    """Refit risk calibration and suspicion thresholds on a site's labelled studies (the
    detector is not retrained); writes a copy of the bundle."""
    from mammocad.commands import eval_study as ev
    from mammocad.commands.calibrate import print_outcome, run_calibrate
    from mammocad.errors import MammocadError
    from mammocad.risk.calibration import CalibrationMethod

    if (labels is None) == (not dataset_labels):
        console.print("[red]give exactly one of --labels CSV or --dataset-labels FILE[/red]")
        raise typer.Exit(code=2)
    label_files = [labels] if labels is not None else list(dataset_labels or [])
    _require_inputs([results, *label_files, model])
    chosen = None if method is CalibrationChoice.auto else CalibrationMethod(method.value)
    with _usage_errors(MammocadError, ValueError):
        read = ev.read_results(results)  # once: dataset labels are matched on them
        if labels is not None:
            truth = ev.labels_from_csv(labels)
        else:
            breasts = ev.breast_labels_from_dataset(label_files, read)
            truth = ev.study_labels_from_breasts(breasts, read)
        named = ", ".join(str(path) for path in label_files)
        outcome = run_calibrate(
            results_dir=results, labels=truth, model=model, out=out, method=chosen,
            version=version, source=f"studies in {results}, labels {named}", results=read,
        )  # fmt: skip
    print_outcome(outcome, console=console)


@app.command("dicom-node")
def dicom_node(
    spool: Annotated[Path, typer.Option("--spool", help="Folder for received studies.")],
    ae_title: Annotated[str, typer.Option("--ae-title", help="The node's AE title.")] = "MAMMOCAD",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 11112,
    bind: Annotated[str, typer.Option("--bind", help="Listen on this address only.")] = "",
    allow: Annotated[
        list[str], typer.Option("--allow", help="Calling AE title allowed (repeatable; none: all).")
    ] = [],  # noqa: B006
    destination: Annotated[
        str | None, typer.Option("--destination", help="Results go here: AET@host:port.")
    ] = None,
    send_syntax: Annotated[
        list[SendSyntaxName],
        typer.Option("--send-syntax", help="Offered to --destination (repeatable, in order)."),
    ] = [SendSyntaxName.explicit, SendSyntaxName.implicit],  # noqa: B006
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", min=0.1, help="Seconds without a new instance.")
    ] = 10.0,
    data_dir: DataDirOption = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model bundle folder (as for analyze).")
    ] = None,
    sr_template: Annotated[
        SrTemplateName | None,
        typer.Option(
            "--sr-template",
            help="tid1500 or mammography-cad (default: $MAMMOCAD_SR_TEMPLATE, else tid1500).",
        ),
    ] = None,
    gsps: Annotated[bool, typer.Option("--gsps", help="Also send presentation states.")] = False,
    keep_studies: Annotated[
        bool, typer.Option("--keep-studies", help="Keep sent studies under SPOOL/done.")
    ] = False,
    in_process: Annotated[
        bool,
        typer.Option("--in-process", help="Analyse here, without the service database/queue."),
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cpu).")
    ] = None,
    threads: ThreadsOption = None,
) -> None:
    """DICOM node: C-ECHO/C-STORE SCP; each study goes to the service's job queue (database
    in --data-dir) after --idle-timeout seconds without a new instance, and its SR and
    Secondary Captures are sent to --destination."""
    from mammocad.commands.serve import build_settings
    from mammocad.dicomnode import Destination, NodeSettings, PipelineStudyHandler, SendSyntax
    from mammocad.dicomnode.run import run_node, run_queued_node
    from mammocad.errors import MammocadError
    from mammocad.logs import configure_logging

    try:
        syntaxes = tuple(SendSyntax(name.value) for name in send_syntax)
        settings = NodeSettings(
            ae_title=ae_title, port=port, bind_address=bind, allowed_calling_aets=frozenset(allow),
            destination=None if destination is None
            else Destination.parse(destination, transfer_syntaxes=syntaxes),
            spool_dir=spool, idle_timeout_s=idle_timeout, keep_studies=keep_studies,
        )  # fmt: skip
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    service = build_settings(
        data_dir=data_dir, model=model, device=device, threads=threads,
        sr_template=None if sr_template is None else sr_template.value,
    )  # fmt: skip
    configure_logging()
    try:
        if in_process:
            pipeline = _load_pipeline(service.model, service.device, service.threads)
            handler = PipelineStudyHandler(
                pipeline=pipeline, gsps=gsps, sr_template=service.sr_template
            )
            run_node(settings, handler)
        else:
            load = partial(_load_pipeline, service.model, service.device, service.threads)
            run_queued_node(settings, service, load_pipeline=load, gsps=gsps)
    except (OSError, MammocadError) as error:  # port taken, database unreachable, no Celery
        console.print(f"dicom-node cannot run: {error}", style="red", markup=False)
        raise typer.Exit(code=2) from None


apikey_app = typer.Typer(help="API keys of the REST API (stored hashed).")
app.add_typer(apikey_app, name="apikey")
db_app = typer.Typer(help="The service database (SQLite or PostgreSQL).")
app.add_typer(db_app, name="db")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535)] = None,
    data_dir: DataDirOption = None,
    model: Annotated[Path | None, typer.Option("--model", help="Model bundle folder.")] = None,
    preload: Annotated[
        list[Path],
        typer.Option("--preload", help="DICOM files or folders to analyse at start-up."),
    ] = [],  # noqa: B006
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the web UI in a browser once it listens.")
    ] = False,
    dicomweb_push: Annotated[
        str | None,
        typer.Option(
            "--dicomweb-push",
            metavar="URL",
            help="DICOMweb base URL: each study's DICOM results go to URL/studies (STOW-RS).",
        ),
    ] = None,
) -> None:
    """REST API, web UI and in-process workers (docs/api.md); settings from MAMMOCAD_* / .env."""
    from mammocad.commands.serve import build_settings, run_server
    from mammocad.errors import MammocadError

    settings = build_settings(
        host=host, port=port, data_dir=data_dir, model=model, dicomweb_push_url=dicomweb_push
    )
    try:
        run_server(settings, preload=preload, open_browser=open_browser)
    except MammocadError as error:  # unsafe settings, no model, database unreachable
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=2) from None


@app.command()
def worker(
    queues: Annotated[
        list[str], typer.Option("--queues", help="cpu, gpu or cpu,gpu (repeatable).")
    ],
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 1,
    data_dir: DataDirOption = None,
    model: Annotated[Path | None, typer.Option("--model", help="Model bundle folder.")] = None,
) -> None:
    """Celery worker for MAMMOCAD_BROKER_URL: runs job stages of the given queues."""
    from mammocad.commands.serve import build_settings
    from mammocad.commands.worker import parse_queues, run_worker
    from mammocad.errors import MammocadError

    try:
        names = parse_queues(queues)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    settings = build_settings(data_dir=data_dir, model=model)
    with _usage_errors(MammocadError):
        run_worker(settings, queues=names, concurrency=concurrency)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")],
    data_dir: DataDirOption = None,
) -> None:
    """Create an API key; the key is printed once, as the last line."""
    from mammocad.commands.serve import build_settings, new_api_key
    from mammocad.errors import MammocadError

    with _usage_errors(MammocadError):
        key = new_api_key(build_settings(data_dir=data_dir), name=name)
    console.print(f"API key {name!r} created; it is shown only now:", markup=False)
    typer.echo(key)


@apikey_app.command("revoke")
def apikey_revoke(
    name: Annotated[str, typer.Option("--name", help="The key's name.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke an API key: requests with it are refused (403) from now on."""
    from mammocad.commands.serve import build_settings, revoke_key

    if not revoke_key(build_settings(data_dir=data_dir), name=name):
        console.print(f"no API key named {name!r}", style="red", markup=False)
        raise typer.Exit(code=2)
    console.print(f"API key {name!r} revoked", markup=False)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None) -> None:
    """Create or migrate the database to this version's schema (serve does it on start)."""
    from mammocad.commands.serve import build_settings, upgrade_database
    from mammocad.errors import MammocadError

    with _usage_errors(MammocadError):
        url = upgrade_database(build_settings(data_dir=data_dir))
    console.print(f"database at {url} is up to date", markup=False)


if __name__ == "__main__":
    app()
