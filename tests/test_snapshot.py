"""Snapshots round-trip losslessly and validate against the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given

from compatcheck import __version__
from compatcheck.errors import InputError
from compatcheck.schemas import validate
from compatcheck.snapshot import Snapshot, dump_snapshot, load_snapshot, parse_snapshot
from compatcheck.sources import load_source

from .strategies import snapshots


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
