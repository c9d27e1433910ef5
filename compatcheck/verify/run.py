"""The polling loop: ask every check, let the verdict decide, say where it stands, wait, again.

Verified is a verdict, not a tally: each poll's findings go through policy (a waived alert does
not hold the rollback up) via the ``decide`` callback the caller gives, which is the engine's
``evaluate``. The loop ends at the first poll that is verified, or with a last poll at the end
of the window. Prometheus that cannot be asked on the first poll ends the run at once (a wrong
URL must not cost a whole window); on a later poll it is one progress line, and a report that
says so if it is still so at the end.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from compatcheck.masking import mask_secrets
from compatcheck.model import Finding
from compatcheck.progress import QUIET, Progress
from compatcheck.verify.checks import CHECKS, Outcome, Poll, WindowState
from compatcheck.verify.client import PrometheusClient, PrometheusUnavailable
from compatcheck.verify.plan import VerifyPlan
from compatcheck.verify.section import CHECK_NAMES, VerifyCheck, VerifySection

#: ``decide(section, findings)`` → verified (the verdict is go).
Decide = Callable[[VerifySection, tuple[Finding, ...]], bool]


@dataclass(frozen=True)
class VerifyResult:
    section: VerifySection
    findings: tuple[Finding, ...]
    #: The build every instance reports, when they all report the same one.
    observed_build: dict[str, str]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _all_hold(section: VerifySection, findings: tuple[Finding, ...]) -> bool:
    return all(c.holds for c in section.checks)


def run_verify(
    plan: VerifyPlan,
    client: PrometheusClient,
    *,
    window: float,
    interval: float,
    expect_label: str,
    decide: Decide = _all_hold,
    progress: Progress = QUIET,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyResult:
    """Poll until verified or ``window`` seconds have passed (a last poll at the end)."""
    state = WindowState()
    ok_since: dict[str, str] = {}
    started_at, start = _now(), clock()
    deadline = start + window
    polls = 0
    while True:
        polls += 1
        at = _now()
        poll = Poll(client)
        try:
            outcomes = {name: CHECKS[name](plan, poll, state) for name in CHECK_NAMES}
        except PrometheusUnavailable as exc:
            if polls == 1:
                raise
            checks, findings = _unreachable(str(exc), at)
            ok_since.clear()
            observed: dict[str, str] = {}
        else:
            checks = tuple(_check(name, o, at, ok_since) for name, o in outcomes.items())
            findings = tuple(f for o in outcomes.values() for f in o.findings)
            observed = _observed_build(plan, poll)
        section = VerifySection(
            prometheus=client.shown,
            selector=plan.selector,
            expect=expect_label,
            window_seconds=window,
            interval_seconds=interval,
            started_at=started_at,
            finished_at=at,
            polls=polls,
            verified=False,
            checks=checks,
        )
        verified = decide(section, findings)
        section = replace(section, verified=verified)
        now = clock()
        progress.step("verify", _progress_line(section, now - start, window))
        if verified or now >= deadline:
            return VerifyResult(section, findings, observed)
        sleep(max(0.0, min(interval, deadline - now)))


def _check(name: str, o: Outcome, at: str, ok_since: dict[str, str]) -> VerifyCheck:
    if o.status == "ok":
        ok_since.setdefault(name, at)
    else:
        ok_since.pop(name, None)
    return VerifyCheck(
        name=name,
        status=o.status,
        summary=o.summary,
        query=o.query,
        value=o.value,
        checked_at=at,
        ok_since=ok_since.get(name),
        details=o.details,
    )


def _unreachable(reason: str, at: str) -> tuple[tuple[VerifyCheck, ...], tuple[Finding, ...]]:
    reason = mask_secrets(reason)
    checks = tuple(
        VerifyCheck(name, "unknown", "Prometheus could not be asked", checked_at=at)
        for name in CHECK_NAMES
    )
    finding = Finding(
        "check/unavailable",
        "prometheus",
        f"Verification could not ask Prometheus: {reason}",
        {"part": "verify", "reason": reason},
    )
    return checks, (finding,)


def _observed_build(plan: VerifyPlan, poll: Poll) -> dict[str, str]:
    """The build all instances agree on (the report's "running now" side), else nothing."""
    if plan.build_family is None:
        return {}
    keys = ("version", "revision")
    builds = {
        tuple((k, s.labels[k]) for k in keys if s.labels.get(k))
        for s in poll.query(plan.select(plan.build_family))
    }
    return dict(next(iter(builds))) if len(builds) == 1 else {}


def _briefly(check: VerifyCheck) -> str:
    """The summary and the first objects that fail: who is still wrong, on one line."""
    shown = list(check.details[:2])
    if len(check.details) > 2:
        shown.append(f"{len(check.details) - 2} more")
    return "; ".join([check.summary, *shown])


def _progress_line(section: VerifySection, elapsed: float, window: float) -> str:
    head = f"poll {section.polls}, {elapsed:.0f} s of {window:.0f} s: "
    if section.verified:
        held = [c.name for c in section.checks if c.status == "ok"]
        line = head + f"verified ({', '.join(held) or 'nothing'} hold"
        # What was not judged is named, so "verified" is never read as covering it.
        skipped = [f"{c.name}: {c.summary}" for c in section.checks if c.status == "skipped"]
        return line + "".join(f"; not checked: {s}" for s in skipped) + ")"
    waiting = [c for c in section.checks if not c.holds]
    if all(c.status == "unknown" for c in section.checks):
        return head + "Prometheus could not be asked; retrying"
    parts = [f"{c.name} ({_briefly(c)})" for c in waiting] or ["waived findings only"]
    return head + "waiting for " + "; ".join(parts)
