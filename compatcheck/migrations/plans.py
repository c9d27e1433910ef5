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
nature of a downgrade: reported (``downgrade-destructive``), not blocking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from compatcheck.model import Finding, sort_findings

#: Finding kinds that make each plan unsafe.
BLOCKERS: dict[str, frozenset[str]] = {
    "code-only": frozenset({"migrations/path-missing", "migrations/old-code-incompatible"}),
    "downgrade": frozenset(
        {
            "migrations/path-missing",
            "migrations/downgrade-missing",
            "migrations/downgrade-not-implemented",
            "migrations/downgrade-failed",
            "migrations/downgrade-incomplete",
            "migrations/upgrade-destructive",
            "migrations/roundtrip-mismatch",
            "migrations/data-lost",
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
    "code-only": frozenset({"migrations/old-code-incompatible"}),
    "downgrade": BLOCKERS["downgrade"]
    | {"migrations/downgrade-destructive", "migrations/non-transactional"},
}

#: ``evidence.reason`` of a ``migrations/old-code-incompatible`` finding made by the runtime
#: trial. DESIGN.md pins the static reasons (``column-dropped`` …); this one is our extension.
RUNTIME_FAILURE = "runtime-failure"

#: Prefix of every runtime reason line, so a reader tells them from the static ones.
ON_NEW_SCHEMA = "OLD on NEW's schema"


@dataclass(frozen=True)
class Exchange:
    """One replayed warm-up request and what came back (``status`` None: no HTTP answer)."""

    method: str
    path: str
    status: int | None
    error: str | None = None
    #: The error line OLD logged while serving this request (the exception, not the traceback).
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def broken(self) -> bool:
        """A server-side failure: 5xx or no HTTP answer. A 4xx is OLD's own judgement."""
        return self.status is None or self.status >= 500

    @property
    def outcome(self) -> str:
        if self.status is not None:
            return str(self.status)
        error = self.error or "no answer"
        if "disconnected without sending a response" in error or "closed the connection" in error:
            return "connection closed without a response"
        return f"no response: {error}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path, "status": self.status}
        if self.error:
            out["error"] = self.error
        if self.log:
            out["log"] = self.log
        return out


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
    #: Evidence: the requests that broke, each with what OLD answered on its own database.
    requests: tuple[dict[str, Any], ...] = ()
    log_tail: str = ""
    note: str = ""
    #: For the report's ``migrations.code_only_trial`` (database kind, timings, every exchange).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        return self.verified and not self.failures


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
    details: dict[str, Any] | None = None,
) -> CodeOnlyTrial:
    """Compare OLD's warm-up on NEW's schema (``trial``) with OLD's on its own database.

    ``baseline`` None means OLD never came up on its own database: nothing can be blamed on the
    schema, so the trial is not verified. A request counts against the plan only when it was 2xx
    on OLD's own database and is 5xx or unanswered on NEW's schema (same position in the replay:
    both runs send the same requests in the same order). ``startup_error``: OLD never became ready
    or exited on NEW's schema; ``exit_code``: OLD exited during the warm-up.
    """
    info = dict(details or {})
    if baseline is None:
        return CodeOnlyTrial(
            verified=False,
            note="OLD did not come up on its own database, so its run on NEW's schema proves "
            "nothing about the schema",
            log_tail=log_tail,
            details=info,
        )
    if startup_error is not None:
        line = f"{ON_NEW_SCHEMA}: {startup_error}"
        shown = error_line(startup_log)
        if shown:
            line += f" (log: `{shown}`)"
        return CodeOnlyTrial(
            verified=True,
            failures=(line,),
            log_tail=log_tail,
            details=info,
        )
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
            requests.append({**there.as_dict(), "own_database_status": own.status})
    if exit_code is not None:
        failures.append(f"{ON_NEW_SCHEMA}: exited with code {exit_code} during the warm-up")
    return CodeOnlyTrial(
        verified=True,
        failures=tuple(failures),
        requests=tuple(requests),
        log_tail=log_tail,
        details=info,
    )


def judge_plans(
    findings: Iterable[Finding], trial: CodeOnlyTrial | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """``[{"name", "safe", "reasons"}]`` for both plans, and the plan to follow (or None).

    With a ``trial`` the code-only plan also says ``verified`` (and ``verification``: why not,
    when it could not be judged), and its runtime failures join its reasons.
    """
    items = sorted(findings, key=lambda f: (f.kind, f.subject))
    plans: list[dict[str, Any]] = []
    for name in ORDER:
        reasons = [
            f"{f.kind} {f.subject}: {f.message}"
            for f in items
            if f.kind in BLOCKERS[name]
            # The trial's own finding: its lines come from the trial below, not twice.
            and not (trial is not None and f.evidence.get("reason") == RUNTIME_FAILURE)
        ]
        plan: dict[str, Any] = {"name": name}
        if name == "code-only" and trial is not None:
            reasons += trial.failures
            plan["verified"] = trial.verified
            if trial.note:
                plan["verification"] = trial.note
        plan.update(safe=not reasons, reasons=reasons)
        plans.append(plan)
    recommended = next((p["name"] for p in plans if p["safe"]), None)
    return plans, recommended


def runtime_finding(new_head: str, trial: CodeOnlyTrial) -> Finding:
    """``migrations/old-code-incompatible`` for a failure only the runtime trial saw.

    Subject: NEW's head (the schema OLD ran on, not one revision: the trial cannot tell which
    revision broke OLD). ``evidence.reason`` is ``runtime-failure``, an extension of the static
    reasons DESIGN.md pins, with the broken ``requests`` and OLD's ``log_tail``.
    """
    first = trial.failures[0].removeprefix(f"{ON_NEW_SCHEMA}: ")
    more = len(trial.failures) - 1
    return Finding(
        "migrations/old-code-incompatible",
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


def verify_code_only(
    findings: Sequence[Finding], section: dict[str, Any], trial: CodeOnlyTrial
) -> tuple[list[Finding], dict[str, Any]]:
    """Fold the runtime trial into the inspection's findings and ``migrations`` section.

    A broken trial becomes a ``migrations/old-code-incompatible`` finding only when no static one
    already says the code-only plan is unsafe; otherwise the runtime evidence goes into the plan's
    reasons alone (one finding per problem, not two). The plans are judged again either way.
    """
    out = list(findings)
    covered = any(f.kind == "migrations/old-code-incompatible" for f in out)
    new_head = section.get("new_head")
    if trial.failures and not covered and isinstance(new_head, str):
        out = sort_findings([*out, runtime_finding(new_head, trial)])
    plans, recommended = judge_plans(out, trial)
    updated = dict(section)
    updated.update(plans=plans, recommended=recommended)
    updated["code_only_trial"] = {
        "verified": trial.verified,
        "safe": trial.safe,
        **({"note": trial.note} if trial.note else {}),
        "failures": list(trial.failures),
        **trial.details,
    }
    return out, updated
