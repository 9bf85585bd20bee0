"""Experiment tracking: MLflow when enabled, a silent stand-in otherwise.

MLflow is imported lazily (GPU nodes may train without it) and used through ``MlflowClient``
with an explicit run id rather than the fluent ``mlflow.start_run`` API, so nothing global is
left active and a resumed training run appends to the run it started.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from mammocad.train.config import TrackingConfig

logger = logging.getLogger(__name__)

# MLflow ≥ 3 refuses the file store unless this is set; a local ./mlruns folder is still the
# simplest default on one machine (no database to run), so it is opted into explicitly.
_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
# MLflow's limit on one parameter value
_MAX_PARAM_LENGTH = 6000


class Tracker(Protocol):
    @property
    def run_id(self) -> str | None: ...

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def finish(self, *, failed: bool = False) -> None: ...


class NullTracker:
    """Tracking turned off: every call does nothing."""

    @property
    def run_id(self) -> str | None:
        return None

    def log_params(self, params: dict[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        return None

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        return None

    def finish(self, *, failed: bool = False) -> None:
        return None


class MlflowTracker:
    """One MLflow run; ``run_id`` continues an existing run (after a resume)."""

    def __init__(self, config: TrackingConfig, *, run_id: str | None = None) -> None:
        self._client = _client(config)
        if run_id is None:
            with _store_errors(config):
                experiment = self._client.get_experiment_by_name(config.experiment)
                experiment_id = (
                    experiment.experiment_id
                    if experiment is not None
                    else self._client.create_experiment(config.experiment)
                )
                run = self._client.create_run(experiment_id, run_name=config.run_name)
            run_id = run.info.run_id
        self._run_id = run_id
        self._uri = config.tracking_uri
        self._lost = False  # a call failed: later ones try once, without back-off

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = _flatten(params)
        entries = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in flat.items()]
        with self._reaching("parameters"):
            for start in range(0, len(entries), 100):  # MLflow takes at most 100 per batch
                self._client.log_batch(self._run_id, params=entries[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        from mlflow.entities import Metric

        timestamp = _now_ms()
        entries = [Metric(key, float(value), timestamp, step) for key, value in metrics.items()]
        if entries:
            with self._reaching(f"the metrics of step {step}"):
                self._client.log_batch(self._run_id, metrics=entries)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        with self._reaching(f"the artifact {path.name}"):
            if path.is_dir():
                self._client.log_artifacts(self._run_id, str(path), artifact_path=artifact_path)
            else:
                self._client.log_artifact(self._run_id, str(path), artifact_path=artifact_path)

    def finish(self, *, failed: bool = False) -> None:
        with self._reaching("the run's end"):
            self._client.set_terminated(self._run_id, status="FAILED" if failed else "FINISHED")

    @contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """Once the run is open, a tracking store that stops answering (a server restarted, a
        network gone) costs what could not be logged, not the training run: hours of work
        would otherwise end at the next epoch. The loss is logged as a warning (the epoch
        figures are in the log too); after it, each call tries once, without MLflow's
        minutes of back-off. Any exception: MLflow's stores raise bare ``Exception`` too (the
        file store for a folder that went away), and none of them may end the training."""
        try:
            with _quick_http() if self._lost else nullcontext():
                yield
        except Exception as error:  # see the docstring
            logger.warning(
                "MLflow tracking at %s did not take %s (%s); training goes on without it",
                self._uri,
                what,
                _first_line(error),
            )
            self._lost = True


def open_tracker(config: TrackingConfig, *, run_id: str | None = None) -> Tracker:
    return MlflowTracker(config, run_id=run_id) if config.enabled else NullTracker()


def check_tracking(config: TrackingConfig) -> None:
    """ValueError when tracking is on and its store cannot be used (a server that does not
    answer, a folder that cannot be written): a command asks before it prepares its data, so
    the sentence comes in seconds, not after the rendering."""
    if config.enabled:
        with _store_errors(config), _quick_http():
            _client(config).get_experiment_by_name(config.experiment)


#: MLflow's HTTP settings for the probe alone: by default a server that does not answer is
#: retried with back-off for about four minutes before the error comes
_PROBE_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextmanager
def _quick_http() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _PROBE_HTTP}
    os.environ.update(_PROBE_HTTP)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _client(config: TrackingConfig) -> Any:
    """An ``MlflowClient`` of ``config``'s store (a plain path: a local file store)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise ImportError(
            "tracking needs MLflow: pip install 'mammocad[ml]', or turn it off with "
            "TrackingConfig(enabled=False)"
        ) from error
    uri = config.tracking_uri
    if _URI_SCHEME.match(uri) is None and uri != "databricks":  # a path: local file store
        uri = Path(uri).resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault(_ALLOW_FILE_STORE, "true")
    return MlflowClient(tracking_uri=uri)


@contextmanager
def _store_errors(config: TrackingConfig) -> Iterator[None]:
    """MLflow's errors on opening the store as a ValueError that says what to do."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as error:
        raise ValueError(
            f"MLflow tracking at {config.tracking_uri} cannot be used ({_first_line(error)}): "
            "start the tracking server, give another --tracking-uri, or train with --no-mlflow"
        ) from error


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 160 else text[:159] + "…"


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _now_ms() -> int:
    return int(time.time() * 1000)
