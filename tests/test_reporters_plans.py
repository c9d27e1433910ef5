"""Plans say exactly how they were judged, in every human format; advice is given only on GO.

The plans are judged by the real :func:`judge_plans` (as ``check`` and ``migrations`` do), then
rendered through the real engine and reporters.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import pytest

from compatcheck.artifact.section import ArtifactSection
from compatcheck.engine import EvaluateOptions, evaluate
from compatcheck.migrations.plans import CodeOnlyTrial, judge_plans, judge_trial
from compatcheck.migrations.section import ABSENT, MigrationsSection, Plan
from compatcheck.model import Finding
from compatcheck.report import Report
from compatcheck.reporters import render
from compatcheck.snapshot import Snapshot

DESTRUCTIVE = Finding(
    "migrations/downgrade-destructive",
    "c",
    "The downgrade of `c` removes or overwrites data: `refunds`.",
    {"tables": ["refunds"], "columns": [], "removed_in_roundtrip": {"refunds": 2}},
)
BROKEN_ALERT = Finding("metrics/family-removed", "jobs_total", "`jobs_total` (counter) disappears.")


def _report(
    plans: Sequence[Plan],
    *,
    findings: tuple[Finding, ...] = (),
    direction: str = "rollback",
    recommended: str | None = "",
    artifact: dict[str, Any] | None = None,
) -> Report:
    section = MigrationsSection(
        old_head="a",
        new_head="c",
        downgrade_path=("c", "b"),
        plans=tuple(plans),
        recommended=ABSENT if recommended == "" else recommended,
    )
    return evaluate(
        Snapshot(label="v1"),
        Snapshot(label="v2"),
        EvaluateOptions(
            direction=direction,
            extra_findings=findings,
            migrations=section,
            artifact=ArtifactSection.from_json(artifact) if artifact else None,
        ),
    )


def _plan(line: str, text: str) -> str:
    """The status line of ``plan NAME`` in a text report."""
    return next(x for x in text.splitlines() if x.startswith(f"  plan {line}"))


def test_a_plan_is_verified_only_when_warmup_requests_were_replayed() -> None:
    ok = judge_trial([], [])
    assert (ok.verified, ok.exercised, ok.note) == (False, False, "no warm-up requests")
    plans, _ = judge_plans([], ok)
    text = render(_report(plans), "text")
    assert _plan("code-only", text) == (
        "  plan code-only: safe; not exercised (no warm-up requests); "
        "the plan's safety comes from static analysis alone"
    )
    assert "verified" not in _plan("code-only", text).replace("not exercised", "")
    replayed = CodeOnlyTrial(verified=True, replayed=3, exercised=True)
    plans, _ = judge_plans([], replayed)
    assert _plan("code-only", render(_report(plans), "text")) == (
        "  plan code-only: safe; verified: OLD ran on NEW's schema (3 warm-up requests replayed)"
    )
    assert plans[0].basis == "runtime"


def test_an_unjudged_trial_says_why_and_that_the_scripts_alone_decided() -> None:
    untried = CodeOnlyTrial(verified=False, note="OLD is a `url` target")
    plans, _ = judge_plans([], untried)
    assert plans[0].status == (
        "safe; not exercised (OLD is a `url` target); "
        "the plan's safety comes from static analysis alone"
    )
    unjudged = CodeOnlyTrial(verified=False, note="OLD never became ready", exercised=True)
    plans, _ = judge_plans([], unjudged)
    md = render(_report(plans), "markdown")
    assert (
        "| `code-only` | safe; not verified (OLD never became ready); "
        "the plan's safety comes from static analysis alone |  |"
    ) in md


def test_static_plans_say_nothing_was_executed_and_why_in_json() -> None:
    plans, _ = judge_plans([DESTRUCTIVE], static="--static was asked for")
    report = _report(plans)
    text = render(report, "text")
    assert (
        _plan("code-only", text) == "  plan code-only: safe; static analysis only, nothing executed"
    )
    doc = json.loads(render(report, "json"))
    for plan in doc["plans"]:
        assert plan["basis"] == "static"
        assert plan["basis_reason"] == "--static was asked for"
        assert plan["status"].endswith("static analysis only, nothing executed")


def test_a_safe_plan_that_removes_new_data_says_what_and_how_much() -> None:
    live = {**DESTRUCTIVE.evidence, "live_counts": {"refunds": 1204}}
    plans, _ = judge_plans([Finding(DESTRUCTIVE.kind, "c", DESTRUCTIVE.message, live)])
    report = _report(plans)
    text = render(report, "text")
    assert _plan("downgrade", text) == (
        "  plan downgrade: safe; removes NEW-era data: `refunds` (2 rows), "
        "counted in the scratch round trip"
    )
    # The live database's count is under the plan it concerns, not only in JSON evidence.
    lines = text.splitlines()
    at = lines.index(_plan("downgrade", text))
    assert lines[at + 1 : at + 3] == [
        "      data at risk on the live database:",
        "        `refunds`: 1,204 rows",
    ]
    md = render(report, "markdown")
    assert (
        "| `downgrade` | safe; removes NEW-era data: `refunds` (2 rows), counted in the scratch "
        "round trip | data at risk on the live database: `refunds`: 1,204 rows |"
    ) in md
    doc = json.loads(render(report, "json"))
    assert doc["plans"][1]["removes_new_data"] == [
        {"object": "refunds", "unit": "rows", "count": 2}
    ]
    assert doc["plans"][1]["live_data_at_risk"] == ["`refunds`: 1,204 rows"]


def test_a_plain_section_shows_the_verdict_alone() -> None:
    text = render(_report([Plan("downgrade", safe=True)]), "text")
    assert "  plan downgrade: safe\n" in text


ARTIFACT = {
    "reference": "reg/shop:v1",
    "rollback_commands": ["kubectl set image deployment/shop app=reg/shop@sha256:abc"],
}


def test_on_go_the_advice_is_the_thing_to_do() -> None:
    """The advice names the Alembic command and the revisions it undoes, in order: the path
    alone (`c → b`) reads as "go to b" when the database ends at `a`."""
    incompatible = Finding("migrations/old-code-incompatible", "c", "x")
    plans, _ = judge_plans([incompatible])
    report = _report(plans, findings=(incompatible,), artifact=ARTIFACT)
    assert report.go
    text = render(report, "text")
    advice = (
        "  → follow the downgrade plan: run `alembic downgrade a` (undoes `c`, then `b`), "
        "then deploy the OLD release"
    )
    assert advice in text.splitlines()
    assert "  rollback command:\n    kubectl set image" in text
    assert text.endswith("GO: no blocking problem; 1 moot under a safe plan (rollback v2 → v1)\n")
    md = render(report, "markdown")
    assert "run \\`alembic downgrade a\\` (undoes \\`c\\`, then \\`b\\`)" in md
    assert "Once the" not in md
    base = _report(plans, recommended="")
    assert base.migrations is not None
    section = dataclasses.replace(base.migrations, old_head=None)
    base = evaluate(Snapshot(label="v1"), Snapshot(label="v2"), EvaluateOptions(migrations=section))
    assert "run `alembic downgrade base` (undoes `c`, then `b`)" in render(base, "text")


@pytest.mark.parametrize(
    ("framework", "old_head", "command"),
    [
        ("golang-migrate", "a", "`migrate goto a`"),
        ("golang-migrate", None, "`migrate down -all`"),
        ("goose", "a", "`goose down-to a`"),
        ("goose", None, "`goose down-to 0`"),
        ("dbmate", "a", "`dbmate rollback` 2 times"),
        ("flyway", "a", "`flyway undo` 2 times"),
    ],
)
def test_the_downgrade_command_is_the_frameworks_own(
    framework: str, old_head: str | None, command: str
) -> None:
    """A SQL folder's downgrade is typed with its own tool, never `alembic downgrade`: a
    version to go to where the tool takes one, its one-step rollback once per step otherwise."""
    incompatible = Finding("migrations/old-code-incompatible", "c", "x")
    plans, _ = judge_plans([incompatible])
    report = _report(plans, findings=(incompatible,))
    assert report.migrations is not None
    section = dataclasses.replace(report.migrations, framework=framework, old_head=old_head)
    opts = EvaluateOptions(extra_findings=(incompatible,), migrations=section)
    report = evaluate(Snapshot(label="v1"), Snapshot(label="v2"), opts)
    assert report.go
    assert f"run {command} (undoes `c`, then `b`)" in render(report, "text")


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_on_no_go_the_advice_waits_below_the_verdict(fmt: str) -> None:
    plans, _ = judge_plans([])
    report = _report(plans, findings=(BROKEN_ALERT,), artifact=ARTIFACT)
    assert not report.go
    out = render(report, fmt)
    verdict = "NO-GO: 1 blocking problem (1 finding) (rollback v2 → v1)"
    if fmt == "text":
        tail = out.split(verdict + "\n", 1)[1]
        assert tail == (
            "\nonce the 1 blocking problem is resolved:\n"
            "  follow the code-only plan: deploy the OLD release and leave the database schema "
            "at the NEW head\n"
            "  rollback command:\n"
            "    kubectl set image deployment/shop app=reg/shop@sha256:abc\n"
        )
        head = out.split(verdict, 1)[0]
    else:
        assert out.index(verdict) < out.index("### Once the 1 blocking problem is resolved")
        head = out.split("### Once the", 1)[0]
    # Nowhere before it is a rollback step offered as the thing to do.
    assert "follow the" not in head and "kubectl" not in head


def test_with_no_safe_plan_no_plan_is_offered_even_conditionally() -> None:
    plans, recommended = judge_plans([Finding("migrations/path-missing", "c", "x")])
    report = _report(plans, recommended=recommended)
    text = render(report, "text")
    assert "  → no rollback plan is safe: do not roll back" in text
    assert "once the" not in text


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_deploy_direction_gives_no_rollback_advice(fmt: str) -> None:
    incompatible = Finding("migrations/old-code-incompatible", "c", "OLD's code cannot run.")
    plans, _ = judge_plans([incompatible, DESTRUCTIVE])
    report = _report(plans, findings=(incompatible, DESTRUCTIVE), direction="deploy",
                     artifact=ARTIFACT)  # fmt: skip
    # OLD's pods run on NEW's schema during a rolling deploy: that decides, and it fails.
    assert not report.go
    blocking = {rf.finding.kind: rf.blocking for rf in report.findings}
    assert blocking == {
        "migrations/old-code-incompatible": True,
        "migrations/downgrade-destructive": False,
    }
    out = render(report, fmt)
    # JSON keeps the artifact section as data, and Markdown shows it as collapsed evidence;
    # neither offers it as a step.
    shown = re.sub(r"<details>.*?</details>", "", out, flags=re.S)
    steps = ("alembic downgrade", "follow the", "once the", "Once the", "ollback command")
    for word in steps:
        assert word not in shown
    if fmt != "json":
        assert "kubectl" not in shown
    if fmt == "text":
        assert _plan("downgrade", out).startswith(
            "  plan downgrade, for a later rollback: safe; removes NEW-era data"
        )
        assert _plan("code-only", out).startswith("  plan code-only, for this deploy: UNSAFE")
    if fmt == "json":
        doc = json.loads(out)
        assert [p["applies_to"] for p in doc["plans"]] == ["this deploy", "a later rollback"]
        assert doc["migrations"]["plans"] == doc["plans"]
