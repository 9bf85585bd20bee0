"""The detector training loop: seeded, resumable, AMP on CUDA, tracked, ends with a bundle.

``train_detector`` runs epochs over a :class:`DetectionDataset`, checkpoints after each one
and every ``checkpoint_every_s`` seconds within one (``<output>/checkpoints/last.pt``,
atomically; also when Ctrl-C or SIGTERM stops it), validates with FROC every
``validate_every`` epochs, and finally writes the model bundle (``<output>/<bundle name>/``)
and the FROC table and plot (``<output>/eval/``), logging all of it to MLflow when enabled.
Nothing here needs pydicom, albumentations, MLflow or Rich unless the settings ask for them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mammocad.detect.bundle import save_bundle
from mammocad.detect.config import DetectorConfig
from mammocad.detect.model import MammoDetector, build_detector
from mammocad.eval.froc import FrocReport, plot_froc, write_froc_csv
from mammocad.train.augment import Augmenter
from mammocad.train.checkpoint import (
    EpochProgress,
    TrainState,
    checkpoint_extra,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
    seed_everything,
)
from mammocad.train.config import BundleSpec, TrainConfig
from mammocad.train.crops import LesionCropper
from mammocad.train.data import DetectionDataset, DetectionSample
from mammocad.train.interrupt import StopRequests
from mammocad.train.optim import WallClock, build_optimizer, build_scheduler, resolve_device
from mammocad.train.pretrain import backbone_body
from mammocad.train.progress import TrainProgress
from mammocad.train.tracking import Tracker, open_tracker
from mammocad.train.validate import detect_dataset, froc_of, summary_metrics

logger = logging.getLogger("mammocad.train")
CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"  # beside last.pt: the weights ``select_by`` chose
#: the checkpoint's ``extra`` entry of an epoch a stop left complete but not yet validated
#: nor logged: ``{"epoch": index, "metrics": its training metrics}``
VALIDATION_PENDING = "validation_pending"


def checkpoint_path(output_dir: str | Path) -> Path:
    """Where a run in ``output_dir`` keeps the checkpoint ``resume`` continues from."""
    return Path(output_dir) / "checkpoints" / CHECKPOINT_NAME


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """Where a finished run put things and what it measured."""

    bundle_dir: Path
    checkpoint: Path
    epochs: int
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)  # epochs run in this call
    #: the epoch whose weights the bundle holds, with ``select_by``: metric, value, epoch
    selected: dict[str, Any] | None = None
    report: FrocReport | None = None  # final validation, with bootstrap CIs
    run_id: str | None = None


class _EpochData(Dataset[DetectionSample]):
    """Applies augmentation and cropping with a seed fixed by (run seed, epoch, index)."""

    def __init__(
        self,
        data: DetectionDataset,
        augmenter: Augmenter | None,
        seed: int,
        cropper: LesionCropper | None = None,
    ) -> None:
        self.data = data
        self.augmenter = augmenter
        self.cropper = cropper
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> DetectionSample:
        sample = self.data[index]
        if self.augmenter is None and self.cropper is None:
            return sample
        seeds = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2)
        if self.augmenter is not None:
            sample = self.augmenter(sample, seed=int(seeds[0]))
        if self.cropper is not None:
            sample = self.cropper(sample, seed=int(seeds[1]))
        return sample


@dataclass
class _Run:
    """The moving parts of one training run."""

    model: MammoDetector
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    config: TrainConfig
    clock: WallClock


def train_detector(
    *,
    detector_config: DetectorConfig,
    train_config: TrainConfig,
    train_data: DetectionDataset,
    val_data: DetectionDataset | None,
    output_dir: str | Path,
    bundle: BundleSpec,
    init_state: dict[str, torch.Tensor] | None = None,
    init_backbone: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train a detector from scratch (or resume), validate it, and write its bundle.

    ``init_state`` warm-starts a NEW run from another model's weights (e.g. a bundle trained
    on a GPU, continued here); ``init_backbone`` starts only the backbone body from
    pre-trained weights (:mod:`mammocad.train.pretrain`), the FPN and heads from scratch. A
    resumed run ignores both and takes its checkpoint's weights.
    """
    if init_state is not None and init_backbone is not None:
        raise ValueError("start from a bundle or from a pre-trained backbone, not both")
    if len(train_data) == 0:
        raise ValueError("the training set is empty")
    if train_config.select_by is not None and (val_data is None or len(val_data) == 0):
        raise ValueError(f"select_by {train_config.select_by!r} needs validation data")
    output = Path(output_dir)
    checkpoint = checkpoint_path(output)
    seed_everything(train_config.seed)
    run = _prepare(detector_config, train_config, steps_per_epoch=_steps(train_data, train_config))
    if init_state is not None:
        run.model.load_state_dict(init_state)
    if init_backbone is not None:
        backbone_body(run.model).load_state_dict(init_backbone)
    settings = run_settings(
        detector_config,
        train_config,
        train_images=len(train_data),
        train_specs=bundle.training_data.get("train"),
    )
    state = _resume(run, checkpoint, settings) if train_config.resume else TrainState()
    # recorded in every checkpoint, so that a resume with other settings is refused
    state = replace(state, extra={**state.extra, **settings})
    tracker = open_tracker(train_config.tracking, run_id=state.run_id)
    if state.run_id is None:
        tracker.log_params({"detector": detector_config.to_dict(), "train": _params(train_config)})
        state = replace(state, run_id=tracker.run_id)
    try:
        history, state = _epochs(run, state, train_data, val_data, checkpoint, tracker)
        selected = _restore_selected(run, checkpoint.parent / BEST_NAME, state, tracker)
        if selected is not None:
            bundle = replace(bundle, training_data={**bundle.training_data, "selected": selected})
        report = _final_validation(run, val_data, output, tracker, state)
        bundle_dir = _write_bundle(run.model, output, bundle, report)
        tracker.log_artifact(bundle_dir, artifact_path="bundle")
    except BaseException:
        tracker.finish(failed=True)
        raise
    tracker.finish()
    return TrainResult(
        bundle_dir=bundle_dir,
        checkpoint=checkpoint,
        epochs=state.epoch,
        steps=state.step,
        history=history,
        selected=selected,
        report=report,
        run_id=tracker.run_id,
    )


