"""Schemathesis over the OpenAPI document: whatever it sends, no answer is a 5xx.

The fast test tries a few cases per operation; the slow one many more, with and without a
key. (Schemathesis' own pytest plugin does not run under pytest 9, so the operations are
driven through their Hypothesis strategies here.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from mammocad.pipeline import Pipeline
from mammocad.serve import create_app

from .conftest import make_key, settings_for


def _fuzz(app: Any, key: str, *, examples: int, authorised: tuple[bool, ...]) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            for with_key in authorised:
                headers = {"Authorization": f"Bearer {key}"} if with_key else {}
                response = case.call(headers=headers)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} (key: {with_key}) → "
                        f"{response.status_code}: {response.text[:300]}"
                    )

        run()
    assert tried >= 9, "the OpenAPI document lost operations"
    return failures


def _app(tmp_path: Path, pipeline: Pipeline) -> tuple[Any, str]:
    app_settings = settings_for(tmp_path / "data", max_files=4)
    return create_app(app_settings, pipeline=pipeline), make_key(app_settings)


def test_no_server_errors_fast(tmp_path: Path, pipeline: Pipeline) -> None:
    app, key = _app(tmp_path, pipeline)
    with TestClient(app):  # runs the start-up: database, model, workers
        assert _fuzz(app, key, examples=5, authorised=(True,)) == []


@pytest.mark.slow
def test_no_server_errors(tmp_path: Path, pipeline: Pipeline) -> None:
    app, key = _app(tmp_path, pipeline)
    with TestClient(app):
        assert _fuzz(app, key, examples=80, authorised=(True, False)) == []
