"""The JSON Schema of ``compatcheck.yaml``, rendered from the declaration.

For editors and CI linters (``compatcheck config --schema``). It is derived from the same
declaration as the loader, so it names the same keys, types and defaults; the loader checks more
than a schema can say (that a ``cwd`` exists, that ``{database_url}`` stays out of an argv), so a
file the schema accepts may still be refused, with ``file:line``, by ``compatcheck config
--validate``.
"""

from __future__ import annotations

import json
from typing import Any

from compatcheck.config.declaration import CONFIG, PLACEHOLDERS, SOURCE_KEYS, Key

_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

#: A scalar the loader reads as a string (YAML ``version: 1.2`` is the string ``1.2``).
_TEXT: dict[str, Any] = {"type": ["string", "number"]}


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


_STATUS: dict[str, Any] = {"type": "integer", "minimum": 100, "maximum": 599}

#: Each declared value type as a JSON Schema fragment (sections are built from their keys).
_FRAGMENTS: dict[str, dict[str, Any]] = {
    "string": _TEXT,
    "path": _TEXT,
    "http_path": {"type": "string", "pattern": "^/"},
    "url": {"type": "string", "pattern": "^https?://[^/]+"},
    "duration": {
        "oneOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
        ]
    },
    "integer": {"type": "integer"},
    "strings": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
    "paths": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
    "consumer_sources": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]},
    "argv": {"type": "array", "items": _TEXT, "minItems": 1},
    "string_map": {"type": "object", "additionalProperties": _TEXT},
    "mapping": {"type": "object"},
    "any": {},
    "status_codes": {"oneOf": [_STATUS, {"type": "array", "items": _STATUS}]},
    "method": {"type": "string", "pattern": "^(" + "|".join(map(_any_case, _HTTP_METHODS)) + ")$"},
    "metric_name": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
    "version_name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
    "database": {"type": "string", "pattern": "^(sqlite|.*://.*)$"},
    "store": {"type": "string", "minLength": 1},
}


def _property(key: Key) -> dict[str, Any]:
    if key.type == "section":
        out = _object(key)
    elif key.type == "sections":
        out = {"type": "array", "items": _object(key)}
    else:
        out = dict(_FRAGMENTS[key.type])
        if key.minimum is not None:
            out["minimum"] = key.minimum
    out["description"] = key.doc
    if key.default is not None:
        out["default"] = key.default
    return out


def _object(key: Key) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {k.name: _property(k) for k in key.keys},
        "additionalProperties": False,
    }
    required = [k.name for k in key.keys if k.required]
    if required:
        out["required"] = required
    if {"command", "url"} <= set(key.names()):
        # A target: exactly one way of reaching the release.
        out["oneOf"] = [{"required": [source]} for source in SOURCE_KEYS]
    return out


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``compatcheck.yaml``."""
    top = _object(CONFIG)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "compatcheck.yaml",
        "description": CONFIG.doc
        + " Placeholders in `command` and `env`: "
        + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        + ".",
        **top,
    }


def render_schema() -> str:
    """The schema as the file ``compatcheck config --schema`` prints."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
