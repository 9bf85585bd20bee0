"""Every benchmark script imports: they are run by hand, months apart, and import each other,
so a helper moved inside the package must not leave one broken until someone needs it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# modules whose name starts with "_" are shared by the scripts, not scripts
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if not path.stem.startswith("_"))


@pytest.fixture()
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings by name


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.usefixtures("on_path")
def test_benchmark_script_imports(name: str) -> None:
    module = importlib.import_module(name)
    try:
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
    finally:
        sys.modules.pop(name, None)
