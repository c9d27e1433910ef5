"""``evaluate()``: the one path from two snapshots to a report.

The CLI, the HTTP hook and the Python API all call :func:`evaluate`; nothing else decides a
verdict. Capture (starting services, scraping, running migrations) happens before, and hands in
snapshots plus the findings and sections it produced itself.

The findings come from running every check of the rule registry (:mod:`compatcheck.checks`)
over one :class:`~compatcheck.rules.CheckContext`; nothing here knows one area from another.
Policy then rates them, the migration plans say which ones a safe plan makes non-blocking, and
the verdict follows from ``fail_on``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compatcheck.catalogue import SEVERITIES
from compatcheck.checks import REGISTRY, registered_kinds
from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets
from compatcheck.model import Finding, sort_findings
from compatcheck.policy import Policy, default_policy, rate_findings
from compatcheck.report import RatedFinding, Report, VersionInfo
from compatcheck.rules import CheckContext, metrics_comparable
from compatcheck.snapshot import Snapshot

if TYPE_CHECKING:
    from compatcheck.artifact.section import ArtifactSection
    from compatcheck.consumers import ConsumerSet
    from compatcheck.migrations.section import MigrationsSection
    from compatcheck.verify.section import VerifySection

DIRECTIONS = ("rollback", "deploy")


@dataclass(frozen=True)
class EvaluateOptions:
    """How to judge two snapshots. Defaults: a rollback judged by the catalogue's severities."""

    direction: str = "rollback"
    policy: Policy | None = None
    #: Rule files, dashboards, folders: the alerts and panels whose breakage is named; or a
    #: ``ConsumerSet`` already loaded (the hook loads each version of its files once).
    consumers: Sequence[str | Path] | ConsumerSet = ()
    fail_on: str = "error"
    #: Findings capture recorded (migrations, artifact, unavailable parts...); each enters the
    #: report through the check that owns its kind (a kind no check owns is refused).
    extra_findings: Sequence[Finding] = ()
    #: The report's ``migrations`` section, when migrations were inspected.
    migrations: MigrationsSection | None = None
    #: The report's ``artifact`` section, when OLD's artifact was inspected.
    artifact: ArtifactSection | None = None
    #: The report's ``verify`` section, when a post-rollback verification ran.
    verify: VerifySection | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: See :attr:`compatcheck.report.Report.anchor`.
    anchor: str = ""
    today: dt.date | None = None


#: A capture is flagged (the report's first line) when it has under a quarter of the other's
#: families and at least this many fewer: a partial scrape looks like a wave of removals.
SMALL_CAPTURE_RATIO = 4
SMALL_CAPTURE_GAP = 10


def capture_notes(old: Snapshot, new: Snapshot) -> tuple[str, ...]:
    """``NEW exposes 3 families, OLD 214``: one side is a small fraction of the other.

    Still judged (a release may really drop most of its metrics), but a person must know the
    verdict rests on a capture that may be partial (wrong port, a scrape before warm-up).
    """
    if not (metrics_comparable(old) and metrics_comparable(new)):
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


def _consumers(opts: EvaluateOptions, before: Snapshot, after: Snapshot) -> ConsumerSet | None:
    """The consumers to judge: loaded now unless given loaded, None when there are none or the
    metrics cannot be compared (nothing to judge them against)."""
    if not opts.consumers or not (metrics_comparable(before) and metrics_comparable(after)):
        return None
    # Imported here: PromQL parsing (~0.15 s) is only needed when consumers were given.
    from compatcheck.consumers import ConsumerSet, load_consumers

    if isinstance(opts.consumers, ConsumerSet):
        return opts.consumers
    return load_consumers(opts.consumers)


def evaluate(old: Snapshot, new: Snapshot, options: EvaluateOptions | None = None) -> Report:
    """Judge the transition NEW → OLD (rollback) or OLD → NEW (deploy) and return the report."""
    opts = options or EvaluateOptions()
    if opts.direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {opts.direction!r} (expected rollback or deploy)")
    if opts.fail_on not in SEVERITIES or opts.fail_on == "off":
        raise UsageError(f"--fail-on must be error, warning or info, got {opts.fail_on!r}")
    started = time.perf_counter()
    before, after = (new, old) if opts.direction == "rollback" else (old, new)
    migrations = opts.migrations
    relaxed: frozenset[str] = frozenset()
    if migrations is not None:
        # Imported here: the migrations package loads SQLAlchemy and Alembic (~0.3 s), which
        # an evaluation without migrations never needs.
        from compatcheck.migrations.plans import for_direction, non_blocking_kinds

        migrations = for_direction(migrations, opts.direction)
        relaxed = non_blocking_kinds(migrations.plans, opts.direction)
    ctx = CheckContext(
        old,
        new,
        opts,
        migrations=migrations,
        artifact=opts.artifact,
        consumers=_consumers(opts, before, after),
        recorded=tuple(opts.extra_findings),
    )
    findings = [f for c in REGISTRY.values() for f in c.run(ctx)]
    unclaimed = sorted({f.kind for f in ctx.recorded} - registered_kinds().keys())
    if unclaimed:
        raise ValueError(f"finding kind {unclaimed[0]!r} is owned by no registered check")
    # "Nothing uses it" means something only when consumers were actually read: an empty or
    # wrong folder must not turn every removed family into a mere warning.
    consumers_known = ctx.consumers is not None and bool(ctx.consumers.expressions)
    ordered = sort_findings(findings)
    policy = opts.policy or default_policy()
    outcome = rate_findings(ordered, policy, consumers_known=consumers_known, today=opts.today)
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
        artifact=opts.artifact,
        extras=opts.extras,
        anchor=opts.anchor,
        notes=capture_notes(old, new),
    )
