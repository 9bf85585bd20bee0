"""Log set-up of the long-running commands (service, worker, DICOM node)."""

from __future__ import annotations

import logging

#: libraries whose INFO lines are one per PDU step (pynetdicom) or per copied DICOM module
#: (highdicom, dozens per study written): a service logs each request and each study once
CHATTY = ("pynetdicom", "highdicom")


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped log lines on stderr, the chatty libraries' below WARNING left out."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
