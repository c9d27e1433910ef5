"""The readiness contract check: pure, over stored probe results, exact sets of findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from compatcheck.capture.probes import health_record, never_ready_record, readiness_record
from compatcheck.checks.readiness import check_readiness, pointer, resolve
from compatcheck.errors import InputError
from compatcheck.model import Finding
from compatcheck.scrape import ProbeResult
from compatcheck.snapshot import (
    ProbeRecord,
    ReadinessExpectation,
    Snapshot,
    dump_snapshot,
    load_snapshot,
)


def snap(label: str, **paths: dict[str, Any]) -> Snapshot:
    readiness = {}
    for key, entry in paths.items():
        path = "/" + key
        full = {"role": "readiness", "status": 200, "ready": True, "json": None, "volatile": []}
        full.update(entry)
        readiness[path] = ProbeRecord.from_json(full)
    return Snapshot(label=label, readiness=readiness)


def keys(findings) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(f.kind, f.subject) for f in findings}


def test_same_contract_gives_nothing():
    body = {"status": "ready", "db_connected": True}
    assert (
        check_readiness(snap("v2", readyz={"json": body}), snap("v1", readyz={"json": body})) == []
    )


def test_field_missing_as_json_pointers_and_volatile_ignored():
    before = snap(
        "v2",
        readyz={
            "json": {
                "db_connected": True,
                "checked_at": "2026-01-01T00:00:00",
                "checks": {"cache": "ok", "a/b": 1},
            },
            "volatile": ["/checked_at"],
        },
    )
    after = snap("v1", readyz={"json": {"checks": {}}})
    found = check_readiness(before, after)
    assert keys(found) == {
        ("readiness/field-missing", "/readyz#/db_connected"),
        ("readiness/field-missing", "/readyz#/checks/cache"),
        ("readiness/field-missing", "/readyz#/checks/a~1b"),
    }
    msg = {f.subject: f.message for f in found}["/readyz#/db_connected"]
    assert msg == "`/readyz` field `/db_connected` returned by `v2` is missing from `v1`."


def healthz_change(before: int, after: int) -> list[Finding]:
    """What the check finds when `/healthz` answered ``before`` in v2 and ``after`` in v1."""
    return check_readiness(
        snap("v2", healthz={"role": "health", "status": before}),
        snap("v1", healthz={"role": "health", "status": after}),
    )


def test_endpoint_missing_only_when_before_had_it():
    assert keys(healthz_change(200, 404)) == {("readiness/endpoint-missing", "/healthz")}
    assert healthz_change(404, 404) == []


def test_status_class_change_and_not_ready():
    assert keys(healthz_change(200, 503)) == {("readiness/status-changed", "/healthz")}
    assert healthz_change(200, 204) == []
    never = snap("v1", readyz={"status": 503, "ready": False, "error": "not ready within 3 s"})
    found = check_readiness(snap("v2", readyz={}), never)
    assert keys(found) == {("readiness/not-ready", "/readyz")}
    assert found[0].message == "`v1` never became ready on `/readyz`: not ready within 3 s."


def test_contract_violations_against_declared_expectations():
    expect = {"status": [200], "json": {"db_connected": True, "mode": {"rw": True}}}
    after = snap(
        "v1",
        readyz={"status": 299, "json": {"db_connected": False}, "expect": expect},
    )
    found = check_readiness(snap("v2", readyz={"json": None}), after)
    assert keys(found) == {
        ("readiness/contract-violated", "/readyz"),
        ("readiness/contract-violated", "/readyz#/db_connected"),
        ("readiness/contract-violated", "/readyz#/mode/rw"),
    }
    by = {f.subject: f for f in found}
    assert by["/readyz#/db_connected"].message == (
        "`v1` `/readyz` has `/db_connected` = `false`, expected `true`."
    )
    assert by["/readyz#/mode/rw"].evidence == {"expected": True, "actual": None, "present": False}
    # Expectations stored only on the running side still apply to the target side.
    before = snap("v2", readyz={"json": {}, "expect": expect})
    plain = snap("v1", readyz={"json": {"db_connected": True, "mode": {"rw": True}}})
    assert check_readiness(before, plain) == []


def test_nothing_captured_nothing_reported():
    assert check_readiness(Snapshot(label="a"), Snapshot(label="b")) == []


def test_pointer_helpers():
    assert pointer(["a", 0, "b/c", "m~n"]) == "/a/0/b~1c/m~0n"
    assert resolve({"a": [{"b/c": 1}]}, "/a/0/b~1c") == 1


# -- the recorded form: typed in memory, the same JSON as before on disk -------------------------


def test_probe_records_keep_their_json_shape() -> None:
    """What capture records, member for member as snapshots have always stored it (a stored
    snapshot must compare, and re-save, the same)."""
    first = ProbeResult("u", status=200, json={"ok": True, "at": 1})
    second = ProbeResult("u", status=200, json={"ok": True, "at": 2})
    expect = ReadinessExpectation((200,), {"ok": True})
    ready = readiness_record(first, second, ready=True, waited=0.41234, expect=expect)
    assert ready.to_json() == {
        "role": "readiness", "status": 200, "error": None, "json": {"ok": True, "at": 2},
        "volatile": ["/at"], "ready": True, "time_to_ready": 0.412, "waited": 0.412,
        "expect": {"status": [200], "json": {"ok": True}},
    }  # fmt: skip
    assert health_record(None, second).to_json() == {
        "role": "health", "status": 200, "error": None, "json": {"ok": True, "at": 2},
        "volatile": [],
    }  # fmt: skip
    never = never_ready_record(ProbeResult("u", status=503), "not ready within 3 s", 3.0, None)
    assert never.to_json() == {
        "role": "readiness", "status": 503, "error": "not ready within 3 s", "json": None,
        "volatile": [], "ready": False, "time_to_ready": None, "waited": 3.0,
    }  # fmt: skip
    for record in (ready, never, health_record(first, second)):
        assert ProbeRecord.from_json(record.to_json()) == record


def test_a_malformed_readiness_entry_is_one_line_naming_it(tmp_path: Path) -> None:
    for entry, problem in [
        ({"status": "200"}, "at readiness//readyz/status: expected an HTTP status"),
        (5, "at readiness//readyz: expected an object"),
        ({"volatile": "/a"}, "at readiness//readyz/volatile: expected a list of JSON pointers"),
        ({"expect": {"status": ["ok"]}}, "at readiness//readyz/expect/status: expected a list"),
    ]:
        doc = json.loads(dump_snapshot(Snapshot(label="v1")))
        doc["readiness"] = {"/readyz": entry}
        path = tmp_path / "s.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(InputError) as exc:
            load_snapshot(path)
        assert str(exc.value).startswith(f"{path}: invalid snapshot: {problem}")
