"""The compiled validator that accepts valid documents fast must never accept what jsonschema
rejects (and should accept what it accepts): checked on every stored document and on thousands of
mutations of them (wrong types, missing and unknown keys, bad enum values, empty strings)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from compatcheck.schemas import _compiled, load_schema, validate

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = {
    "snapshot": sorted((ROOT / "fixtures" / "snapshots" / "shop").glob("*.snapshot.json")),
    "report": sorted((ROOT / "tests" / "golden" / "json").glob("*.json")),
}
ODD_VALUES: list[Any] = [None, "", "x", -1, 0, 1.5, True, [], {}, ["x"], {"x": 1}]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:3]):
            yield from _paths(value, (*prefix, i))


def _mutations(doc: Any, rng: random.Random, n: int) -> Iterator[Any]:
    paths = [p for p in _paths(doc) if p]
    for _ in range(n):
        path = rng.choice(paths)
        mutated = copy.deepcopy(doc)
        parent = mutated
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        how = rng.randrange(3)
        if how == 0:
            parent[last] = rng.choice(ODD_VALUES)
        elif how == 1 and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent, dict):
            parent["unexpected_key"] = 1
        else:
            parent[last] = rng.choice(ODD_VALUES)
        yield mutated


def _jsonschema_accepts(doc: Any, name: str) -> bool:
    return jsonschema.Draft202012Validator(load_schema(name)).is_valid(doc)


def _compiled_accepts(doc: Any, name: str) -> bool:
    try:
        _compiled(name)(doc)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name", ["snapshot", "report"])
def test_the_compiled_validator_agrees_with_jsonschema(name: str) -> None:
    assert DOCUMENTS[name], f"no stored {name} documents to mutate"
    rng = random.Random(1)
    checked = rejected = 0
    for path in DOCUMENTS[name]:
        doc = json.loads(path.read_text())
        assert _compiled_accepts(doc, name) and _jsonschema_accepts(doc, name), path
        for mutated in _mutations(doc, rng, 150):
            expected = _jsonschema_accepts(mutated, name)
            assert _compiled_accepts(mutated, name) == expected, (path, mutated)
            checked += 1
            rejected += not expected
    # The mutations must really exercise rejections, or the agreement says little.
    assert rejected > checked // 4


def test_a_rejected_document_gets_jsonschemas_one_line_message() -> None:
    doc = json.loads(DOCUMENTS["snapshot"][0].read_text())
    doc["schema"] = "compatcheck.snapshot/v0"
    assert validate(doc, "snapshot") == ("at schema: 'compatcheck.snapshot/v1' was expected")


def test_the_written_validator_is_used_only_for_the_schema_it_was_made_from(
    tmp_path, monkeypatch
) -> None:
    from compatcheck import schemas
    from compatcheck.schemas import _snapshot_validator

    doc = json.loads(DOCUMENTS["snapshot"][0].read_text())
    _compiled.cache_clear()
    try:
        assert _compiled("snapshot") is _snapshot_validator.validate
        # The schema changes (labels of one character): the written module no longer applies.
        schema = load_schema("snapshot")
        changed = copy.deepcopy(schema)
        changed["properties"]["label"]["maxLength"] = 1
        assert len(doc["label"]) > 1
        (tmp_path / "snapshot.schema.json").write_text(json.dumps(changed), encoding="utf-8")
        monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)
        load_schema.cache_clear()
        _compiled.cache_clear()
        assert _compiled("snapshot") is not _snapshot_validator.validate
        assert not _compiled_accepts(doc, "snapshot")
        assert validate(doc, "snapshot") == f"at label: {doc['label']!r} is too long"
    finally:
        load_schema.cache_clear()
        _compiled.cache_clear()
