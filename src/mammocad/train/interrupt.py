"""Stop a training run cleanly on Ctrl-C or SIGTERM: finish the step, checkpoint, then stop.

A signal that lands in the middle of an optimiser step would leave weights that one step ahead
of the counters saved with them. While a :class:`StopRequests` is active, SIGINT and SIGTERM
(what ``docker stop``, Kubernetes, a batch scheduler or a closing session send) only record
the request; the training loop checks it after each step, writes its checkpoint and calls
:meth:`StopRequests.raise_stop`. ``--resume`` then goes on exactly from that step. A second
Ctrl-C while the checkpoint is being written interrupts at once, as usual.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

logger = logging.getLogger("mammocad.train")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """``with StopRequests() as stop:`` … ``if stop.requested: save(); stop.raise_stop()``.

    Signal handlers can only be installed from the main thread; elsewhere (a worker thread of
    the service) this does nothing and signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _record(self, number: int, frame: FrameType | None) -> None:
        if self.requested is not None and number == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: do not wait for the step
        self.requested = number
        logger.warning(
            "%s received: stopping after this step, once the checkpoint is written",
            signal.Signals(number).name,
        )

    def raise_stop(self, checkpoint: Path, where: str) -> None:
        """Say where the stopped run is kept (a warning, so the command line shows it), then
        end it the way the signal would have: KeyboardInterrupt for SIGINT, exit status
        128 + signal number otherwise (the shell's convention)."""
        logger.warning(
            "stopped %s; %s holds the run: the same command with --resume goes on from there",
            where,
            checkpoint,
        )
        if self.requested == signal.SIGINT:
            raise KeyboardInterrupt
        if self.requested is not None:
            raise SystemExit(128 + self.requested)
