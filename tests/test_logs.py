"""The long-running commands' log set-up."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from mammocad.commands import serve, worker
from mammocad.logs import CHATTY, configure_logging


@pytest.fixture
def restored_levels() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in CHATTY}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restored_levels")
def test_the_chatty_libraries_log_warnings_only() -> None:
    """highdicom logs one INFO line per DICOM module it copies: dozens of lines for the demo study's
    SR, SCs and presentation states in the service's log, before 2026-12-07 (the node
    already left them out)."""
    configure_logging()
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in CHATTY)
    configure_logging(logging.ERROR)
    assert logging.getLogger("highdicom").getEffectiveLevel() == logging.ERROR


def test_every_long_running_command_sets_up_its_log_alike() -> None:
    # the DICOM node's command (cli.dicom_node) calls it too
    for module in (serve, worker):
        assert module.configure_logging is configure_logging, module.__name__
