"""The result contract (``schemas/result.schema.json``) and validation against it."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_VERSION = "1.0"


@cache
def result_schema() -> dict[str, Any]:
    """The result schema shipped with the package (a copy of shared/contracts)."""
    text = files("mammocad").joinpath("schemas/result.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def image_validator() -> Draft202012Validator:
    """Validator for one ``image`` object (``#/$defs/image``)."""
    schema = result_schema()
    return Draft202012Validator({"$ref": "#/$defs/image", "$defs": schema["$defs"]})


def result_validator() -> Draft202012Validator:
    """Validator for a whole study result."""
    return Draft202012Validator(result_schema())


def validation_errors(document: dict[str, Any], *, image_only: bool = False) -> list[str]:
    """Human-readable schema violations of ``document`` (empty when valid)."""
    validator = image_validator() if image_only else result_validator()
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]
