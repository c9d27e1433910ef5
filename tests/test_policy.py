"""Policy files: severity overlays, waivers that must say why and expire, strict validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from compatcheck.errors import UsageError
from compatcheck.model import Consumer, Finding
from compatcheck.policy import default_policy, load_policy, rate_findings

TODAY = dt.date(2026, 11, 26)


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _f(kind: str, subject: str, consumers: tuple[Consumer, ...] = ()) -> Finding:
    return Finding(kind, subject, f"`{subject}` changed.", {}, consumers)


def test_defaults_come_from_catalogue() -> None:
    pol = default_policy()
    assert pol.severities["metrics/family-removed"] == "error"
    assert pol.severities["metrics/help-changed"] == "off"
    assert pol.without_consumers["metrics/family-removed"] == "warning"


def test_severity_overlay_in_order(tmp_path: Path) -> None:
    a = _write(tmp_path, "severity:\n  metrics/help-changed: info\n", "a.yaml")
    b = _write(
        tmp_path,
        "severity:\n  metrics/help-changed: warning\n"
        "  metrics/family-removed: {severity: warning, without_consumers: info}\n",
        "b.yaml",
    )
    pol = load_policy([a, b])
    assert pol.severities["metrics/help-changed"] == "warning"
    assert pol.severities["metrics/family-removed"] == "warning"
    assert pol.without_consumers["metrics/family-removed"] == "info"
    assert pol.sources == (str(a), str(b))


def test_without_consumers_applies_only_when_consumers_were_given() -> None:
    pol = default_policy()
    lonely = _f("metrics/family-removed", "x_total")
    used = _f("metrics/family-removed", "y_total", (Consumer("alert", "A", "alerts.yml", 3),))
    assert pol.severity_of(lonely, consumers_known=False) == "error"
    assert pol.severity_of(lonely, consumers_known=True) == "warning"
    assert pol.severity_of(used, consumers_known=True) == "error"


def test_waiver_by_glob_and_by_fingerprint_expired_and_unused(tmp_path: Path) -> None:
    target = _f("metrics/family-removed", "legacy_queue_depth")
    fingerprint = _f("metrics/label-removed", "a{b}").fingerprint
    p = _write(
        tmp_path,
        f"""waivers:
  - kind: metrics/family-removed
    subject: "legacy_*"
    reason: dashboards moved off it in PLAT-12
    expires: 2026-12-31
  - kind: metrics/label-removed
    fingerprint: {fingerprint}
    reason: known
    expires: 2027-01-01
  - kind: metrics/type-changed
    subject: "*"
    reason: old waiver
    expires: 2026-01-01
  - kind: metrics/unit-changed
    subject: nothing_matches_this
    reason: stale
    expires: 2027-01-01
""",
    )
    pol = load_policy([p])
    findings = [target, _f("metrics/label-removed", "a{b}"), _f("metrics/type-changed", "q")]
    out = rate_findings(findings, pol, consumers_known=False, today=TODAY)
    waived = [r.waiver is not None for r in out.ratings]
    assert waived == [True, True, False]
    assert out.ratings[0].waiver is not None
    assert out.ratings[0].waiver.reason == "dashboards moved off it in PLAT-12"
    assert out.ratings[0].waiver.source == f"{p}:2"
    assert [w.kind for w in out.expired_waivers] == ["metrics/type-changed"]
    assert [w.kind for w in out.unused_waivers] == ["metrics/unit-changed"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "severity:\n  metrics/no-such-kind: error\n",
            ":2: unknown finding kind `metrics/no-such-kind`",
        ),
        (
            "severity:\n  metrics/help-changed: loud\n",
            ":2: severity of `metrics/help-changed` must be",
        ),
        ("sevrity: {}\n", ":1: unknown key `sevrity` in policy"),
        (
            "waivers:\n  - kind: metrics/renamed\n    subject: x\n    expires: 2027-01-01\n",
            ":2: waiver needs `reason`",
        ),
        (
            "waivers:\n  - kind: metrics/renamed\n    subject: x\n    reason: r\n",
            ":2: waiver needs `expires`",
        ),
        (
            "waivers:\n  - kind: metrics/renamed\n    reason: r\n    expires: 2027-01-01\n",
            ":2: waiver needs `subject` (a glob) or `fingerprint`",
        ),
        (
            "waivers:\n  - kind: metrics/renamed\n    subject: x\n    reason: r\n"
            "    expires: soon\n",
            ":5: `expires` must be a date",
        ),
        (
            "waivers:\n  - kind: metrics/renamed\n    subjct: x\n    reason: r\n"
            "    expires: 2027-01-01\n",
            ":3: unknown key `subjct` in waiver",
        ),
        ("severity: [\n", ": invalid YAML"),
        ("- just\n- a list\n", ":1: a policy file must be a mapping"),
    ],
)
def test_invalid_policy_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(UsageError) as exc:
        load_policy([p])
    assert str(exc.value).startswith(str(p))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_kind_suggests_the_one_meant(tmp_path: Path) -> None:
    p = _write(tmp_path, "severity:\n  help-changed: info\n")
    with pytest.raises(UsageError, match="did you mean `metrics/help-changed`"):
        load_policy([p])


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such policy file"):
        load_policy([tmp_path / "nope.yaml"])
