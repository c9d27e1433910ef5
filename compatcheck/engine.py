"""``evaluate()``: the one path from two snapshots to a report.

The CLI, the HTTP hook and the Python API all call :func:`evaluate`; nothing else decides a
verdict. Capture (starting services, scraping, running migrations) happens before, and hands in
snapshots plus the findings and sections it produced itself.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compatcheck.catalogue import SEVERITIES
from compatcheck.checks.metrics import check_metrics
from compatcheck.checks.readiness import check_readiness
from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets
from compatcheck.model import Finding, sort_findings
from compatcheck.policy import Policy, default_policy, rate_findings
from compatcheck.report import RatedFinding, Report, VersionInfo
from compatcheck.snapshot import Snapshot

if TYPE_CHECKING:
    from compatcheck.consumers import ConsumerSet
    from compatcheck.migrations.section import MigrationsSection
    from compatcheck.verify.section import VerifySection

DIRECTIONS = ("rollback", "deploy")

SnapshotCheck = Callable[[Snapshot, Snapshot], list[Finding]]

#: Pure checks over the two snapshots, called as ``check(before, after)``.
SNAPSHOT_CHECKS: list[SnapshotCheck] = [check_readiness]


@dataclass(frozen=True)
class EvaluateOptions:
    """How to judge two snapshots. Defaults: a rollback judged by the catalogue's severities."""

    direction: str = "rollback"
    policy: Policy | None = None
    #: Rule files, dashboards, folders: the alerts and panels whose breakage is named; or a
    #: ``ConsumerSet`` already loaded (the hook loads each version of its files once).
    consumers: Sequence[str | Path] | ConsumerSet = ()
    fail_on: str = "error"
    #: Findings produced during capture (readiness expectations, migrations, unavailable...).
    extra_findings: Sequence[Finding] = ()
    #: The report's ``migrations`` section, when migrations were inspected.
    migrations: MigrationsSection | None = None
    #: The report's ``verify`` section, when a post-rollback verification ran.
    verify: VerifySection | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: See :attr:`compatcheck.report.Report.anchor`.
    anchor: str = ""
    today: dt.date | None = None


def _unavailable_findings(role: str, snap: Snapshot) -> list[Finding]:
    out = []
    source = mask_secrets(snap.source)  # a snapshot written by hand may still carry a token
    for part, reason in sorted(snap.unavailable.items()):
        out.append(
            Finding(
                "check/unavailable",
                f"{role}:{part}",
                f"{role.upper()} {part} could not be checked: {reason}",
                {"version": role, "part": part, "reason": reason, "source": source},
            )
        )
    if snap.metrics is not None and snap.metrics.errors:
        out.append(
            Finding(
                "metrics/exposition-invalid",
                role,
                f"{role.upper()} exposition `{source}` is invalid: {snap.metrics.errors[0]}",
                {"version": role, "source": source, "errors": list(snap.metrics.errors)},
            )
        )
    elif _is_empty(snap) and "metrics" not in snap.unavailable:
        reason = f"`{snap.source or snap.label or role}` exposes no metric families"
        out.append(
            Finding(
                "check/unavailable",
                f"{role}:metrics",
                f"{role.upper()} metrics could not be checked: {reason} "
                "(an empty exposition proves nothing).",
                {"version": role, "part": "metrics", "reason": reason, "source": snap.source},
            )
        )
    return out


def _is_empty(snap: Snapshot) -> bool:
    """Captured, valid, and without a single family: an empty file, an empty 200 body, a page
    of comments. Trap: comparing it would call everything removed, or (both empty) prove
    compatibility by having nothing to compare; it is "cannot tell" instead."""
    return snap.metrics is not None and not snap.metrics.errors and not snap.metrics.families


def _metrics_comparable(snap: Snapshot) -> bool:
    return snap.metrics is not None and not snap.metrics.errors and not _is_empty(snap)


#: A capture is flagged (the report's first line) when it has under a quarter of the other's
#: families and at least this many fewer: a partial scrape looks like a wave of removals.
SMALL_CAPTURE_RATIO = 4
SMALL_CAPTURE_GAP = 10