def _prepare(detector_config: DetectorConfig, config: TrainConfig, *, steps_per_epoch: int) -> _Run:
    device = resolve_device(config.device)
    if device.type == "cuda":
        # every input has the preprocessed size, so cuDNN's per-shape tuning pays off
        torch.backends.cudnn.benchmark = True
    model = build_detector(detector_config).to(device)
    optimizer = build_optimizer(model, config)
    clock = WallClock(config.time_limit_s)
    scheduler = build_scheduler(
        optimizer,
        total_steps=steps_per_epoch * config.epochs,
        warmup_steps=config.warmup_steps,
        min_lr_ratio=config.min_lr_ratio,
        elapsed_fraction=clock.fraction if config.time_limit_s is not None else None,
    )
    amp_dtype = _amp_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return _Run(model, optimizer, scheduler, scaler, device, amp_dtype, config, clock)


def _resume(run: _Run, checkpoint: Path, settings: dict[str, dict[str, Any]]) -> TrainState:
    """The state saved in ``checkpoint``, restored into ``run``; a fresh state without one."""
    if not checkpoint.is_file():
        logger.info("no checkpoint at %s: starting from scratch", checkpoint)
        return TrainState()
    state = load_checkpoint(
        checkpoint,
        model=run.model,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        scaler=run.scaler,
        map_location=run.device,
    )
    _check_same_settings(checkpoint, _recorded_settings(state.extra), settings)
    run.clock.resume_from(state.elapsed_s)
    where = (
        f"epoch {state.epoch + 1}, batch {state.in_epoch.batch}"
        if state.in_epoch
        else (f"the end of epoch {state.epoch}")
    )
    logger.info("resumed from %s at %s (step %d)", checkpoint, where, state.step)
    return state


