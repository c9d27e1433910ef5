"""The readiness contract: what load balancers, orchestrators and health dashboards read.

A rollback that keeps every metric but turns ``/readyz`` into a 404, or drops the ``db_connected``
field a deploy gate greps for, still breaks the fleet. This check compares the probe results that
capture stored in each snapshot; it is pure (no I/O) so a stored snapshot compares the same way.

What is compared: ``Snapshot.readiness``, one :class:`~compatcheck.snapshot.ProbeRecord` per
probed path (its status, JSON body, the pointers that change on every call, whether and when it
became ready, and the contract the config declared), read by attribute.

Subjects: the endpoint path (``/readyz``) for endpoint- and status-level findings, and
``path#/json/pointer`` (``/readyz#/db_connected``) for body fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from compatcheck.model import Finding
from compatcheck.rules import CheckContext, check
from compatcheck.snapshot import ProbeRecord, ReadinessExpectation, Snapshot

#: The kinds :func:`readiness_changes` owns.
NOT_READY = "readiness/not-ready"
ENDPOINT_MISSING = "readiness/endpoint-missing"
STATUS_CHANGED = "readiness/status-changed"
FIELD_MISSING = "readiness/field-missing"
CONTRACT_VIOLATED = "readiness/contract-violated"

_MISSING = object()


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(parts: list[Any] | tuple[Any, ...]) -> str:
    """RFC 6901 JSON pointer for a path of keys/indexes (``["a", 0, "b/c"]`` → ``/a/0/b~1c``)."""
    return "".join("/" + _escape(p) for p in parts)


def resolve(doc: Any, ptr: str) -> Any:
    """Value at a JSON pointer, or the module's ``_MISSING`` sentinel."""
    if ptr == "":
        return doc
    cur = doc
    for raw in ptr.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict) and key in cur:
            cur = cur[key]
        elif isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        else:
            return _MISSING
    return cur


def _covered(ptr: str, volatile: set[str]) -> bool:
    return any(ptr == v or ptr.startswith(v + "/") for v in volatile)


def _removed_fields(before: Any, after: Any, volatile: set[str]) -> list[str]:
    """Pointers of object members ``before`` has and ``after`` lacks (deepdiff tree view)."""
    from deepdiff import DeepDiff

    diff = DeepDiff(before, after, ignore_order=False, view="tree")
    out: set[str] = set()
    for item in diff.get("dictionary_item_removed", []):
        out.add(pointer(item.path(output_format="list")))
    # Trap: deepdiff reports an object replaced wholesale (by ``{}`` or by a scalar) as one
    # value or type change, not as removed members; expand those into the members lost.
    for kind in ("values_changed", "type_changes"):
        for item in diff.get(kind, []):
            if isinstance(item.t1, dict):
                _lost(item.t1, item.t2, list(item.path(output_format="list")), out)
    return sorted(p for p in out if not _covered(p, volatile))


def _lost(before: dict[Any, Any], after: Any, base: list[Any], out: set[str]) -> None:
    for key, value in before.items():
        if not isinstance(after, dict) or key not in after:
            out.add(pointer([*base, key]))
        elif isinstance(value, dict):
            _lost(value, after[key], [*base, key], out)


def _flatten(expected: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` → ``("/a/b", 1)``: expectations are checked leaf by leaf."""
    if isinstance(expected, dict) and expected:
        for key, value in expected.items():
            yield from _flatten(value, (*prefix, key))
    else:
        yield pointer(prefix), expected


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


def _name(snap: Snapshot, fallback: str) -> str:
    return snap.label or fallback


def check_readiness(before: Snapshot, after: Snapshot) -> list[Finding]:
    """Compare the probe results of ``before`` (running now) and ``after`` (what we move to)."""
    b_all: Mapping[str, ProbeRecord] = before.readiness or {}
    a_all: Mapping[str, ProbeRecord] = after.readiness or {}
    b_name, a_name = _name(before, "before"), _name(after, "after")
    findings: list[Finding] = []
    for path in sorted(a_all):
        a = a_all[path]
        b = b_all.get(path)
        a_status = a.status
        b_status = b.status if b else None
        if a_status == 404 and b is not None and b_status != 404:
            findings.append(
                Finding(
                    ENDPOINT_MISSING,
                    path,
                    f"`{path}` answers 404 on `{a_name}` but {b_status} on `{b_name}`.",
                    {"before_status": b_status, "after_status": a_status},
                )
            )
            continue
        if a.role == "readiness" and not a.ready and a_status != 404:
            reason = a.error or (f"last status {a_status}" if a_status else "no answer")
            findings.append(
                Finding(
                    NOT_READY,
                    path,
                    f"`{a_name}` never became ready on `{path}`: {reason}.",
                    {"status": a_status, "error": a.error, "waited": a.waited},
                )
            )
            continue
        if (
            isinstance(a_status, int)
            and isinstance(b_status, int)
            and _status_class(a_status) != _status_class(b_status)
        ):
            findings.append(
                Finding(
                    STATUS_CHANGED,
                    path,
                    f"`{path}` status changes {b_status} → {a_status} (`{b_name}` → `{a_name}`).",
                    {"before_status": b_status, "after_status": a_status},
                )
            )
        if b is not None and b.json is not None:
            volatile = set(a.volatile) | set(b.volatile)
            after_json = a.json if a.json is not None else {}
            for ptr in _removed_fields(b.json, after_json, volatile):
                findings.append(
                    Finding(
                        FIELD_MISSING,
                        f"{path}#{ptr}",
                        f"`{path}` field `{ptr}` returned by `{b_name}` is missing "
                        f"from `{a_name}`.",
                        {"before_value": resolve(b.json, ptr), "pointer": ptr},
                    )
                )
        expect = a.expect or (b.expect if b else None) or ReadinessExpectation()
        findings.extend(_contract(path, a, expect, a_name))
    return findings


def _contract(path: str, a: ProbeRecord, expect: ReadinessExpectation, name: str) -> list[Finding]:
    out: list[Finding] = []
    status = a.status
    wanted = list(expect.status)
    if wanted and status not in wanted:
        out.append(
            Finding(
                CONTRACT_VIOLATED,
                path,
                f"`{name}` answers `{path}` with {status}, expected {', '.join(map(str, wanted))}.",
                {"expected_status": wanted, "status": status},
            )
        )
    body = a.json
    for ptr, value in _flatten(expect.json or {}):
        if ptr == "":
            continue
        got = resolve(body, ptr) if body is not None else _MISSING
        if got is _MISSING:
            message = f"`{name}` `{path}` lacks `{ptr}`, expected `{json.dumps(value)}`."
            evidence: dict[str, Any] = {"expected": value, "actual": None, "present": False}
        elif got != value:
            message = (
                f"`{name}` `{path}` has `{ptr}` = `{json.dumps(got)}`, "
                f"expected `{json.dumps(value)}`."
            )
            evidence = {"expected": value, "actual": got, "present": True}
        else:
            continue
        out.append(Finding(CONTRACT_VIOLATED, f"{path}#{ptr}", message, evidence))
    return out


@check(NOT_READY, ENDPOINT_MISSING, STATUS_CHANGED, FIELD_MISSING, CONTRACT_VIOLATED)
def readiness_changes(ctx: CheckContext) -> list[Finding]:
    """What the transition changes in the probed endpoints (see :func:`check_readiness`)."""
    return check_readiness(ctx.before, ctx.after)
