"""Snapshots round-trip losslessly and validate against the published schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from compatcheck import __version__
from compatcheck.errors import InputError
from compatcheck.jsondoc import MAX_DEPTH
from compatcheck.schemas import load_schema, validate
from compatcheck.snapshot import (
    FREE_KEYS,
    Snapshot,
    dump_snapshot,
    load_snapshot,
    parse_snapshot,
)
from compatcheck.sources import load_source

from .strategies import snapshots

SHOP = Path(__file__).resolve().parent.parent / "fixtures" / "snapshots" / "shop"


@given(snapshots())
def test_round_trip_is_lossless(snap: Snapshot) -> None:
    text = dump_snapshot(snap)
    assert validate(json.loads(text), "snapshot") is None
    again = parse_snapshot(text, "mem")
    assert again == snap
    assert dump_snapshot(again) == text


def test_not_a_snapshot(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"schema": "something/else"}')
    with pytest.raises(InputError, match="not a compatcheck snapshot"):
        load_snapshot(p)


def test_snapshot_from_another_format_version_says_so(tmp_path: Path) -> None:
    """A snapshot written by a newer compatcheck is not "not a snapshot": the line says which
    format it is and what to do, for `diff` (sniffed input) and for a stored snapshot alike."""
    p = tmp_path / "v9.json"
    doc = json.loads(dump_snapshot(Snapshot(label="v1")))
    doc["schema"] = "compatcheck.snapshot/v9"
    p.write_text(json.dumps(doc))
    want = (
        f"{p}: snapshot format 'compatcheck.snapshot/v9' is not one this compatcheck "
        f"({__version__}) reads ('compatcheck.snapshot/v1'): record it again with this "
        "release, or compare it with the release that wrote it"
    )
    for load in (load_snapshot, load_source):
        with pytest.raises(InputError) as exc:
            load(str(p))
        assert str(exc.value) == want


def test_invalid_snapshot_names_the_path(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    doc = json.loads(dump_snapshot(Snapshot(label="v1")))
    doc["metrics"] = {"content_type": "", "errors": [], "families": [{"name": "a"}]}
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError) as exc:
        load_snapshot(p)
    assert str(exc.value).startswith(f"{p}: invalid snapshot: at metrics")


def test_broken_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"schema": ')
    with pytest.raises(InputError, match="not valid JSON"):
        load_snapshot(p)


def _free_paths(node: Any, defs: dict[str, Any], path: str, seen: frozenset[str]) -> Iterator[str]:
    """Where the schema lets any JSON stand (and so does not bound the nesting), as dotted
    paths; a recursive reference counts as free too."""
    if "$ref" in node:
        ref = node["$ref"].rsplit("/", 1)[1]
        if ref in seen:
            yield path
            return
        yield from _free_paths(defs[ref], defs, path, seen | {ref})
        return
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, []):
            yield from _free_paths(sub, defs, path, seen)
    types = node.get("type", [])
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        extra = node.get("additionalProperties", True)
        if extra is True:
            yield path
        elif isinstance(extra, dict):
            yield from _free_paths(extra, defs, f"{path}.*", seen)
        for key, sub in node.get("properties", {}).items():
            yield from _free_paths(sub, defs, f"{path}.{key}".lstrip("."), seen)
    if "array" in types:
        if "items" not in node:
            yield path
        else:
            yield from _free_paths(node["items"], defs, f"{path}[]", seen)


def test_the_schema_bounds_the_nesting_of_all_but_the_free_keys() -> None:
    # snapshot_from_document checks the nesting only under FREE_KEYS once the schema accepts a
    # document: any other place the schema leaves free must be added there.
    schema = load_schema("snapshot")
    free = set(_free_paths(schema, schema.get("$defs", {}), "", frozenset()))
    assert free == set(FREE_KEYS)


@pytest.mark.parametrize("key", FREE_KEYS)
def test_a_valid_snapshot_nested_too_deeply_under_a_free_key_is_refused(key: str) -> None:
    doc = json.loads(dump_snapshot(load_snapshot(SHOP / "v1.snapshot.json")))
    deep: Any = {"x": None}
    for _ in range(MAX_DEPTH - 2):  # the document's own level, the key's: 64 levels in all
        deep = {"x": deep}
    doc[key] = deep
    assert validate(doc, "snapshot") is None  # the schema says nothing about free keys
    assert parse_snapshot(json.dumps(doc), "mem") is not None
    doc[key] = {"x": deep}
    with pytest.raises(InputError, match=r"^mem: nested deeper than 64 levels$"):
        parse_snapshot(json.dumps(doc), "mem")
