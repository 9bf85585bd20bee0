"""Analysis jobs: the stages of one study (``stages``), the runner that keeps the database
in step (``runner``) and the default in-process workers over the database queue
(``inprocess``)."""

from mammocad.jobs.inprocess import InProcessWorkers
from mammocad.jobs.runner import JobRunner
from mammocad.jobs.stages import Queue, Stage, StudyContext, default_stages, study_folder

__all__ = [
    "InProcessWorkers",
    "JobRunner",
    "Queue",
    "Stage",
    "StudyContext",
    "default_stages",
    "study_folder",
]
