"""What every reporter says the same way: areas, consumers, plan advice, waivers, artifacts.

Shared here so that the text output, the PR comment, the CI annotations and the JUnit file can
never disagree about the verdict or about which plan to follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from compatcheck.model import Consumer
from compatcheck.policy import Waiver
from compatcheck.report import RatedFinding, Report

if TYPE_CHECKING:
    from compatcheck.migrations.section import Plan
    from compatcheck.reporters.causes import Cause

#: Areas in the catalogue's order (``docs/findings.md``); JUnit has one suite per area.
AREAS = ("metrics", "readiness", "migrations", "consumers", "artifact", "check")

#: Severities a person sees, most serious first (``off`` findings are never rendered).
SHOWN_SEVERITIES = ("error", "warning", "info")

#: What each rollback plan means, for the "which plan to follow" advice.
PLAN_ACTIONS = {
    "code-only": "deploy the OLD release and leave the database schema at the NEW head",
    "downgrade": "run the Alembic downgrade to the OLD head, then deploy the OLD release",
}


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str, keep: str = "") -> str:
    """Show control characters as ``\\x1b`` instead of emitting them.

    Trap: messages and evidence quote service logs and exception text, which carry ANSI escapes;
    written raw they recolour or rewrite a terminal, break XML and split one-line formats.
    ``keep`` names the control characters the caller's format can carry (``"\\n"``).
    """
    return _CONTROL.sub(
        lambda m: m.group() if m.group() in keep else f"\\x{ord(m.group()):02x}", text
    )


def area_of(kind: str) -> str:
    """``metrics/family-removed`` → ``metrics``."""
    return kind.split("/", 1)[0]


def plural(n: int, word: str) -> str:
    """``1 error``, ``2 errors``; ``info`` has no plural."""
    if n == 1 or word == "info":
        return f"{n} {word}"
    return f"{n} {word}s"


def transition(report: Report) -> tuple[str, str]:
    """Labels of (what runs now, what the transition moves to)."""
    if report.direction == "rollback":
        return report.new.label, report.old.label
    return report.old.label, report.new.label


def transition_text(report: Report) -> str:
    """``rollback v1.5.0 → v1.4.2``: the direction and the two labels in the order things happen."""
    before, after = transition(report)
    return f"{report.direction} {before} → {after}"


def waived_findings(report: Report) -> list[RatedFinding]:
    return [rf for rf in report.visible() if rf.waived]


def not_blocking_note(report: Report) -> str:
    """Why a finding does not block: ``not blocking: the code-only plan is safe``."""
    if report.direction == "deploy":
        return (
            "not blocking: it concerns the downgrade plan, which only matters for a later rollback"
        )
    safe = [p.name for p in report.plans if p.safe]
    if not safe:
        return "not blocking: another rollback plan is safe"
    names = " and ".join(f"the {n} plan" for n in safe)
    return f"not blocking: {names} {'is' if len(safe) == 1 else 'are'} safe"


def advice_heading(report: Report, causes: Sequence[Cause]) -> str:
    """``once the 3 blocking problems are resolved``: how advice is framed on NO-GO (``causes``
    are the render's own, built once by the reporter)."""
    n = sum(1 for c in causes if c.blocking(report.fail_on))
    return f"once the {plural(n, 'blocking problem')} {'is' if n == 1 else 'are'} resolved"


def build_text(build: Mapping[str, str]) -> str:
    """``version 1.5.0, revision e4f5a6b, branch main``: version and revision first."""
    first = [k for k in ("version", "revision") if k in build]
    keys = first + sorted(k for k in build if k not in first)
    return ", ".join(f"{k} {build[k]}" for k in keys)


def finding_location(rf: RatedFinding, report: Report) -> tuple[str, int | None] | None:
    """The file (and line) a finding points at, for annotations and code scanning.

    The first consumer it breaks when there is one, else the file the evidence names (a
    migration's revision file), else the report's anchor (the config or NEW's input file).
    """
    f = rf.finding
    if f.consumers:
        return f.consumers[0].file, f.consumers[0].line
    path = f.evidence.get("path")
    if isinstance(path, str) and path:
        line = f.evidence.get("line")
        return path, line if isinstance(line, int) and line >= 1 else None
    if report.anchor:
        return report.anchor, None
    return None


def repo_path(path: str, report: Report) -> str:
    """``path`` relative to the report's workspace when it lies inside it (code scanning and
    workflow annotations resolve paths against the repository root, not this machine's)."""
    root = report.workspace
    if not root or not path.startswith("/"):
        return path
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def consumer_location(c: Consumer) -> str:
    """``alerts.yml:12`` (or just the file when the line is unknown)."""
    return f"{c.file}:{c.line}" if c.line is not None else c.file


def consumer_text(c: Consumer) -> str:
    """``alert HighErrorRate (alerts.yml:12)``; panels name their dashboard too."""
    where = consumer_location(c)
    name = c.name
    if c.dashboard:
        name = f"{name} in dashboard {c.dashboard}"
    elif c.group:
        name = f"{name} in group {c.group}"
    return f"{c.type} {name} ({where})"


def waiver_text(w: Waiver) -> str:
    """``metrics/label-removed http_requests_total{route}``: what a waiver matches."""
    target = w.subject if w.subject is not None else f"fingerprint {w.fingerprint}"
    if w.subject is not None and w.fingerprint is not None:
        target += f" (fingerprint {w.fingerprint})"
    return f"{w.kind} {target}"


class UnappliedWaivers(NamedTuple):
    """Waivers that waived nothing this run, one kind of them: expired, or matching no finding."""

    title: str
    #: The text reporter's colour for the section.
    tone: str
    #: Each waiver with what became of it (``expired 2026-01-31``, ``matched no finding``).
    waivers: list[tuple[Waiver, str]]
    #: What the reader should do about them.
    advice: str


def unapplied_waivers(report: Report) -> list[UnappliedWaivers]:
    """The expired and the unused waivers (the kinds that have any), worded once for every
    human format so that they cannot give different advice."""
    groups = (
        UnappliedWaivers(
            "Expired waivers",
            "warning",
            [(w, f"expired {w.expires.isoformat()}") for w in report.expired_waivers],
            "the finding counts again",
        ),
        UnappliedWaivers(
            "Unused waivers",
            "dim",
            [(w, "matched no finding") for w in report.unused_waivers],
            "remove it",
        ),
    )
    return [group for group in groups if group.waivers]


def plan_role(report: Report, plan: Plan) -> str:
    """In deploy direction, what the plan is for (``for a later rollback``); else empty."""
    role = plan.applies_to
    return f"for {role}" if report.direction == "deploy" and role else ""


def plan_title(report: Report, plan: Plan) -> str:
    """``plan downgrade``, or in deploy direction ``plan downgrade, for a later rollback``."""
    role = plan_role(report, plan)
    return f"plan {plan.name}" + (f", {role}" if role else "")


def plan_status(plan: Plan) -> str:
    """The plan's status line as judged (``safe; removes NEW-era data: ...``); a section that
    carries none (built by hand) shows the verdict alone."""
    if plan.status:
        return plan.status
    return "safe" if plan.safe else "UNSAFE"


def plan_statuses(report: Report) -> list[tuple[str, str]]:
    """``[("plan code-only", "safe; static analysis only, nothing executed"), ...]``: what the
    one-line formats (JUnit properties, SARIF properties, workflow log) say about the plans."""
    return [(plan_title(report, p), plan_status(p)) for p in report.plans]


def verify_statuses(report: Report) -> list[tuple[str, str]]:
    """``[("verify build", "ok: 2 of 2 instances report ..."), ...]``: each verification check
    as the one-line formats (JUnit and SARIF properties, workflow log) show it."""
    if report.verify is None:
        return []
    return [(f"verify {c.name}", f"{c.status}: {c.summary}") for c in report.verify.checks]


def verify_heading(report: Report) -> str | None:
    """``http://prometheus:9090 · {job="shop"} should run v1 · 3 polls in a 1m window``."""
    v = report.verify
    if v is None:
        return None
    return (
        f"{v.prometheus} · {v.selector} should run {v.expect} · {plural(v.polls, 'poll')} "
        f"from {v.started_at} to {v.finished_at} (window {v.window_seconds:g} s, every "
        f"{v.interval_seconds:g} s)"
    )


def chosen_plan(report: Report) -> str | None:
    """The plan to follow: the migrations section's ``recommended`` (decided where the plans are
    judged), else the first safe plan in the order they are listed (most preferred first)."""
    mig = report.migrations
    if mig is not None and isinstance(mig.recommended, str | None):
        return mig.recommended or None
    return next((p.name for p in report.plans if p.safe), None)


def plan_advice(report: Report) -> str | None:
    """Which plan to follow, as one sentence; None when no migrations were inspected, and in
    deploy direction (a roll-forward gets no rollback advice)."""
    if not report.plans or report.direction != "rollback":
        return None
    name = chosen_plan(report)
    if name is None:
        return "no rollback plan is safe: do not roll back before the reasons above are resolved"
    downgrade = _downgrade_command(report) if name == "downgrade" else None
    action = downgrade or PLAN_ACTIONS.get(name)
    return f"follow the {name} plan" + (f": {action}" if action else "")


def rollback_steps(report: Report) -> tuple[str | None, list[str]]:
    """What to do to roll back: (the plan to follow, the artifact's rollback commands).

    Nothing in deploy direction; no plan sentence when no plan is safe (that is a finding, not
    a step). Reporters print these as the thing to do only on GO; on NO-GO under
    :func:`advice_heading`, below the verdict.
    """
    if report.direction != "rollback":
        return None, []
    plan = plan_advice(report) if chosen_plan(report) is not None else None
    summary = artifact_summary(report)
    return plan, summary[1] if summary is not None else []


def _downgrade_command(report: Report) -> str | None:
    """The downgrade plan as the command to type: ``alembic downgrade <OLD head>``, and what it
    undoes, in the order it runs. None without a known path.

    Trap: the downgrade path lists the revisions undone, not the one the database ends at; a
    tired reader takes ``b → a`` for "go to a" unless the destination is spelled out.
    """
    mig = report.migrations
    if report.direction != "rollback" or mig is None:
        return None
    path = list(mig.downgrade_path or ())
    if not path:
        return None
    undone = ", then ".join(f"`{r}`" for r in path)
    command = _framework_downgrade(mig.framework, mig.old_head, len(path))
    return f"run {command} (undoes {undone}), then deploy the OLD release"


def _framework_downgrade(framework: str, old_head: str | None, steps: int) -> str:
    """The framework's own command that ends at OLD's head: a version to go to where the tool
    takes one, otherwise its one-step rollback as many times as the path is long."""
    if framework == "golang-migrate":
        return f"`migrate goto {old_head}`" if old_head else "`migrate down -all`"
    if framework == "goose":
        return f"`goose down-to {old_head or 0}`"
    if framework in ("dbmate", "flyway"):
        one = "dbmate rollback" if framework == "dbmate" else "flyway undo"
        return f"`{one}`" + (f" {steps} times" if steps > 1 else "")
    return f"`alembic downgrade {old_head or 'base'}`"


def artifact_summary(report: Report) -> tuple[str, list[str], str | None] | None:
    """The artifact section as (what was verified, rollback commands, note); None without one.

    The rollback command is the last thing a person needs: the exact, digest-pinned command for
    the platform, or the note saying why none can be given.
    """
    art = report.artifact
    if art is None:
        return None
    what = art.what
    if art.source:
        what += f" ({art.source})"
    return what, list(art.rollback_commands), art.rollback_note or None


def downgrade_path_text(path: Sequence[Any], end: str | None = None) -> str:
    """``c → b → a (OLD head)``: every revision undone, then where the database ends."""
    steps = [str(r) for r in path]
    if not steps:
        return "(none)"
    if end is not None:
        steps.append(f"{end} (OLD head)")
    return " → ".join(steps)


def short_json(value: Any, limit: int = 160) -> str:
    """A compact, deterministic one-line rendering of an evidence value, cut at ``limit``."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