#: the training settings a resumed run must share with the run that wrote its checkpoint:
#: the epoch's sample order is cut at ``batch × batch_size`` and drawn from the seed, the
#: windows from the seed and crop settings, and the optimiser and learning-rate schedule
#: restored from the checkpoint would silently override a changed rate; the best epoch so
#: far (``best.pt``) was chosen by ``select_by``, and the epochs before the stop cannot be
#: measured again by another metric. The budget (epochs, time limit) and bookkeeping
#: (validation, workers, device) may change.
RESUME_FIXED = (
    "batch_size",
    "seed",
    "learning_rate",
    "weight_decay",
    "warmup_steps",
    "min_lr_ratio",
    "crop_size",
    "crop_lesion_fraction",
    "select_by",
)


def run_settings(
    detector_config: DetectorConfig,
    train_config: TrainConfig,
    *,
    train_images: int | None = None,
    train_specs: Any = None,
) -> dict[str, dict[str, Any]]:
    """What a checkpoint records of the run that wrote it (its ``extra``), as JSON gives it
    back: the detector configuration, the settings of :data:`RESUME_FIXED` and, where known,
    the training data: the number of images and the ``--data`` specs as the bundle records
    them (another ``--data`` changes every epoch's samples, also one of the same size, such as
    another phantom seed; the dataset is not read for this, it may load lazily)."""
    training = {name: getattr(train_config, name) for name in RESUME_FIXED}
    if train_images is not None:
        training["train_images"] = train_images
    if train_specs is not None:
        training["train_data"] = train_specs
    return {"detector": _plain(detector_config.to_dict()), "training": _plain(training)}


def check_resumable(
    checkpoint: Path,
    config: DetectorConfig,
    training: TrainConfig,
    *,
    train_specs: Any = None,
) -> None:
    """ValueError when the checkpoint a ``--resume`` would read is broken or was written with
    another detector configuration, other :data:`RESUME_FIXED` settings or other ``--data``
    specs (``train_specs``, as the bundle records them): asked before the data are prepared,
    so the answer comes in seconds (:func:`train_detector` checks again,
    with the number of training images, when it loads the checkpoint)."""
    wanted = run_settings(config, training, train_specs=train_specs)
    _check_same_settings(checkpoint, _recorded_settings(checkpoint_extra(checkpoint)), wanted)


