"""The two ways to roll back, each judged from the findings: keep NEW's schema, or downgrade.

*code-only* keeps NEW's schema and deploys OLD's code on it: safe when nothing OLD's code relies
on was dropped, renamed, retyped or made NOT NULL without a default. The static reasons are a
reading of the migration scripts; ``compatcheck check`` can also *verify* the plan by starting
OLD's code on a scratch database at NEW's head and replaying the warm-up requests
(:class:`CodeOnlyTrial`, :func:`judge_trial`, :func:`verify_code_only`). A failure there makes the
plan unsafe even when the scripts look harmless (a trigger, a unique index, a constraint OLD's
writes violate); a clean run does not clear a static concern, because a handful of warm-up
requests do not exercise every query OLD's code has.
*downgrade* runs the downgrade path: safe when the path exists, every downgrade is implemented and
runs, undoes what its upgrade did, and loses no data OLD wrote. Losing what NEW wrote is the
nature of a downgrade: reported (``downgrade-destructive`` per revision, and
``new-data-removed`` for a safe plan, with what and how much), not blocking.

Every plan says how it was judged (``basis``) and one status line (``status``) that every
reporter prints as is, so no format claims more than was checked: a code-only plan is
"verified" only when OLD's code served at least one warm-up request on NEW's schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from compatcheck.checks.migrations import (
    DATA_LOST,
    DIRTY_VERSION,
    DOWNGRADE_DESTRUCTIVE,
    DOWNGRADE_FAILED,
    DOWNGRADE_INCOMPLETE,
    DOWNGRADE_MISSING,
    DOWNGRADE_NOT_IMPLEMENTED,
    DOWNGRADE_WILL_FAIL,
    NEW_DATA_REMOVED,
    NON_TRANSACTIONAL,
    OLD_CODE_INCOMPATIBLE,
    PATH_MISSING,
    ROUNDTRIP_MISMATCH,
    UPGRADE_DESTRUCTIVE,
)
from compatcheck.migrations.section import (
    ERA_ROWS,
    Exchange,
    MigrationsSection,
    Plan,
    Removal,
    RoundTrip,
    TrialRecord,
    TrialSetup,
)
from compatcheck.model import Finding, sort_findings

#: Finding kinds that make each plan unsafe.
BLOCKERS: dict[str, frozenset[str]] = {
    "code-only": frozenset({PATH_MISSING, OLD_CODE_INCOMPATIBLE}),
    "downgrade": frozenset(
        {
            PATH_MISSING,
            DOWNGRADE_MISSING,
            DOWNGRADE_NOT_IMPLEMENTED,
            DOWNGRADE_FAILED,
            DOWNGRADE_WILL_FAIL,
            DOWNGRADE_INCOMPLETE,
            UPGRADE_DESTRUCTIVE,
            ROUNDTRIP_MISMATCH,
            DATA_LOST,
            DIRTY_VERSION,
        }
    ),
}

#: Preference when both plans are safe: keeping the schema touches no data.
ORDER = ("code-only", "downgrade")

#: The kinds each plan is *about*: its blockers, plus what only matters if that plan is followed
#: (a destructive or non-transactional downgrade does not make it unsafe, but it is the
#: downgrade's data and the downgrade's risk). When another plan is safe, the engine marks these
#: findings as not blocking.
CONCERNS: dict[str, frozenset[str]] = {
    "code-only": frozenset({OLD_CODE_INCOMPATIBLE}),
    "downgrade": BLOCKERS["downgrade"]
    | {DOWNGRADE_DESTRUCTIVE, NON_TRANSACTIONAL, NEW_DATA_REMOVED},
}

#: What each plan is for when ``--direction deploy`` gates a roll-forward: OLD's pods keep
#: running on NEW's schema while a rolling deploy proceeds, so the code-only condition decides
#: the deploy; the downgrade plan only matters for a later rollback.
DEPLOY_ROLES = {"code-only": "this deploy", "downgrade": "a later rollback"}


def non_blocking_kinds(plans: Sequence[Plan], direction: str) -> frozenset[str]:
    """Finding kinds that stay in the report but do not decide the verdict.

    Rollback: what concerns a plan that is not needed because another plan is safe (a
    destructive downgrade is irrelevant when OLD runs on NEW's schema). Deploy: everything that
    concerns only the downgrade, whatever the plans say; OLD-on-NEW findings always block.
    """
    if direction == "deploy":
        return CONCERNS["downgrade"] - CONCERNS["code-only"]
    safe = {p.name for p in plans if p.safe}
    if not safe:
        return frozenset()
    out: set[str] = set()
    for name, kinds in CONCERNS.items():
        if name not in safe:
            out |= kinds
    # A kind that also matters for a safe plan stays blocking.
    for name in safe:
        out -= CONCERNS.get(name, frozenset())
    return frozenset(out)


def for_direction(section: MigrationsSection, direction: str) -> MigrationsSection:
    """The section as a report in ``direction`` shows it: in deploy each plan says what it is
    for (``applies_to``), so no reader takes the downgrade plan for advice about this deploy."""
    if direction != "deploy":
        return section
    plans = tuple(replace(p, applies_to=DEPLOY_ROLES.get(p.name, "")) for p in section.plans)
    return replace(section, plans=plans)


#: Why a plan's verdict rests on the scripts alone, in the words every format prints.
STATIC_ONLY = "static analysis only, nothing executed"
STATIC_ALONE = "the plan's safety comes from static analysis alone"
#: ``CodeOnlyTrial.note`` when OLD came up on NEW's schema but there was nothing to replay.
NO_WARMUP = "no warm-up requests"
#: Why ``compatcheck migrations`` cannot exercise the code-only plan.
NO_RELEASE = "`compatcheck migrations` starts no release"

#: ``evidence.reason`` of a ``migrations/old-code-incompatible`` finding made by the runtime
#: trial. The public contract pins the static reasons (``column-dropped`` …); this one extends them.
RUNTIME_FAILURE = "runtime-failure"

#: Prefix of every runtime reason line, so a reader tells them from the static ones.
ON_NEW_SCHEMA = "OLD on NEW's schema"


@dataclass(frozen=True)
class CodeOnlyTrial:
    """What starting OLD's code on a database at NEW's head showed, judged against OLD's own run.

    ``verified`` is false when the trial could not be judged (``note`` says why: OLD is not
    launched by compatcheck, its scratch database could not be migrated, or OLD did not come up
    on its own database either, so a failure would say nothing about the schema).
    """

    verified: bool
    #: One line each, ``OLD on NEW's schema: ...``; empty when OLD's code coped.
    failures: tuple[str, ...] = ()
    #: Warm-up requests replayed against OLD on NEW's schema.
    replayed: int = 0
    #: OLD's code was started on NEW's schema (False: not run, or nothing to replay).
    exercised: bool = False
    #: Evidence: the requests that broke, each with what OLD answered on its own database.
    requests: tuple[dict[str, Any], ...] = ()
    log_tail: str = ""
    note: str = ""
    #: How the trial's database was prepared, and the timings (for ``code_only_trial``).
    setup: TrialSetup = field(default_factory=TrialSetup)
    #: Every replayed warm-up request, as OLD on NEW's schema answered it (None: not judged).
    exchanges: tuple[Exchange, ...] | None = None

    @property
    def safe(self) -> bool:
        return self.verified and not self.failures

    @property
    def status(self) -> str:
        """How the trial bears on the plan, for its status line."""
        if self.verified and self.replayed:
            replayed = _count(self.replayed, "warm-up request")
            return f"verified: OLD ran on NEW's schema ({replayed} replayed)"
        if self.verified:
            return "verified: OLD was started on NEW's schema"
        word = "not verified" if self.exercised else "not exercised"
        return f"{word} ({self.note or 'not run'})"


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Fault)\b")


def error_line(log: str, limit: int = 200) -> str:
    """The line of a log chunk that names the failure: a traceback's exception line, else the
    last non-blank line (``-----`` separators skipped), cut at ``limit`` characters."""
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip() and set(ln.strip()) != {"-"}]
    found = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    line = (found or lines or [""])[-1].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def judge_trial(
    baseline: Sequence[Exchange] | None,
    trial: Sequence[Exchange],
    *,
    startup_error: str | None = None,
    startup_log: str = "",
    exit_code: int | None = None,
    log_tail: str = "",
    setup: TrialSetup | None = None,
) -> CodeOnlyTrial:
    """Compare OLD's warm-up on NEW's schema (``trial``) with OLD's on its own database.

    ``baseline`` None means OLD never came up on its own database: nothing can be blamed on the
    schema, so the trial is not verified. A request counts against the plan only when it was 2xx
    on OLD's own database and is 5xx or unanswered on NEW's schema (same position in the replay:
    both runs send the same requests in the same order). ``startup_error``: OLD never became ready
    or exited on NEW's schema; ``exit_code``: OLD exited during the warm-up. The trial records
    ``setup`` and every exchange of ``trial``.
    """
    judged = _judge(baseline, trial, startup_error, startup_log, exit_code)
    return replace(judged, log_tail=log_tail, setup=setup or TrialSetup(), exchanges=tuple(trial))


def _judge(
    baseline: Sequence[Exchange] | None,
    trial: Sequence[Exchange],
    startup_error: str | None,
    startup_log: str,
    exit_code: int | None,
) -> CodeOnlyTrial:
    if baseline is None:
        return CodeOnlyTrial(
            verified=False,
            note="OLD did not come up on its own database, so its run on NEW's schema proves "
            "nothing about the schema",
            exercised=True,
        )
    if startup_error is not None:
        line = f"{ON_NEW_SCHEMA}: {startup_error}"
        shown = error_line(startup_log)
        if shown:
            line += f" (log: `{shown}`)"
        return CodeOnlyTrial(verified=True, failures=(line,), exercised=True)
    groups: dict[tuple[str, str, str], list[tuple[Exchange, Exchange]]] = {}
    totals: dict[tuple[str, str], int] = {}
    for own, there in zip(baseline, trial, strict=False):
        totals[(there.method, there.path)] = totals.get((there.method, there.path), 0) + 1
        if own.ok and there.broken:
            groups.setdefault((there.method, there.path, there.outcome), []).append((own, there))
    failures: list[str] = []
    requests: list[dict[str, Any]] = []
    for (method, path, outcome), pairs in groups.items():
        count = f"{len(pairs)} of {totals[(method, path)]}"
        logged = next((t.log for _, t in reversed(pairs) if t.log), "")
        failures.append(
            f"{ON_NEW_SCHEMA}: `{method} {path}` → {outcome} ({count}"
            + (f"; log: `{logged}`" if logged else "")
            + ")"
        )
        for own, there in pairs:
            requests.append({**there.to_json(), "own_database_status": own.status})
    if exit_code is not None:
        failures.append(f"{ON_NEW_SCHEMA}: exited with code {exit_code} during the warm-up")
    if not trial and not failures:
        # Trap: OLD becoming ready on NEW's schema proves little; with nothing replayed the
        # plan rests on the scripts alone and must not be called verified.
        return CodeOnlyTrial(verified=False, note=NO_WARMUP)
    return CodeOnlyTrial(
        verified=True,
        failures=tuple(failures),
        replayed=len(trial),
        exercised=True,
        requests=tuple(requests),
    )


def judge_plans(
    findings: Iterable[Finding],
    trial: CodeOnlyTrial | None = None,
    *,
    static: str | None = None,
    coverage: str | None = None,
) -> tuple[tuple[Plan, ...], str | None]:
    """Both plans, judged, and the plan to follow (or None).

    With a ``trial`` the code-only plan also says ``verified`` (and ``verification``: why not,
    when it could not be judged), and its runtime failures join its reasons. ``static`` is why
    nothing was executed (``--static was asked for``, a bare versions folder); None when the
    round trip ran. ``basis`` is how each verdict was reached (``runtime``, ``roundtrip`` or
    ``static``, with ``basis_reason`` for the last), ``status`` the line every format prints.
    ``coverage`` (:func:`seeding_coverage`) ends the downgrade plan's status: how much of its data
    check was made.
    """
    items = sorted(findings, key=lambda f: (f.kind, f.subject))
    plans = tuple(_judge_plan(name, items, trial, static) for name in ORDER)
    if coverage:
        plans = tuple(
            replace(p, status=f"{p.status}; {coverage}") if p.name == "downgrade" else p
            for p in plans
        )
    recommended = next((p.name for p in plans if p.safe), None)
    return plans, recommended


def _judge_plan(
    name: str, items: Sequence[Finding], trial: CodeOnlyTrial | None, static: str | None
) -> Plan:
    reasons = [
        f"{f.kind} {f.subject}: {f.message}"
        for f in items
        if f.kind in BLOCKERS[name]
        # The trial's own finding: its lines come from the trial below, not twice.
        and not (trial is not None and f.evidence.get("reason") == RUNTIME_FAILURE)
    ]
    if name == "code-only":
        if trial is not None:
            reasons += trial.failures
        basis, basis_reason = _code_only_basis(trial, static)
        plan = Plan(
            name,
            safe=not reasons,
            reasons=tuple(reasons),
            verified=None if trial is None else trial.verified,
            verification=(trial.note or None) if trial is not None else None,
            basis=basis,
            basis_reason=basis_reason,
        )
    else:
        plan = Plan(
            name,
            safe=not reasons,
            reasons=tuple(reasons),
            basis="static" if static else "roundtrip",
            basis_reason=static or None,
            removes_new_data=removed_new_data(items),
            live_data_at_risk=live_data_at_risk(items),
        )
    return replace(plan, status=_status(plan, trial, static))


#: How many unseeded tables a status line names before "and N more".
COVERAGE_NAMES = 5


def seeding_coverage(trip: RoundTrip | None) -> str | None:
    """``data check partial: seeded 36/38 tables; not seeded: `x` (why), ...``: what the round
    trip's data check covered of OLD's tables, for every format's plan status (a table never
    seeded is said, never silently skipped). None when no round trip ran or every table was
    seeded."""
    if trip is None or not trip.ran:
        return None
    if trip.unseeded is not None:
        return f"no data check: {trip.unseeded}"
    errors = dict(trip.seed_errors)
    if not errors:
        return None
    total = len(set(trip.seeded) | set(errors))
    named = [f"`{t}` ({why})" for t, why in sorted(errors.items())[:COVERAGE_NAMES]]
    more = len(errors) - len(named)
    tail = f" and {more} more" if more > 0 else ""
    done = total - len(errors)
    return f"data check partial: seeded {done}/{total} tables; not seeded: {', '.join(named)}{tail}"


def _code_only_basis(trial: CodeOnlyTrial | None, static: str | None) -> tuple[str, str | None]:
    """(basis, why it is static): OLD's code ran on NEW's schema, or the scripts decided."""
    if trial is not None and trial.verified:
        return "runtime", None
    if trial is not None:
        return "static", trial.note or "not run"
    return "static", static or NO_RELEASE


def _status(plan: Plan, trial: CodeOnlyTrial | None, static: str | None) -> str:
    """``safe; removes NEW-era data: `refunds` (2 rows)`` / ``UNSAFE; static analysis only…``."""
    parts = ["safe" if plan.safe else "UNSAFE"]
    if plan.safe and plan.removes_new_data:
        parts.append(f"removes NEW-era data: {removal_text(plan.removes_new_data)}")
    if plan.name == "code-only" and trial is not None and trial.verified:
        parts.append(trial.status)
    elif plan.name == "code-only" and (trial is not None or static is None):
        # OLD's code was not exercised: say why, and that the scripts alone decided.
        how = trial.status if trial is not None else f"not exercised ({NO_RELEASE})"
        judged = STATIC_ALONE if plan.safe else "judged by static analysis alone"
        parts.append(f"{how}; {judged}")
    elif plan.basis == "static":
        parts.append(STATIC_ONLY)
    return "; ".join(parts)


def _amount(n: int, unit: str) -> str:
    """``2 rows``, ``1 value``, ``3 NEW-era rows``."""
    return f"{n:,} {unit.removesuffix('s') if n == 1 else unit}"


def removed_new_data(findings: Iterable[Finding]) -> tuple[Removal, ...]:
    """What the downgrade removes of NEW's data.

    Objects come from the scripts (``downgrade-destructive``'s tables and columns) and from the
    round trip (``removed_in_roundtrip``, which also sees raw SQL); ``count`` is what the round
    trip removed on the scratch database, None when it did not count that object (static mode).
    Tables first, then columns, each by name.
    """
    out: dict[str, Removal] = {}
    for f in findings:
        if f.kind != DOWNGRADE_DESTRUCTIVE:
            continue
        ev = f.evidence
        for obj in [*ev.get("tables", ()), *ev.get("columns", ())]:
            out.setdefault(obj, Removal(obj, "values" if "." in obj else "rows", None))
        counted = ev.get("removed_in_roundtrip")
        for key, n in counted.items() if isinstance(counted, Mapping) else ():
            obj = str(key).removesuffix(ERA_ROWS)
            unit = "values" if "." in obj else "rows"
            if str(key).endswith(ERA_ROWS):
                unit = "NEW-era rows"
            out[obj] = Removal(obj, unit, int(n))
    return tuple(sorted(out.values(), key=lambda r: ("." in r.object, r.object)))


def removal_text(removed: Sequence[Removal], *, static: bool = False) -> str:
    """```refunds` (2 rows), `orders.payment_method` (3 values), counted in the scratch round
    trip``; objects nothing counted are named bare and said to be not counted."""
    shown = [
        f"`{r.object}`" + (f" ({_amount(r.count, r.unit)})" if r.count is not None else "")
        for r in removed
    ]
    if not any(r.count is not None for r in removed):
        return ", ".join(shown) + (f" (not counted: {STATIC_ONLY})" if static else " (not counted)")
    return ", ".join(shown) + ", counted in the scratch round trip"


def live_data_at_risk(findings: Iterable[Finding]) -> tuple[str, ...]:
    """``--live-db-url`` counts of what the downgrade destroys, one line per object."""
    counts: dict[str, int | None] = {}
    for f in findings:
        if f.kind == DOWNGRADE_DESTRUCTIVE:
            live = f.evidence.get("live_counts")
            counts.update(live if isinstance(live, Mapping) else {})
    return tuple(describe(o, counts[o]) for o in sorted(counts, key=lambda o: ("." in o, o)))


def describe(obj: str, count: int | None) -> str:
    """``users.phone: 12,345 non-NULL values`` / ``orders: 7 rows`` / ``... absent``."""
    if count is None:
        return f"`{obj}`: absent from the live database"
    unit = "non-NULL values" if "." in obj else "rows"
    return f"`{obj}`: {count:,} {unit}"


def new_data_finding(plans: Sequence[Plan], new_head: str) -> Finding | None:
    """``migrations/new-data-removed`` when the downgrade plan is safe but removes NEW's data.

    Subject: NEW's head (the plan starts there; the per-revision detail is in the
    ``downgrade-destructive`` findings). Evidence: what and how much, as the status line says.
    """
    plan = next((p for p in plans if p.name == "downgrade"), None)
    if plan is None or not plan.safe or not plan.removes_new_data:
        return None
    live = list(plan.live_data_at_risk)
    message = (
        "The downgrade plan is safe but removes data written since NEW was deployed: "
        + removal_text(plan.removes_new_data, static=plan.basis == "static")
        + (f"; on the live database: {'; '.join(live)}" if live else "")
        + "."
    )
    evidence: dict[str, Any] = {
        "plan": "downgrade",
        "removed": [r.to_json() for r in plan.removes_new_data],
    }
    if live:
        evidence["live_data_at_risk"] = live
    return Finding(NEW_DATA_REMOVED, new_head, message, evidence)


def runtime_finding(new_head: str, trial: CodeOnlyTrial) -> Finding:
    """``migrations/old-code-incompatible`` for a failure only the runtime trial saw.

    Subject: NEW's head (the schema OLD ran on, not one revision: the trial cannot tell which
    revision broke OLD). ``evidence.reason`` is ``runtime-failure``, an extension of the static
    reasons the public contract pins, with the broken ``requests`` and OLD's ``log_tail``.
    """
    first = trial.failures[0].removeprefix(f"{ON_NEW_SCHEMA}: ")
    more = len(trial.failures) - 1
    return Finding(
        OLD_CODE_INCOMPATIBLE,
        new_head,
        f"OLD's code fails on NEW's schema at `{new_head}` (runtime-failure): {first}"
        + (f", and {more} more" if more else "")
        + ".",
        {
            "reason": RUNTIME_FAILURE,
            "failures": list(trial.failures),
            "requests": list(trial.requests),
            "log_tail": trial.log_tail,
        },
    )


def trial_record(trial: CodeOnlyTrial) -> TrialRecord:
    """The trial as the report's ``migrations.code_only_trial`` records it."""
    return TrialRecord(
        verified=trial.verified,
        safe=trial.safe,
        replayed=trial.replayed,
        note=trial.note or None,
        failures=trial.failures,
        setup=trial.setup,
        requests=trial.exchanges,
    )


def verify_code_only(
    findings: Sequence[Finding], section: MigrationsSection, trial: CodeOnlyTrial
) -> tuple[list[Finding], MigrationsSection]:
    """Fold the runtime trial into the inspection's findings and ``migrations`` section.

    A broken trial becomes a ``migrations/old-code-incompatible`` finding only when no static one
    already says the code-only plan is unsafe; otherwise the runtime evidence goes into the plan's
    reasons alone (one finding per problem, not two). The plans are judged again either way.
    """
    out = list(findings)
    covered = any(f.kind == OLD_CODE_INCOMPATIBLE for f in out)
    if trial.failures and not covered and section.new_head is not None:
        out = sort_findings([*out, runtime_finding(section.new_head, trial)])
    coverage = seeding_coverage(section.roundtrip)
    plans, recommended = judge_plans(out, trial, static=section.static_reason, coverage=coverage)
    updated = replace(
        section, plans=plans, recommended=recommended, code_only_trial=trial_record(trial)
    )
    return out, updated
