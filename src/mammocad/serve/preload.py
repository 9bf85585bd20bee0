"""Studies queued from local files when the service starts (``mammocad serve --preload``).

The files go through the same intake as an upload (:func:`mammocad.serve.intake.accept`):
grouped by StudyInstanceUID first, because one upload holds one study. Files that are not
DICOM (a phantom's ``truth.json``, say) are skipped with a log line; an already known study
adds nothing, so restarting the service with the same ``--preload`` queues nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

from mammocad.io.dicom import read_header
from mammocad.serve.intake import accept
from mammocad.serve.schemas import UploadAccepted
from mammocad.serve.state import AppState
from mammocad.serve.uploads import Incoming, UploadError

logger = logging.getLogger(__name__)
ACTOR = "preload"


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            logger.warning("preload: %s does not exist; skipped", path)


def group_by_study(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """DICOM files under ``paths`` by StudyInstanceUID (headers only, no pixel data)."""
    studies: dict[str, list[Path]] = defaultdict(list)
    for file in _files(paths):
        try:
            with file.open("rb") as stream:
                uid = str(read_header(stream).StudyInstanceUID)
        except Exception as error:  # not DICOM, truncated header, no StudyInstanceUID
            logger.info("preload: %s skipped (%s)", file, error)
            continue
        studies[uid].append(file)
    return dict(studies)


def preload(state: AppState, paths: Sequence[Path]) -> list[UploadAccepted]:
    """Queue every study found under ``paths``; a refused study is logged and skipped."""
    accepted = []
    for uid, files in group_by_study(paths).items():
        with ExitStack() as stack:
            incoming = [
                Incoming(name=file.name, stream=stack.enter_context(file.open("rb")))
                for file in files
            ]
            try:
                accepted.append(accept(state, incoming, actor=ACTOR).body)
            except UploadError as error:
                logger.warning("preload: study %s refused: %s", uid, error.message)
                continue
        logger.info("preload: study %s queued (%d files)", uid, len(files))
    return accepted
