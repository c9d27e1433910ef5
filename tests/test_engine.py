"""evaluate(): verdicts, fail-on, plans that relax findings, unavailable parts, waivers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.errors import UsageError
from compatcheck.migrations.section import MigrationsSection
from compatcheck.model import Finding, MetricFamily, MetricsSchema
from compatcheck.policy import load_policy
from compatcheck.schemas import validate
from compatcheck.snapshot import Snapshot

BUILD = MetricFamily("app_build_info", "gauge", labels=("version",), has_samples=True, series=1)


def snap(*families: MetricFamily, label: str = "", **kw: object) -> Snapshot:
    fams = {f.name: f for f in (BUILD, *families)}
    return Snapshot(label=label, metrics=MetricsSchema(fams), **kw)  # type: ignore[arg-type]


def kinds(report: object) -> set[tuple[str, str]]:
    return {(rf.finding.kind, rf.finding.subject) for rf in report.findings}  # type: ignore[attr-defined]


HIST = MetricFamily("lat_seconds", "histogram", buckets=(0.1, 1.0, float("inf")), has_samples=True)


def test_go_when_identical() -> None:
    r = evaluate(snap(HIST), snap(HIST))
    assert r.verdict == "go" and r.go and not r.findings
    assert validate(r.to_json(), "report") is None


def test_fail_on_warning_turns_warning_into_no_go() -> None:
    other = MetricFamily("lat_seconds", "histogram", buckets=(0.5, float("inf")), has_samples=True)
    assert evaluate(snap(other), snap(HIST)).verdict == "go"  # buckets-changed is a warning
    r = evaluate(snap(other), snap(HIST), EvaluateOptions(fail_on="warning"))
    assert r.verdict == "no-go"
    assert r.counts == {"error": 0, "warning": 1, "info": 0}


def test_fail_on_off_is_rejected() -> None:
    with pytest.raises(UsageError):
        evaluate(snap(), snap(), EvaluateOptions(fail_on="off"))


def test_unavailable_part_is_a_finding_and_marks_report_unavailable() -> None:
    old = Snapshot(label="v1", source="http://x/metrics", unavailable={"metrics": "refused"})
    r = evaluate(old, snap())
    assert kinds(r) == {("check/unavailable", "old:metrics")}
    assert r.unavailable and r.verdict == "no-go"


def test_invalid_exposition_skips_the_metrics_diff() -> None:
    bad = Snapshot(metrics=MetricsSchema(errors=("line 3: bad value",)))
    r = evaluate(snap(HIST), bad)
    assert kinds(r) == {("metrics/exposition-invalid", "new")}
    assert r.unavailable


def _migration_findings() -> list[Finding]:
    return [
        Finding("migrations/downgrade-destructive", "b2", "drops `orders.x`.", {"table": "orders"}),
        Finding("migrations/old-code-incompatible", "b2", "renames.", {"reason": "column-renamed"}),
    ]


@pytest.mark.parametrize(
    ("safe", "blocking", "verdict"),
    [
        ({"code-only": True, "downgrade": False}, {"migrations/old-code-incompatible"}, "no-go"),
        ({"code-only": False, "downgrade": True}, {"migrations/downgrade-destructive"}, "go"),
        (
            {"code-only": False, "downgrade": False},
            {"migrations/downgrade-destructive", "migrations/old-code-incompatible"},
            "no-go",
        ),
    ],
)
def test_a_safe_plan_relaxes_the_other_plans_findings(
    safe: dict[str, bool], blocking: set[str], verdict: str
) -> None:
    section = {
        "old_head": "a1",
        "new_head": "b2",
        "downgrade_path": ["b2"],
        "plans": [{"name": n, "safe": s, "reasons": []} for n, s in safe.items()],
    }
    opts = EvaluateOptions(
        extra_findings=_migration_findings(), migrations=MigrationsSection.from_json(section)
    )
    r = evaluate(snap(), snap(), opts)
    assert {rf.finding.kind for rf in r.findings if rf.blocking} == blocking
    assert r.verdict == verdict
    doc = r.to_json()
    assert validate(doc, "report") is None
    assert doc["migrations"]["old_head"] == "a1"
    assert [p["name"] for p in doc["plans"]] == list(safe)


def test_waived_error_does_not_block_but_stays_in_report(tmp_path: Path) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "waivers:\n  - kind: metrics/family-removed\n    subject: lat_*\n"
        "    reason: dashboards moved\n    expires: 2027-01-01\n"
    )
    opts = EvaluateOptions(policy=load_policy([pol]), today=dt.date(2026, 11, 26))
    r = evaluate(snap(), snap(HIST), opts)
    (rf,) = r.findings
    assert rf.waived and rf.severity == "error"
    assert r.verdict == "go"
    assert r.counts["error"] == 0
    assert r.to_json()["findings"][0]["waiver"]["reason"] == "dashboards moved"


def test_off_findings_are_hidden_from_the_report_json() -> None:
    a = MetricFamily("x", "gauge", help="one", has_samples=True)
    b = MetricFamily("x", "gauge", help="two", has_samples=True)
    r = evaluate(snap(a), snap(b))
    assert kinds(r) == {("metrics/help-changed", "x")}
    assert r.to_json()["findings"] == []
    assert r.verdict == "go"


def test_an_empty_consumers_folder_does_not_soften_removals(tmp_path: Path) -> None:
    empty = tmp_path / "monitoring"
    empty.mkdir()
    r = evaluate(snap(), snap(HIST), EvaluateOptions(consumers=(str(empty),)))
    (rf,) = r.findings
    assert (rf.finding.kind, rf.severity) == ("metrics/family-removed", "error")
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n")
    r = evaluate(snap(), snap(HIST), EvaluateOptions(consumers=(str(rules),)))
    (rf,) = r.findings
    assert (rf.finding.kind, rf.severity) == ("metrics/family-removed", "warning")