def capture_notes(old: Snapshot, new: Snapshot) -> tuple[str, ...]:
    """``NEW exposes 3 families, OLD 214``: one side is a small fraction of the other.

    Still judged (a release may really drop most of its metrics), but a person must know the
    verdict rests on a capture that may be partial (wrong port, a scrape before warm-up).
    """
    if not (_metrics_comparable(old) and _metrics_comparable(new)):
        return ()
    assert old.metrics is not None and new.metrics is not None
    n_old, n_new = len(old.metrics.families), len(new.metrics.families)
    small, big = sorted((("OLD", n_old), ("NEW", n_new)), key=lambda x: x[1])
    if small[1] * SMALL_CAPTURE_RATIO >= big[1] or big[1] - small[1] < SMALL_CAPTURE_GAP:
        return ()
    return (
        f"{small[0]} exposes {small[1]} families, {big[0]} {big[1]}: check that {small[0]}'s "
        "capture is complete (the comparison below takes it as it is).",
    )


def evaluate(old: Snapshot, new: Snapshot, options: EvaluateOptions | None = None) -> Report:
    """Judge the transition NEW → OLD (rollback) or OLD → NEW (deploy) and return the report."""
    opts = options or EvaluateOptions()
    if opts.direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {opts.direction!r} (expected rollback or deploy)")
    if opts.fail_on not in SEVERITIES or opts.fail_on == "off":
        raise UsageError(f"--fail-on must be error, warning or info, got {opts.fail_on!r}")
    started = time.perf_counter()
    rollback = opts.direction == "rollback"
    before, after = (new, old) if rollback else (old, new)

    findings: list[Finding] = []
    findings += _unavailable_findings("old", old)
    findings += _unavailable_findings("new", new)
    metric_findings: list[Finding] = []
    comparable = _metrics_comparable(before) and _metrics_comparable(after)
    if comparable:
        assert before.metrics is not None and after.metrics is not None
        metric_findings = check_metrics(before.metrics, after.metrics, rollback=rollback)
    for check in SNAPSHOT_CHECKS:
        findings += check(before, after)
    findings += opts.extra_findings

    consumers_known = False
    if opts.consumers and comparable:
        assert before.metrics is not None and after.metrics is not None
        from compatcheck.consumers import ConsumerSet, check_consumers, load_consumers

        consumer_set = (
            opts.consumers
            if isinstance(opts.consumers, ConsumerSet)
            else load_consumers(opts.consumers)
        )
        # "Nothing uses it" means something only when consumers were actually read: an empty or
        # wrong folder must not turn every removed family into a mere warning.
        consumers_known = bool(consumer_set.expressions)
        findings += check_consumers(consumer_set, before.metrics, after.metrics, metric_findings)
    else:
        findings += metric_findings

    ordered = sort_findings(findings)
    policy = opts.policy or default_policy()
    outcome = rate_findings(ordered, policy, consumers_known=consumers_known, today=opts.today)
    migrations = opts.migrations
    relaxed: frozenset[str] = frozenset()
    if migrations is not None:
        # Imported here: the migrations package loads SQLAlchemy and Alembic (~0.3 s), which
        # an evaluation without migrations never needs.
        from compatcheck.migrations.plans import for_direction, non_blocking_kinds

        migrations = for_direction(migrations, opts.direction)
        relaxed = non_blocking_kinds(migrations.plans, opts.direction)
    rated = tuple(
        RatedFinding(f, r.severity, r.waiver, blocking=f.kind not in relaxed)
        for f, r in zip(ordered, outcome.ratings, strict=True)
    )
    verdict = "no-go" if any(rf.counts_against(opts.fail_on) for rf in rated) else "go"
    timings = dict(opts.timings)
    timings["evaluate"] = time.perf_counter() - started
    return Report(
        verdict=verdict,
        direction=opts.direction,
        old=VersionInfo(mask_secrets(old.label or "old"), mask_secrets(old.source), old.build),
        new=VersionInfo(mask_secrets(new.label or "new"), mask_secrets(new.source), new.build),
        findings=rated,
        fail_on=opts.fail_on,
        migrations=migrations,
        verify=opts.verify,
        timings=timings,
        expired_waivers=tuple(outcome.expired_waivers),
        unused_waivers=tuple(outcome.unused_waivers),
        extras=opts.extras,
        anchor=opts.anchor,
        notes=capture_notes(old, new),
    )
