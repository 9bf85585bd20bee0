"""``mammocad worker``: a Celery worker process running job stages (docs/api.md)."""

from __future__ import annotations

from collections.abc import Sequence

from mammocad.errors import MammocadError
from mammocad.jobs.stages import Queue
from mammocad.logs import configure_logging
from mammocad.serve.settings import Settings
from mammocad.store.session import database_url, upgrade

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_queues(texts: Sequence[str]) -> list[str]:
    """``["cpu,gpu"]`` or ``["cpu", "gpu"]`` → ``["cpu", "gpu"]``; raises ValueError."""
    names = [name.strip() for text in texts for name in text.split(",") if name.strip()]
    known = {queue.value for queue in Queue}
    unknown = sorted(set(names) - known)
    if unknown or not names:
        raise ValueError(f"unknown queue(s) {unknown or names}: use cpu, gpu or cpu,gpu")
    return list(dict.fromkeys(names))


def run_worker(settings: Settings, *, queues: Sequence[str], concurrency: int) -> None:
    """Consume ``queues`` until interrupted; the model is loaded by the first analyze task.

    Raises:
        MammocadError: no broker configured, Celery missing, or the database unreachable.
    """
    from mammocad.commands.analyze import resolve_model
    from mammocad.jobs.distributed import StageWorker, make_celery, register_tasks
    from mammocad.pipeline import Pipeline

    if not settings.broker_url:
        raise MammocadError(
            "no broker: set MAMMOCAD_BROKER_URL=redis://127.0.0.1:6379/0 for the workers "
            "and for `mammocad serve`"
        )
    url = database_url(data_dir=settings.data_dir, override=settings.database_url)
    upgrade(url)
    if Queue.GPU.value in queues:
        resolve_model(settings.model)  # fail now, with the sentence, not at the first job

    def load_pipeline() -> Pipeline:
        bundle = resolve_model(settings.model)
        return Pipeline.from_bundle(bundle, device=settings.device, num_threads=settings.threads)

    app = make_celery(
        broker_url=settings.broker_url,
        time_limit_s=settings.job_time_limit_s,
        visibility_timeout_s=settings.broker_visibility_timeout_s,
    )
    worker = StageWorker(
        database_url=url,
        data_dir=settings.data_dir,
        load_pipeline=load_pipeline,
        time_limit_s=settings.job_time_limit_s,
        dicom=settings.dicom_outputs,
        sr_template=settings.sr_template,
        push=settings.push_destination(),
    )
    register_tasks(app, worker)
    configure_logging()
    app.worker_main(
        [
            "worker",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            f"--hostname=mammocad-{'-'.join(queues)}@%h",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )
