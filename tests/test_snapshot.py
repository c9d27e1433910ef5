"""Snapshots round-trip losslessly and validate against the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from compatcheck.errors import InputError
from compatcheck.schemas import validate
from compatcheck.snapshot import Snapshot, dump_snapshot, load_snapshot, parse_snapshot

from .strategies import snapshots


@given(snapshots())
@settings(max_examples=200)
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
