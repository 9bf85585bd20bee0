"""Progress display for training: a Rich bar when Rich is installed and wanted, log lines
otherwise (GPU nodes may lack Rich; tests and CI turn it off)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

logger = logging.getLogger("mammocad.train")


class TrainProgress:
    """``with TrainProgress(enabled=...) as progress:`` then ``start_epoch`` / ``advance`` /
    ``end_epoch``. Epoch summaries always go to the ``mammocad.train`` logger."""

    def __init__(self, *, enabled: bool, total_epochs: int) -> None:
        self._total_epochs = total_epochs
        self._rich: Any = None
        self._task: Any = None
        if enabled:
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )
            except ImportError:
                logger.info("rich is not installed: progress goes to the log only")
            else:
                self._rich = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[status]}"),
                )

    def __enter__(self) -> TrainProgress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()

    def start_epoch(self, epoch: int, batches: int, *, completed: int = 0) -> None:
        if self._rich is None:
            return
        if self._task is not None:
            self._rich.remove_task(self._task)
        self._task = self._rich.add_task(
            f"epoch {epoch + 1}/{self._total_epochs}",
            total=batches,
            completed=completed,  # a resumed epoch starts where its checkpoint was written
            status="",
        )

    def advance(self, loss: float) -> None:
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, advance=1, status=f"loss {loss:.3f}")

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = {
            key: value
            for key, value in metrics.items()
            if key == "train/loss" or key.endswith("/mean_sens") or "malignant/sens_at_0.25" in key
        }
        summary = ", ".join(f"{key} {value:.4f}" for key, value in sorted(shown.items()))
        logger.info("epoch %d/%d: %s", epoch + 1, self._total_epochs, summary)
        if self._rich is not None:
            self._rich.console.print(f"epoch {epoch + 1}/{self._total_epochs}: {summary}")
