"""Published JSON Schemas for the snapshot and report documents, and a validator.

The schemas are part of the public contract: other tools (conftest/OPA policies, dashboards of
verdicts) are written against them, and every report the tests produce is validated here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_FILES = {"snapshot": "snapshot.schema.json", "report": "report.schema.json"}


@cache
def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / SCHEMA_FILES[name]).read_text("utf-8"))
    return data


def validate(document: Any, name: str) -> str | None:
    """Return ``None`` when ``document`` is valid, else one line: the JSON path and the problem."""
    schema = load_schema(name)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {path}: {error.message}"
