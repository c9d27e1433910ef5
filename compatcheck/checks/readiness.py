"""The readiness contract: what load balancers, orchestrators and health dashboards read.

A rollback that keeps every metric but turns ``/readyz`` into a 404, or drops the ``db_connected``
field a deploy gate greps for, still breaks the fleet. This check compares the probe results that
capture stored in each snapshot; it is pure (no I/O) so a stored snapshot compares the same way.

Snapshot shape (``Snapshot.readiness``), one entry per probed path::

    {"/readyz": {"role": "readiness",        # or "health" for /healthz (a livenessProbe)
                 "status": 200,               # last HTTP status, None when no HTTP answer
                 "ready": true,               # readiness role: 2xx within the timeout
                 "error": null,               # why there was no answer / never ready
                 "json": {"db_connected": true},   # decoded body, None when not JSON
                 "volatile": ["/checked_at"],      # JSON pointers whose value changed between
                                                   # two calls (timestamps, uptimes): ignored
                 "time_to_ready": 0.41,       # seconds from launch (command targets)
                 "expect": {"status": [200], "json": {"db_connected": true}}}}   # declared

Subjects: the endpoint path (``/readyz``) for endpoint- and status-level findings, and
``path#/json/pointer`` (``/readyz#/db_connected``) for body fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from compatcheck.errors import UsageError
from compatcheck.model import Finding
from compatcheck.snapshot import Snapshot
from compatcheck.yamlfile import LOADER, TreeError, check_tree

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
    b_all: Mapping[str, Any] = before.readiness or {}
    a_all: Mapping[str, Any] = after.readiness or {}
    b_name, a_name = _name(before, "before"), _name(after, "after")
    findings: list[Finding] = []
    for path in sorted(a_all):
        a = a_all[path]
        b = b_all.get(path)
        a_status = a.get("status")
        b_status = b.get("status") if b else None
        role = a.get("role", "readiness")
        if a_status == 404 and b is not None and b_status != 404:
            findings.append(
                Finding(
                    "readiness/endpoint-missing",
                    path,
                    f"`{path}` answers 404 on `{a_name}` but {b_status} on `{b_name}`.",
                    {"before_status": b_status, "after_status": a_status},
                )
            )
            continue
        if role == "readiness" and not a.get("ready", False) and a_status != 404:
            reason = a.get("error") or (f"last status {a_status}" if a_status else "no answer")
            findings.append(
                Finding(
                    "readiness/not-ready",
                    path,
                    f"`{a_name}` never became ready on `{path}`: {reason}.",
                    {
                        "status": a_status,
                        "error": a.get("error"),
                        "waited": a.get("waited"),
                    },
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
                    "readiness/status-changed",
                    path,
                    f"`{path}` status changes {b_status} → {a_status} (`{b_name}` → `{a_name}`).",
                    {"before_status": b_status, "after_status": a_status},
                )
            )
        if b is not None and b.get("json") is not None:
            volatile = set(a.get("volatile") or ()) | set(b.get("volatile") or ())
            after_json = a.get("json")
            for ptr in _removed_fields(
                b["json"], after_json if after_json is not None else {}, volatile
            ):
                findings.append(
                    Finding(
                        "readiness/field-missing",
                        f"{path}#{ptr}",
                        f"`{path}` field `{ptr}` returned by `{b_name}` is missing "
                        f"from `{a_name}`.",
                        {"before_value": resolve(b["json"], ptr), "pointer": ptr},
                    )
                )
        expect = a.get("expect") or (b.get("expect") if b else None) or {}
        findings.extend(_contract(path, a, expect, a_name))
    return findings


def _contract(
    path: str, a: Mapping[str, Any], expect: Mapping[str, Any], name: str
) -> list[Finding]:
    out: list[Finding] = []
    status = a.get("status")
    wanted = list(expect.get("status") or ())
    if wanted and status not in wanted:
        out.append(
            Finding(
                "readiness/contract-violated",
                path,
                f"`{name}` answers `{path}` with {status}, expected {', '.join(map(str, wanted))}.",
                {"expected_status": wanted, "status": status},
            )
        )
    body = a.get("json")
    for ptr, value in _flatten(expect.get("json") or {}):
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
        out.append(Finding("readiness/contract-violated", f"{path}#{ptr}", message, evidence))
    return out


# --- Kubernetes manifests --------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestProbe:
    """An ``httpGet`` probe read from a manifest; ``port`` may be a named container port."""

    path: str
    port: int | str
    line: int


_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod")


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            found: yaml.Node = v
            return found
    return None


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def probes_from_manifest(path: Path, container: str | None = None) -> dict[str, ManifestProbe]:
    """``{"readiness": ..., "liveness": ...}`` from the httpGet probes of a workload manifest.

    Multi-document files are searched for the first Deployment-like object. Named ports are
    resolved through the container's ``ports``. Raises :class:`UsageError` naming the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
        docs = [d for d in yaml.compose_all(text, Loader=LOADER) if d is not None]
        for doc in docs:
            check_tree(doc, aliases=True, max_depth=None)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except TreeError as exc:
        raise UsageError(f"{path}:{exc.line}: {exc.problem}") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply") from None
    for doc in docs:
        kind = _scalar(_get(doc, "kind"))
        if kind not in _WORKLOADS:
            continue
        pod_spec = (
            _get(doc, "spec")
            if kind == "Pod"
            else _get(_get(_get(doc, "spec"), "template"), "spec")
        )
        containers = _get(pod_spec, "containers")
        if not isinstance(containers, yaml.SequenceNode) or not containers.value:
            raise UsageError(f"{path}: {kind} has no containers")
        names = [_scalar(_get(c, "name")) for c in containers.value]
        if container is None:
            if len(containers.value) > 1:
                raise UsageError(
                    f"{path}: {kind} has {len(names)} containers "
                    f"({', '.join(n or '?' for n in names)}); set `readiness.container`"
                )
            chosen = containers.value[0]
        else:
            matches = [c for c, n in zip(containers.value, names, strict=True) if n == container]
            if not matches:
                raise UsageError(
                    f"{path}: no container named {container!r} "
                    f"(found: {', '.join(n or '?' for n in names)})"
                )
            chosen = matches[0]
        named_ports: dict[str, int] = {}
        ports = _get(chosen, "ports")
        if isinstance(ports, yaml.SequenceNode):
            for p in ports.value:
                pname, pnum = _scalar(_get(p, "name")), _scalar(_get(p, "containerPort"))
                if pname and pnum and pnum.isdigit():
                    named_ports[pname] = int(pnum)
        out: dict[str, ManifestProbe] = {}
        for role, key in (("readiness", "readinessProbe"), ("liveness", "livenessProbe")):
            probe_node = _get(chosen, key)
            http_get = _get(probe_node, "httpGet")
            if http_get is None:
                continue
            probe_path = _scalar(_get(http_get, "path")) or "/"
            raw_port = _scalar(_get(http_get, "port")) or ""
            port: int | str = (
                int(raw_port) if raw_port.isdigit() else named_ports.get(raw_port, raw_port)
            )
            assert probe_node is not None
            out[role] = ManifestProbe(probe_path, port, probe_node.start_mark.line + 1)
        return out
    raise UsageError(f"{path}: no Deployment (or other workload) found")
