from __future__ import annotations

import json
from pathlib import Path

from mammocad.report.schema import result_schema, validation_errors


def test_packaged_schema_matches_the_shared_contract(shared_data: Path) -> None:
    shared = shared_data.parent / "contracts" / "result.schema.json"
    assert result_schema() == json.loads(shared.read_text())


def test_validation_reports_the_offending_field() -> None:
    errors = validation_errors({"sop_instance_uid": "1.2", "rows": 0}, image_only=True)
    assert any(error.startswith("rows:") for error in errors)
    assert any("required property" in error for error in errors)
