"""Artifact identity: is the thing that answered really the release we meant to roll back to?

A re-pushed tag or a stale local build makes every other check meaningless (they compared the
wrong code), so when the config pins OLD's ``expect: {version, revision}`` and the running OLD's
build info reports something else, that is a finding of its own. This needs the config, so it is
not one of the engine's pure snapshot checks: capture calls it and passes the result on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from compatcheck.checks.artifact import VERSION_MISMATCH
from compatcheck.model import Finding, MetricFamily, MetricsSchema

#: Labels that carry the build identity, by convention (Go's ``*_build_info`` from
#: ``prometheus/common/version``; OpenTelemetry's ``target_info``).
_BUILD_KEYS = ("version", "revision", "branch", "goversion", "service_version")

#: Placeholders that mean "no version": client_golang's ``go_build_info`` says ``""`` when built
#: outside a module (GOPATH mode), ``unknown`` without build info, ``(devel)`` for a local build.
_NO_VALUE = frozenset({"", "unknown", "(devel)"})

#: Build-info families of a language runtime or client library rather than of the service.
#: Trap: client_golang's ``go_build_info`` describes the Go *module*, which is empty or
#: ``(devel)`` for most builds; read first, its empty ``version`` would hide the service's own.
_RUNTIME_PREFIXES = ("go_", "python_", "process_", "nodejs_", "jvm_", "dotnet_", "ruby_", "erlang_")


def names_a_build(fam: MetricFamily) -> bool:
    """Whether a build-info family has a ``version`` or ``revision`` label that is not only a
    placeholder (``go_build_info{version=""}`` names no build). Values not recorded (high
    cardinality, a schema written without them) give it the benefit of the doubt."""
    for key in ("version", "revision"):
        if key not in fam.labels:
            continue
        values = fam.label_values.get(key)
        if not values or any(v not in _NO_VALUE for v in values):
            return True
    return False


def _metric_stem(service: str) -> str:
    """A service name as a metric name prefix: ``shop-api`` → ``shop_api``."""
    return re.sub(r"[^a-z0-9_]", "_", service.lower())


def build_info_families(
    metrics: MetricsSchema, *, service: str = "", family: str | None = None
) -> list[str]:
    """Families to read the build identity from, the most trusted first.

    ``family`` (the config's ``build_info``) is the only one when given. Otherwise the service's
    own (``<service>_build_info``), then any other ``*_build_info``, then ``target_info``, and
    a language runtime's (``go_build_info``) last.
    """
    fams = metrics.families
    if family is not None:
        return [family] if family in fams else []
    names = sorted(n for n in fams if n.endswith("_build_info"))
    stem = _metric_stem(service)
    own = [n for n in (f"{stem}_build_info", f"{stem}_info") if service and n in fams]
    runtime = [n for n in names if n.startswith(_RUNTIME_PREFIXES)]
    rest = [n for n in names if n not in own and n not in runtime]
    return [*own, *rest, *(["target_info"] if "target_info" in fams else []), *runtime]


def read_build_info(
    metrics: MetricsSchema | None, *, service: str = "", family: str | None = None
) -> dict[str, str]:
    """``version``/``revision``/... from ``*_build_info`` or ``target_info`` label values.

    The metrics schema keeps each label's distinct values, so a build-info family with exactly one
    value per label yields that value. Several candidate families: the most trusted one that has
    a real value wins for a key (see :func:`build_info_families`; an empty ``version=""`` is no
    value). OpenTelemetry's ``service_version`` fills ``version`` when no ``version`` label exists.
    """
    if metrics is None:
        return {}
    out: dict[str, str] = {}
    for name in build_info_families(metrics, service=service, family=family):
        fam = metrics.families[name]
        for key in _BUILD_KEYS:
            values = fam.label_values.get(key, ())
            if len(values) == 1 and values[0] not in _NO_VALUE and key not in out:
                out[key] = values[0]
    if "version" not in out and "service_version" in out:
        out["version"] = out["service_version"]
    out.pop("service_version", None)
    return out


def check_expected_build(
    role: str, label: str, expected: Mapping[str, str | None], build: Mapping[str, str]
) -> list[Finding]:
    """One ``artifact/version-mismatch`` (subject: the role, ``old``) listing contradicted keys.

    A release that reports no build info at all is not a mismatch here
    (``metrics/build-info-missing`` covers it); a declared key it does not report is one
    (``reported: null``) because the identity cannot be confirmed.
    """
    if not build:
        return []
    wrong: dict[str, dict[str, str | None]] = {}
    for key in ("version", "revision"):
        want = expected.get(key)
        if want is not None and build.get(key) != want:
            wrong[key] = {"expected": want, "reported": build.get(key)}
    if not wrong:
        return []
    parts = [
        f"{key} `{v['reported']}` (expected `{v['expected']}`)"
        if v["reported"] is not None
        else f"no {key} (expected `{v['expected']}`)"
        for key, v in wrong.items()
    ]
    return [
        Finding(
            VERSION_MISMATCH,
            role,
            f"`{label}` reports {' and '.join(parts)}.",
            {"mismatches": wrong, "build": dict(build)},
        )
    ]
