"""Settings of a detector training run (frozen, keyword-only; logged to MLflow as params)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DEFAULT_TRACKING_URI = "./mlruns"


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    """MLflow tracking. ``tracking_uri`` is any MLflow URI (``http://…``, ``databricks``,
    ``sqlite:///…``); a plain path is a local file store, ``./mlruns`` by default."""

    enabled: bool = True
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str = "mammocad-detector"
    run_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class BundleSpec:
    """What the bundle written at the end of training records besides the weights.

    ``preprocessing`` is the preprocess module's ``PreprocessParams.to_dict()`` used to make
    the training inputs: inference must use the same, so it travels with the weights.
    """

    name: str
    version: str
    preprocessing: dict[str, Any]
    training_data: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    intended_use: str = "Research use only. Not for clinical use."


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation, reproducibility and bookkeeping of one run.

    The learning rate warms up linearly over ``warmup_steps`` optimiser steps, then follows a
    cosine down to ``learning_rate * min_lr_ratio`` at the last step. ``amp`` only acts on CUDA
    (``autocast`` on CPU is slower here, see shared/NOTES.md); ``amp_dtype="auto"`` picks
    bfloat16 where the GPU supports it (no loss scaling needed), else float16 with a
    ``GradScaler``.
    """

    epochs: int = 24
    batch_size: int = 2
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    min_lr_ratio: float = 0.02
    grad_clip_norm: float = 10.0
    seed: int = 0
    device: str = "auto"  # "auto": CUDA when available, else CPU
    amp: bool = True
    amp_dtype: Literal["auto", "float16", "bfloat16"] = "auto"
    augment: bool = True
    #: train on windows of this many (rows, columns) input pixels instead of whole inputs
    #: (:mod:`mammocad.train.crops`); ``crop_lesion_fraction`` of them aim at a lesion
    crop_size: tuple[int, int] | None = None
    crop_lesion_fraction: float = 0.6
    validate_every: int = 1  # epochs; 0 validates only after the last epoch
    #: keep the weights of the validated epoch with the highest value of this validation metric
    #: (a key of the per-epoch metrics, e.g. ``"val/malignant/mean_sens"``) and write the
    #: bundle from them; ``None``: from the last step's weights
    select_by: str | None = None
    froc_bootstrap: int = 200  # bootstrap resamples for the final validation's CIs
    num_workers: int = 0
    resume: bool = False
    #: wall-clock budget of the optimisation in seconds (validation and the bundle come after),
    #: over the whole run: a resumed run gets what its checkpoint had left; the learning-rate
    #: cosine then follows whichever of steps or time is further along
    time_limit_s: float | None = None
    #: also checkpoint within an epoch every this many seconds (``None``: at epoch ends only),
    #: so a run stopped without warning loses at most this much work
    checkpoint_every_s: float | None = 600.0
    progress: bool = True
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.learning_rate <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("learning_rate must be positive and min_lr_ratio in [0, 1]")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive (or None for no limit)")
        if self.checkpoint_every_s is not None and self.checkpoint_every_s < 0:
            raise ValueError("checkpoint_every_s cannot be negative (None: at epoch ends only)")
        if self.select_by is not None and not self.select_by.startswith("val/"):
            raise ValueError(
                f"select_by {self.select_by!r}: name a validation metric, e.g. "
                "'val/malignant/mean_sens' or 'val/mass/sens_at_1fp'"
            )
        if self.select_by is not None and self.validate_every == 0:
            raise ValueError("select_by chooses among validated epochs: set validate_every ≥ 1")
        if self.crop_size is not None and min(self.crop_size) < 64:
            raise ValueError(f"crop_size {self.crop_size} is too small (at least 64×64)")
        if self.warmup_steps < 0 or self.validate_every < 0 or self.num_workers < 0:
            raise ValueError("warmup_steps, validate_every and num_workers cannot be negative")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