def _recorded_settings(extra: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``extra`` with the settings it implies but did not record: one written
    before ``select_by`` was recorded names, in its best epoch, the metric that chose it."""
    training, best = extra.get("training") or {}, extra.get("best")
    if best is None or "select_by" in training:
        return extra
    return {**extra, "training": {**training, "select_by": best["metric"]}}


def _check_same_settings(
    checkpoint: Path, extra: dict[str, Any], wanted: dict[str, dict[str, Any]]
) -> None:
    """ValueError when ``checkpoint`` was written with other settings than ``wanted``. The
    weights of another input size load without complaint (the network is convolutional),
    but the bundle would then record inputs the weights were not trained on; another batch
    size would resume the epoch at another sample. Settings a checkpoint does not record
    (written before they were) are not checked."""
    changed = [
        f"{name} {saved[name]} (now {now[name]})"
        for section, now in wanted.items()
        for saved in [extra.get(section) or {}]
        for name in sorted(set(saved) & set(now))
        if saved[name] != now[name]
    ]
    if changed:
        raise ValueError(
            f"{checkpoint} was written by a run with other settings: {', '.join(changed)}; "
            "resume with the settings and data that started the run, or train into a new "
            "--out folder"
        )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as JSON gives them back (tuples as lists), the form the checkpoint keeps."""
    plain: dict[str, Any] = json.loads(json.dumps(values))
    return plain


def _epochs(
    run: _Run,
    state: TrainState,
    train_data: DetectionDataset,
    val_data: DetectionDataset | None,
    checkpoint: Path,
    tracker: Tracker,
) -> tuple[list[dict[str, float]], TrainState]:
    config = run.config
    augmenter = Augmenter() if config.augment else None
    cropper = None
    if config.crop_size is not None:
        cropper = LesionCropper(
            size=config.crop_size,
            lesion_fraction=config.crop_lesion_fraction,
            landmark=run.model.config.landmark_index,
        )
    epoch_data = _EpochData(train_data, augmenter, config.seed, cropper)
    history: list[dict[str, float]] = []
    with (
        TrainProgress(enabled=config.progress, total_epochs=config.epochs) as progress,
        StopRequests() as stop,
    ):
        if (pending := state.extra.get(VALIDATION_PENDING)) is not None:
            # the stop came in the last batch of this complete epoch: validate it, keep it if
            # best and log it now, before the next epoch, as the uninterrupted run did (the
            # checkpoint's RNG states are those its validation started from)
            epoch, metrics = int(pending["epoch"]), dict(pending["metrics"])
            extra = {key: value for key, value in state.extra.items() if key != VALIDATION_PENDING}
            state = replace(state, extra=extra)
            state = _validate(run, state, epoch, metrics, val_data, checkpoint)
            if stop.requested is not None:  # during the validation: last.pt still has it pending
                stop.raise_stop(checkpoint, f"validating epoch {epoch + 1}")
            _save(run, checkpoint, state)
            tracker.log_metrics(metrics, step=epoch + 1)
            progress.end_epoch(epoch, metrics)
            history.append(metrics)
        for epoch in range(state.epoch, config.epochs):
            if run.clock.out_of_time():  # a resumed run whose budget was already spent
                logger.info("time budget of %s s already spent", config.time_limit_s)
                break
            epoch_data.epoch = epoch
            done = _train_epoch(run, epoch_data, state, epoch, progress, checkpoint, stop)
            complete = done.batch >= _steps(train_data, config)
            state = _state_at(run, state, done, epoch=epoch, complete=complete)
            metrics = _epoch_metrics(run, done)
            if complete and stop.requested is not None:
                # stopped in the epoch's last batch: its validation (minutes on a CPU) and its
                # logging are left to the resume, which does them first
                pending = {"epoch": epoch, "metrics": metrics}
                state = replace(state, extra={**state.extra, VALIDATION_PENDING: pending})
            elif complete:
                state = _validate(run, state, epoch, metrics, val_data, checkpoint)
            _save(run, checkpoint, state)
            if stop.requested is not None:
                if complete and VALIDATION_PENDING not in state.extra:
                    # the stop came during the validation, which finished: the resume starts
                    # with the next epoch, so this one is logged now or never
                    tracker.log_metrics(metrics, step=epoch + 1)
                stop.raise_stop(checkpoint, f"in epoch {epoch + 1} after step {state.step}")
            # a partial epoch (time budget) is logged too; its resumed remainder logs the
            # whole epoch again at the same step
            tracker.log_metrics(metrics, step=epoch + 1)
            progress.end_epoch(epoch, metrics)
            history.append(metrics)
            if run.clock.out_of_time():
                logger.info("time budget spent in epoch %d: stopping", epoch + 1)
                break
    return history, state


def _validate(
    run: _Run,
    state: TrainState,
    epoch: int,
    metrics: dict[str, float],
    val_data: DetectionDataset | None,
    checkpoint: Path,
) -> TrainState:
    """After the complete ``epoch``, when a validation is due: its metrics added to
    ``metrics``, and with ``select_by`` its weights kept in ``best.pt`` if they are the best."""
    config = run.config
    due = config.validate_every and (epoch + 1) % config.validate_every == 0
    if not due or val_data is None or not len(val_data):
        return state
    results = detect_dataset(run.model, val_data, device=run.device, autocast_dtype=run.amp_dtype)
    metrics.update(summary_metrics(froc_of(results, run.model.config)))
    if config.select_by is not None:
        state = _keep_best(run, checkpoint.parent / BEST_NAME, state, metrics)
    return state


def _state_at(
    run: _Run, state: TrainState, done: EpochProgress, *, epoch: int, complete: bool
) -> TrainState:
    """The run's state after ``done`` of ``epoch``, from ``state``, its state when the epoch
    (or its resumed remainder) began."""
    begun = state.in_epoch or EpochProgress()
    return replace(
        state,
        epoch=epoch + 1 if complete else epoch,
        step=state.step - begun.steps - begun.skipped + done.steps + done.skipped,
        elapsed_s=run.clock.elapsed(),
        in_epoch=None if complete else done,
    )


def _save(run: _Run, checkpoint: Path, state: TrainState) -> None:
    save_checkpoint(
        checkpoint,
        model=run.model,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        scaler=run.scaler,
        state=state,
    )


def _keep_best(run: _Run, path: Path, state: TrainState, metrics: dict[str, float]) -> TrainState:
    """Save the weights to ``path`` when this epoch beats the best so far on ``select_by``
    (ties keep the earlier epoch; a NaN — no lesion of that curve — never wins)."""
    name = str(run.config.select_by)
    if name not in metrics:
        known = ", ".join(sorted(key for key in metrics if key.startswith("val/")))
        raise ValueError(f"select_by {name!r} is not among this run's validation metrics: {known}")
    value = float(metrics[name])
    best = state.extra.get("best")
    if best is not None and _rank(value) <= _rank(best["value"]):
        return state
    best = {"metric": name, "value": value, "epoch": state.epoch}
    save_weights(path, run.model, best)
    logger.info("epoch %d is the best so far: %s %.4f", state.epoch, name, value)
    return replace(state, extra={**state.extra, "best": best})


def _rank(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _restore_selected(
    run: _Run, path: Path, state: TrainState, tracker: Tracker
) -> dict[str, Any] | None:
    """With ``select_by``, load the chosen epoch's weights for the bundle; ``None`` without.
    The run's state names the choice, so a ``best.pt`` left by an earlier run in the same
    folder is never taken for this one's."""
    if run.config.select_by is None:
        return None
    if state.extra.get("best") is None or not path.is_file():
        logger.warning("no validated epoch to select from: the bundle holds the last weights")
        return None
    selected = load_weights(path, run.model)
    tracker.log_metrics({"selected/epoch": float(selected["epoch"])}, step=int(selected["epoch"]))
    logger.info(
        "bundle from epoch %d (%s %.4f)", selected["epoch"], selected["metric"], selected["value"]
    )
    return selected


def _train_epoch(
    run: _Run,
    data: _EpochData,
    state: TrainState,
    epoch: int,
    progress: TrainProgress,
    checkpoint: Path,
    stop: StopRequests,
) -> EpochProgress:
    """Train over the rest of ``epoch`` from where ``state`` left it; returns how far it got,
    which falls short of the whole epoch when the time budget ran out or a stop was requested.
    Every ``checkpoint_every_s`` seconds it writes a mid-epoch checkpoint."""
    config = run.config
    begun = state.in_epoch or EpochProgress()
    seed = config.seed * 100_003 + epoch
    # the epoch's order, less the samples a resumed epoch already trained on: the batches that
    # follow are those of the full order
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    loader = DataLoader(
        data,
        batch_size=config.batch_size,
        sampler=order[begun.batch * config.batch_size :],
        # the loader draws its workers' base seed from this generator; without one it would
        # draw from torch's global generator and shift the RoI sampling of a resumed epoch
        generator=torch.Generator().manual_seed(seed + 1),
        collate_fn=list,
        num_workers=config.num_workers,
        pin_memory=run.device.type == "cuda",
    )
    run.model.train()
    done = begun
    progress.start_epoch(epoch, begun.batch + len(loader), completed=begun.batch)
    last_saved = time.monotonic()
    for batch in loader:
        losses = _train_step(run, batch)
        sums = dict(done.loss_sums)
        for key, value in (losses or {}).items():
            sums[key] = sums.get(key, 0.0) + value
        done = EpochProgress(
            batch=done.batch + 1,
            steps=done.steps + (losses is not None),
            skipped=done.skipped + (losses is None),
            loss_sums=sums,
        )
        progress.advance(losses["loss"] if losses else float("nan"))
        if stop.requested is not None or run.clock.out_of_time():
            break  # the caller checkpoints; validation and the bundle follow a budget stop
        every = config.checkpoint_every_s
        if every is not None and time.monotonic() - last_saved >= every:
            _save(run, checkpoint, _state_at(run, state, done, epoch=epoch, complete=False))
            last_saved = time.monotonic()
    return done


def _epoch_metrics(run: _Run, done: EpochProgress) -> dict[str, float]:
    metrics = {f"train/{key}": value / max(done.steps, 1) for key, value in done.loss_sums.items()}
    metrics["train/lr"] = float(run.scheduler.get_last_lr()[0])
    metrics["train/skipped_batches"] = float(done.skipped)
    return metrics


def _train_step(run: _Run, batch: list[DetectionSample]) -> dict[str, float] | None:
    """One optimiser step; ``None`` when the loss was not finite and the batch was skipped."""
    # samples may be stored as float16 to save memory; the model computes in float32 (or AMP)
    images = [s.image.to(run.device, torch.float32, non_blocking=True) for s in batch]
    targets = [s.target for s in batch]
    with torch.autocast(
        run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None
    ):
        output = run.model(images, targets)
        loss = output.total_loss()
    run.optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss))
    if finite:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        # a diverging batch from scratch must not poison the weights; the schedule still moves
        logger.warning("non-finite loss (%s); batch skipped", float(loss))
    run.scheduler.step()
    if not finite:
        return None
    values = {key: float(value.detach()) for key, value in output.losses.items()}
    values["loss"] = float(loss.detach())
    return values


