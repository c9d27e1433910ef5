"""Artifact identity: is the thing that answered really the release we meant to roll back to?

A re-pushed tag or a stale local build makes every other check meaningless (they compared the
wrong code), so when the config pins OLD's ``expect: {version, revision}`` and the running OLD's
build info reports something else, that is a finding of its own. This needs the config, so it is
not one of the engine's pure snapshot checks: capture calls it and passes the result on.
"""

from __future__ import annotations

from collections.abc import Mapping

from compatcheck.model import Finding, MetricsSchema

#: Families whose labels carry the build identity, by convention (Go's ``*_build_info``
#: from ``prometheus/common/version``; OpenTelemetry's ``target_info``).
_BUILD_KEYS = ("version", "revision", "branch", "goversion", "service_version")


def read_build_info(metrics: MetricsSchema | None) -> dict[str, str]:
    """``version``/``revision``/... from ``*_build_info`` or ``target_info`` label values.

    The metrics schema keeps each label's distinct values, so a build-info family with exactly one
    value per label yields that value. Several candidate families: the first by name wins for a
    key. OpenTelemetry's ``service_version`` fills ``version`` when no ``version`` label exists.
    """
    if metrics is None:
        return {}
    out: dict[str, str] = {}
    names = sorted(n for n in metrics.families if n.endswith("_build_info"))
    if "target_info" in metrics.families:
        names.append("target_info")
    for name in names:
        fam = metrics.families[name]
        for key in _BUILD_KEYS:
            values = fam.label_values.get(key, ())
            if len(values) == 1 and key not in out:
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
            "artifact/version-mismatch",
            role,
            f"`{label}` reports {' and '.join(parts)}.",
            {"mismatches": wrong, "build": dict(build)},
        )
    ]
