"""Published JSON Schemas for the snapshot and report documents, and a validator.

The schemas are part of the public contract: other tools (conftest/OPA policies, dashboards of
verdicts) are written against them, and every report the tests produce is validated here.

Validation runs where someone waits (the snapshot gate reads two stored snapshots), so a valid
document is accepted by a compiled validator (fastjsonschema turns the schema into Python code:
about 100 times faster than interpreting it), and only a document it rejects is judged again by
jsonschema, whose verdict stands and whose ``best_match`` gives the one-line message. The
compiled validator can therefore only save time, never change an outcome; the schemas use no
keyword whose meaning differs between the two (``tests/test_schemas.py`` checks both agree).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_FILES = {"snapshot": "snapshot.schema.json", "report": "report.schema.json"}


@cache
def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / SCHEMA_FILES[name]).read_text("utf-8"))
    return data


@cache
def _compiled(name: str) -> Any:
    return fastjsonschema.compile(load_schema(name))


def validate(document: Any, name: str) -> str | None:
    """Return ``None`` when ``document`` is valid, else one line: the JSON path and the problem."""
    try:
        _compiled(name)(document)
        return None
    except fastjsonschema.JsonSchemaException:
        pass  # judged again below: jsonschema decides and words the message
    # Imported here: it takes ~0.1 s to import and is needed only to word a rejection.
    import jsonschema

    schema = load_schema(name)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {path}: {error.message}"
