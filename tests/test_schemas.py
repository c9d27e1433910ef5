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

from compatcheck.schemas import _compiled, cache_path, load_schema, validate

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


@pytest.fixture
def validator_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty user cache, and the in-process validators forgotten before and after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_schema.cache_clear()
    _compiled.cache_clear()
    yield tmp_path / "cache" / "compatcheck"
    load_schema.cache_clear()
    _compiled.cache_clear()


def _no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    from compatcheck import schemas

    def refuse(name: str) -> str:
        raise AssertionError(f"compiled {name} again instead of using the cache")

    monkeypatch.setattr(schemas, "render_validator", refuse)


def test_the_compiled_validator_is_kept_and_used_by_the_next_run(
    validator_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(DOCUMENTS["snapshot"][0].read_text())
    assert validate(doc, "snapshot") is None
    path = cache_path("snapshot")
    assert path is not None and path.parent == validator_cache and path.is_file()
    _compiled.cache_clear()
    _no_compiling(monkeypatch)
    assert validate(doc, "snapshot") is None
    doc["schema"] = "compatcheck.snapshot/v0"
    assert not _compiled_accepts(doc, "snapshot")


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage"])
def test_a_damaged_cached_validator_is_compiled_again_never_run(
    validator_cache: Path, damage: str
) -> None:
    doc = json.loads(DOCUMENTS["snapshot"][0].read_text())
    assert validate(doc, "snapshot") is None
    path = cache_path("snapshot")
    assert path is not None
    data = path.read_bytes()
    broken = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
        "garbage": b"\0" * 64,
    }[damage]
    path.write_bytes(broken)
    _compiled.cache_clear()
    assert validate(doc, "snapshot") is None
    assert path.read_bytes() == data  # written anew, whole
    doc["label"] = 5
    assert validate(doc, "snapshot") == "at label: 5 is not of type 'string'"


def test_a_changed_schema_never_uses_the_validator_of_the_old_one(
    validator_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compatcheck import schemas

    doc = json.loads(DOCUMENTS["snapshot"][0].read_text())
    assert validate(doc, "snapshot") is None
    before = cache_path("snapshot")
    # The schema changes (labels of one character): the kept validator no longer applies.
    changed = copy.deepcopy(load_schema("snapshot"))
    changed["properties"]["label"]["maxLength"] = 1
    assert len(doc["label"]) > 1
    (tmp_path / "snapshot.schema.json").write_text(json.dumps(changed), encoding="utf-8")
    monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)
    load_schema.cache_clear()
    _compiled.cache_clear()
    assert cache_path("snapshot") != before
    assert not _compiled_accepts(doc, "snapshot")
    assert validate(doc, "snapshot") == f"at label: {doc['label']!r} is too long"
    # Even under the old file's name, code made from another schema is refused (its digest).
    assert before is not None
    after = cache_path("snapshot")
    assert after is not None
    after.write_bytes(before.read_bytes())
    _compiled.cache_clear()
    assert not _compiled_accepts(doc, "snapshot")


def test_an_unwritable_cache_still_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    _compiled.cache_clear()
    try:
        doc = json.loads(DOCUMENTS["snapshot"][0].read_text())
        assert validate(doc, "snapshot") is None
        doc["schema"] = "x"
        assert validate(doc, "snapshot") == "at schema: 'compatcheck.snapshot/v1' was expected"
    finally:
        _compiled.cache_clear()
