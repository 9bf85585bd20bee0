"""Shared fixtures. Real data lives in ../shared/data beside the checkout (CI has it, users
usually don't): tests that need it use the ``shared_data`` fixture and skip cleanly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = PROJECT_ROOT / "src" / "mammocad" / "schemas" / "result.schema.json"


def shared_data_dir() -> Path:
    """``$MAMMOCAD_SHARED_DATA`` or ``../shared/data`` relative to the project root."""
    override = os.environ.get("MAMMOCAD_SHARED_DATA")
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not available at {path} (set MAMMOCAD_SHARED_DATA)")
    return path