def _final_validation(
    run: _Run,
    val_data: DetectionDataset | None,
    output: Path,
    tracker: Tracker,
    state: TrainState,
) -> FrocReport | None:
    if val_data is None or len(val_data) == 0:
        return None
    results = detect_dataset(run.model, val_data, device=run.device, autocast_dtype=run.amp_dtype)
    report = froc_of(
        results, run.model.config, bootstrap=run.config.froc_bootstrap, seed=run.config.seed
    )
    csv_path = write_froc_csv(report, output / "eval" / "froc.csv")
    tracker.log_artifact(csv_path, artifact_path="eval")
    if report.curves:
        try:
            png = plot_froc(report, output / "eval" / "froc.png", title="validation FROC")
        except ImportError as error:  # matplotlib missing on a bare GPU node
            logger.warning("FROC plot skipped: %s", error)
        else:
            tracker.log_artifact(png, artifact_path="eval")
    tracker.log_metrics(summary_metrics(report, prefix="final"), step=state.epoch)
    return report


def _write_bundle(
    model: MammoDetector, output: Path, spec: BundleSpec, report: FrocReport | None
) -> Path:
    folder = output / spec.name
    save_bundle(
        model,
        folder,
        name=spec.name,
        version=spec.version,
        preprocessing=spec.preprocessing,
        thresholds=spec.thresholds,
        training_data=spec.training_data,
        metrics=report.to_metrics() if report is not None else {},
        intended_use=spec.intended_use,
    )
    return folder


def _steps(data: DetectionDataset, config: TrainConfig) -> int:
    return max(1, math.ceil(len(data) / config.batch_size))


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or ``None`` for full precision (always on CPU)."""
    if not config.amp or device.type != "cuda":
        return None
    if config.amp_dtype == "float16":
        return torch.float16
    if config.amp_dtype == "bfloat16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _params(config: TrainConfig) -> dict[str, Any]:
    values = config.to_dict()
    values.pop("tracking", None)  # where results go is not a property of the run
    return values
