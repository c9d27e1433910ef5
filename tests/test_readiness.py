"""The readiness contract check: pure, over stored probe results, exact sets of findings."""

from __future__ import annotations

from typing import Any

from compatcheck.checks.readiness import check_readiness, pointer, resolve
from compatcheck.snapshot import Snapshot


def snap(label: str, **paths: dict[str, Any]) -> Snapshot:
    readiness = {}
    for key, entry in paths.items():
        path = "/" + key
        full = {"role": "readiness", "status": 200, "ready": True, "json": None, "volatile": []}
        full.update(entry)
        readiness[path] = full
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


def test_endpoint_missing_only_when_before_had_it():
    before = snap("v2", healthz={"role": "health", "status": 200})
    after = snap("v1", healthz={"role": "health", "status": 404})
    assert keys(check_readiness(before, after)) == {("readiness/endpoint-missing", "/healthz")}
    both_missing = snap("v2", healthz={"role": "health", "status": 404})
    assert check_readiness(both_missing, after) == []


def test_status_class_change_and_not_ready():
    before = snap("v2", healthz={"role": "health", "status": 200})
    after = snap("v1", healthz={"role": "health", "status": 503})
    assert keys(check_readiness(before, after)) == {("readiness/status-changed", "/healthz")}
    same_class = snap("v1", healthz={"role": "health", "status": 204})
    assert check_readiness(before, same_class) == []
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
