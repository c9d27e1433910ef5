"""Probe definitions read from a Kubernetes manifest, so the readiness contract compatcheck checks
is the one the kubelet enforces (``readiness: {from_manifest: k8s/app.yaml, container: app}``).

What the kubelet would do is what we read, or the manifest is refused with the file and line:

* every document of a multi-document file, every item of a ``kind: List``, and every workload
  (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, Pod) is
  searched; a container name found in several workloads with different probes is ambiguous
  (``readiness.workload`` picks one), never "the first one";
* ``httpGet.scheme`` (``HTTP`` or ``HTTPS``) and ``httpHeaders`` are part of the probe: an HTTPS
  probe is sent over TLS without certificate verification, as the kubelet sends it;
* an unrendered template (Helm's ``{{ ... }}``) is an error naming the line: its values are not
  the cluster's, and YAML reads ``path: {{ .Values.path }}`` as a mapping, which would otherwise
  end up as the default path ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compatcheck.errors import UsageError
from compatcheck.yamlfile import LOADER, TreeError, check_tree

#: Workload kinds and the path from the object to its pod spec.
POD_SPECS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

#: The probes compatcheck reads, by the role it gives them.
PROBES = {"readiness": "readinessProbe", "liveness": "livenessProbe"}

_SCHEMES = ("HTTP", "HTTPS")
_TEMPLATE = re.compile(r"\{\{.*?(\}\}|$)")


@dataclass(frozen=True)
class ManifestProbe:
    """An ``httpGet`` probe read from a manifest; ``port`` may be a named container port."""

    path: str
    port: int | str
    line: int
    #: ``http`` or ``https`` (the manifest's ``HTTP``/``HTTPS``), as a URL spells it.
    scheme: str = "http"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Container:
    workload: str  # ``Deployment/shop``
    name: str | None
    node: yaml.MappingNode


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


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _template_error(path: Path, line: int, text: str) -> UsageError:
    m = _TEMPLATE.search(text)
    shown = (m.group(0) if m else text).strip()
    if len(shown) > 60:
        shown = shown[:59] + "…"
    return UsageError(
        f"{path}:{line}: unrendered template `{shown}`: render the chart first, "
        "e.g. `helm template RELEASE CHART > manifest.yaml`, and point `from_manifest` at the "
        "output"
    )


def _find_template(path: Path, text: str) -> None:
    """Raise for a template directive YAML would read as structure (``{{`` unquoted).

    Trap: a rendered file may carry ``{{ $labels.instance }}`` legitimately, inside a quoted or
    block string (a PrometheusRule's annotations in the same file); only a ``{{`` that the YAML
    scanner sees as two flow-mapping openings is a template. When the file does not even scan,
    the first ``{{`` at or before the error is blamed, since templates are what usually breaks
    a manifest that way.
    """
    lines = text.splitlines()
    prev: yaml.Token | None = None
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if (
                isinstance(tok, yaml.FlowMappingStartToken)
                and isinstance(prev, yaml.FlowMappingStartToken)
                and prev.end_mark.index == tok.start_mark.index
            ):
                line = prev.start_mark.line
                raise _template_error(path, line + 1, lines[line])
            prev = tok
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        last = mark.line if mark is not None else len(lines)
        for i, content in enumerate(lines[: last + 1]):
            if "{{" in content.split("#", 1)[0]:
                raise _template_error(path, i + 1, content) from None
        raise UsageError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None


def _objects(node: yaml.Node | None) -> Iterator[yaml.Node]:
    """Every object of a document, items of a ``kind: List`` included."""
    if _scalar(_get(node, "kind")) == "List":
        items = _get(node, "items")
        for item in items.value if isinstance(items, yaml.SequenceNode) else ():
            yield from _objects(item)
    elif node is not None:
        yield node


def _containers(path: Path, docs: list[yaml.Node]) -> list[_Container]:
    out: list[_Container] = []
    for doc in docs:
        for obj in _objects(doc):
            kind = _scalar(_get(obj, "kind"))
            if kind not in POD_SPECS:
                continue
            name = _scalar(_get(_get(obj, "metadata"), "name")) or "?"
            spec: yaml.Node | None = obj
            for key in POD_SPECS[kind]:
                spec = _get(spec, key)
            containers = _get(spec, "containers")
            if not isinstance(containers, yaml.SequenceNode) or not containers.value:
                raise UsageError(f"{path}:{_line(obj)}: {kind} `{name}` has no containers")
            for c in containers.value:
                if isinstance(c, yaml.MappingNode):
                    out.append(_Container(f"{kind}/{name}", _scalar(_get(c, "name")), c))
    return out


def _text(path: Path, node: yaml.Node | None, what: str) -> str | None:
    """A scalar the probe uses (None when absent); a ``{{`` in it is an unrendered template."""
    if node is None:
        return None
    if not isinstance(node, yaml.ScalarNode):
        shape = "mapping" if isinstance(node, yaml.MappingNode) else "list"
        raise UsageError(f"{path}:{_line(node)}: `{what}` must be a single value, not a {shape}")
    if "{{" in node.value:
        raise _template_error(path, _line(node), node.value)
    return str(node.value)


def _probe(
    path: Path, container: _Container, role: str, named_ports: Mapping[str, int]
) -> ManifestProbe | None:
    node = _get(container.node, PROBES[role])
    http_get = _get(node, "httpGet")
    if node is None or http_get is None:
        return None
    probe_path = _text(path, _get(http_get, "path"), "httpGet.path") or "/"
    raw_port = _text(path, _get(http_get, "port"), "httpGet.port")
    if not raw_port:
        raise UsageError(f"{path}:{_line(http_get)}: {PROBES[role]}.httpGet has no `port`")
    port: int | str = int(raw_port) if raw_port.isdigit() else named_ports.get(raw_port, raw_port)
    scheme_node = _get(http_get, "scheme")
    scheme = _text(path, scheme_node, "httpGet.scheme") or "HTTP"
    if scheme not in _SCHEMES:
        assert scheme_node is not None
        raise UsageError(
            f"{path}:{_line(scheme_node)}: {PROBES[role]}.httpGet.scheme is `{scheme}` "
            "(Kubernetes accepts HTTP or HTTPS)"
        )
    headers: dict[str, str] = {}
    raw_headers = _get(http_get, "httpHeaders")
    for h in raw_headers.value if isinstance(raw_headers, yaml.SequenceNode) else ():
        key = _text(path, _get(h, "name"), "httpHeaders.name")
        if key:
            headers[key] = _text(path, _get(h, "value"), "httpHeaders.value") or ""
    return ManifestProbe(probe_path, port, _line(node), scheme.lower(), headers)


def _choose(
    path: Path, found: list[_Container], container: str | None, workload: str | None
) -> _Container:
    if not found:
        raise UsageError(f"{path}: no Deployment (or other workload) found")
    pool = found
    if workload is not None:
        pool = [c for c in found if workload in (c.workload, c.workload.split("/", 1)[1])]
        if not pool:
            names = ", ".join(dict.fromkeys(c.workload for c in found))
            raise UsageError(f"{path}: no workload {workload!r} (found: {names})")
    if container is not None:
        pool = [c for c in pool if c.name == container]
        if not pool:
            names = ", ".join(dict.fromkeys(c.name or "?" for c in found))
            raise UsageError(f"{path}: no container named {container!r} (found: {names})")
    elif len(pool) > 1:
        names = ", ".join(f"{c.workload} {c.name or '?'}" for c in pool)
        raise UsageError(f"{path}: {len(pool)} containers ({names}); set `readiness.container`")
    workloads = list(dict.fromkeys(c.workload for c in pool))
    if len(workloads) > 1:
        raise UsageError(
            f"{path}: container {pool[0].name!r} is in {len(workloads)} workloads "
            f"({', '.join(workloads)}); set `readiness.workload`"
        )
    return pool[0]


def probes_from_manifest(
    path: Path, container: str | None = None, workload: str | None = None
) -> dict[str, ManifestProbe]:
    """``{"readiness": ..., "liveness": ...}`` from the httpGet probes of a workload manifest.

    ``workload`` (``Deployment/shop`` or ``shop``) narrows the search when a container name is
    in several workloads. Named ports are resolved through the container's ``ports``. Raises
    :class:`UsageError` naming the file (and the line where one is known).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    _find_template(path, text)
    try:
        docs = [d for d in yaml.compose_all(text, Loader=LOADER) if d is not None]
        for doc in docs:
            check_tree(doc, aliases=True, max_depth=None)
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except TreeError as exc:
        raise UsageError(f"{path}:{exc.line}: {exc.problem}") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply") from None
    chosen = _choose(path, _containers(path, docs), container, workload)
    named_ports: dict[str, int] = {}
    ports = _get(chosen.node, "ports")
    if isinstance(ports, yaml.SequenceNode):
        for p in ports.value:
            pname, pnum = _scalar(_get(p, "name")), _scalar(_get(p, "containerPort"))
            if pname and pnum and pnum.isdigit():
                named_ports[pname] = int(pnum)
    out: dict[str, ManifestProbe] = {}
    for role in PROBES:
        probe = _probe(path, chosen, role, named_ports)
        if probe is not None:
            out[role] = probe
    return out
