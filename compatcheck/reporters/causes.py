"""Causes first: the findings of a report regrouped the way a person decides a rollback.

The JSON report keeps every finding on its own (a public contract); a person reading text,
Markdown, a workflow log or HTML needs the few root causes (a family renamed, a label dropped, a
readiness field missing, a migration step), each once, with the alerts, records, panels and
queries it breaks nested under it and what to do about it. One grouping here, so that every
human format counts and orders the same causes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from compatcheck.catalogue import SEVERITY_RANK
from compatcheck.model import Consumer
from compatcheck.report import RatedFinding, Report
from compatcheck.reporters._common import AREAS, area_of, plural, transition_text

#: Consumer findings that describe one consumer's symptom of a metric change (nested under it).
_SYMPTOMS = ("consumers/query-broken", "consumers/bucket-dependent")

#: The bridge file name the fix suggests; any path works.
BRIDGE_FILE = "bridge-rules.yml"


@dataclass(frozen=True)
class Effect:
    """One consumer a cause breaks, and how (the consumer finding, when the judge made one)."""

    consumer: Consumer
    finding: RatedFinding | None = None


@dataclass(frozen=True)
class Cause:
    """One root cause: its strongest finding, the findings saying the same fact, and effects."""

    primary: RatedFinding
    related: tuple[RatedFinding, ...] = ()
    effects: tuple[Effect, ...] = ()

    @property
    def findings(self) -> list[RatedFinding]:
        """Every finding this cause stands for (its own and its consumers'), each once."""
        out = [self.primary, *self.related]
        out += [e.finding for e in self.effects if e.finding is not None]
        return out

    def severity(self) -> str:
        """The most serious severity among its findings: a panel that breaks makes a warning
        about buckets an error."""
        return max((rf.severity for rf in self.findings), key=lambda s: SEVERITY_RANK[s])

    def blocking(self, fail_on: str) -> bool:
        return any(rf.counts_against(fail_on) for rf in self.findings)


def _consumer_key(c: Consumer) -> tuple[str, str, str, int | None]:
    return (c.type, c.name, c.file, c.line)


def _stronger(rf: RatedFinding) -> tuple[int, int]:
    """Sort key: most serious first; among equals a declared expectation (a contract) first."""
    contract = 0 if rf.finding.kind.endswith("contract-violated") else 1
    return (-SEVERITY_RANK[rf.severity], contract)


def build_causes(report: Report) -> list[Cause]:
    """Active (unwaived, visible) findings grouped into causes, blocking ones first.

    Findings of one area about one subject are one cause (``readiness/field-missing`` and
    ``readiness/contract-violated`` on ``/readyz#/db_connected`` say one thing). A consumer
    finding nests under every cause that lists its consumer; one no cause explains (a rule file
    that does not parse) is a cause of its own. Findings that do not block because a safe plan
    makes them moot are left out: they are shown under their plan.
    """
    active = [rf for rf in report.visible() if not rf.waived and rf.blocking]
    symptoms = [rf for rf in active if rf.finding.kind in _SYMPTOMS]
    others = [rf for rf in active if rf.finding.kind not in _SYMPTOMS]
    by_consumer: dict[tuple[str, str, str, int | None], RatedFinding] = {}
    for rf in symptoms:
        for c in rf.finding.consumers:
            by_consumer.setdefault(_consumer_key(c), rf)
    groups: dict[tuple[str, str], list[RatedFinding]] = {}
    for rf in others:
        groups.setdefault((area_of(rf.finding.kind), rf.finding.subject), []).append(rf)
    used: set[int] = set()
    causes: list[Cause] = []
    for members in groups.values():
        members = sorted(members, key=_stronger)
        effects: list[Effect] = []
        seen: set[tuple[str, str, str, int | None]] = set()
        for rf in members:
            for c in rf.finding.consumers:
                key = _consumer_key(c)
                if key in seen:
                    continue
                seen.add(key)
                symptom = by_consumer.get(key)
                if symptom is not None:
                    used.add(id(symptom))
                effects.append(Effect(c, symptom))
        causes.append(Cause(members[0], tuple(members[1:]), tuple(effects)))
    causes += [
        Cause(rf, (), tuple(Effect(c) for c in rf.finding.consumers))
        for rf in symptoms
        if id(rf) not in used
    ]
    fail_on = report.fail_on

    def order(c: Cause) -> tuple[int, int, int, str, str]:
        area = area_of(c.primary.finding.kind)
        return (
            0 if c.blocking(fail_on) else 1,
            -SEVERITY_RANK[c.severity()],
            AREAS.index(area) if area in AREAS else len(AREAS),
            c.primary.finding.kind,
            c.primary.finding.subject,
        )

    return sorted(causes, key=order)


def blocking_causes(report: Report, causes: Sequence[Cause]) -> list[Cause]:
    return [c for c in causes if c.blocking(report.fail_on)]


def summary_line(report: Report, causes: Sequence[Cause] | None = None) -> str:
    """``NO-GO: 4 blocking problems (12 findings); 3 warnings, 1 waived (rollback v2 → v1)``.

    Causes are what a person fixes, findings what the JSON lists: both are counted. Findings that
    do not decide anything (warnings, info, relaxed by a safe plan, waived) follow, by name.
    """
    causes = build_causes(report) if causes is None else causes
    blocking = blocking_causes(report, causes)
    n_findings = sum(1 for rf in report.findings if rf.counts_against(report.fail_on))
    if blocking:
        head = f"{plural(len(blocking), 'blocking problem')} ({plural(n_findings, 'finding')})"
    else:
        head = "no blocking problem"
    active = [rf for rf in report.visible() if not rf.waived]
    parts: list[str] = []
    for sev in ("error", "warning", "info"):
        n = sum(1 for c in causes if c not in blocking and c.severity() == sev)
        if n:
            parts.append(plural(n, sev))
    relaxed = sum(1 for rf in active if not rf.blocking)
    if relaxed:
        moot = (
            "about a later rollback" if report.direction == "deploy" else "moot under a safe plan"
        )
        parts.append(f"{relaxed} {moot}")
    waived = sum(1 for rf in report.visible() if rf.waived)
    if waived:
        parts.append(f"{waived} waived")
    verdict = report.verdict.upper()
    if report.verify is not None:  # after a rollback, the question is whether OLD is back
        verdict = "VERIFIED" if report.go else "NOT VERIFIED"
    if report.fail_on != "error":
        verdict += f" (fail on {report.fail_on})"
    tail = f"; {', '.join(parts)}" if parts else ""
    line = f"{verdict}: {head}{tail} ({transition_text(report)})"
    if report.unavailable:
        line += "; some checks could not run"
    return line


def rewrite_hint(rf: RatedFinding, direction: str) -> str | None:
    """For a rename, the query rewrite that works on both releases: ``new or old``."""
    ev = rf.finding.evidence
    if rf.finding.kind != "metrics/renamed":
        return None
    before = ev.get("family") or ev.get("new_name")
    after = ev.get("renamed_to") or ev.get("old_name")
    if not isinstance(before, str) or not isinstance(after, str):
        return None
    return f"{before} or {after}"


def waiver_snippet(rf: RatedFinding) -> str:
    """A policy entry that accepts exactly this finding (by fingerprint), to fill in."""
    f = rf.finding
    return (
        f'{{kind: {f.kind}, fingerprint: "{f.fingerprint}", reason: "WHY (ticket)", '
        "expires: YYYY-MM-DD}"
    )


def fixes(cause: Cause, report: Report) -> list[str]:
    """How to fix one cause, most direct first: the catalogue's fix, the rewrite and the bridge
    command for a rename, the waiver snippet, and where the whole explanation is."""
    from compatcheck.checks import catalogued_rules

    rf = cause.primary
    kind = rf.finding.kind
    rule = catalogued_rules().get(kind)
    out: list[str] = []
    if rule is not None and rule.fix:
        out.append(rule.fix)
    rewrite = rewrite_hint(rf, report.direction)
    if rewrite is not None:
        out.append(f"rewrite the queries below to `{rewrite}` (works on both releases)")
        command = report.invocation or "compatcheck check"
        out.append(f"or bridge it: `{command} --emit-bridge-rules {BRIDGE_FILE}`")
    if cause.severity() != "info":
        out.append(f"accept it (policy file `waivers:`): {waiver_snippet(rf)}")
    out.append(f"details: `compatcheck explain {kind}`")
    return out


def short_fingerprint(rf: RatedFinding) -> str:
    """The first 8 of the 12 hex digits: enough to find the finding in the JSON."""
    return rf.finding.fingerprint[:8]


__all__ = [
    "Cause",
    "Effect",
    "blocking_causes",
    "build_causes",
    "fixes",
    "rewrite_hint",
    "short_fingerprint",
    "summary_line",
    "waiver_snippet",
]
