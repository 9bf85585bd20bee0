"""Where the benchmarks find the real data: ``$MAMMOCAD_SHARED_DATA``, else ``../shared/data``
beside the project (the layout the tests use too, tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    override = os.environ.get("MAMMOCAD_SHARED_DATA")
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "data"
