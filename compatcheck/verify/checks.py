"""The verification checks, one function per check, registered in :data:`CHECKS` by name.

Each check asks Prometheus (through the poll, which asks each query once per poll) and returns
an :class:`Outcome`: its status, one summary line, what it measured, and the findings that say
what still fails, one per object (an instance, a family, an alert), named as their users name
them. Checks emit kinds; policy decides the severity and whether a waiver lets it pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from compatcheck.checks.verify import (
    ALERT_FIRING,
    BUILD_MISMATCH,
    ERROR_RATE_HIGH,
    SERIES_MISSING,
    TARGET_DOWN,
    TARGETS_DROPPED,
)
from compatcheck.model import Finding
from compatcheck.verify.client import Alert, PrometheusClient, Sample, matches
from compatcheck.verify.plan import VerifyPlan


@dataclass(frozen=True)
class Outcome:
    status: str  # ok | failing | skipped
    summary: str
    query: str = ""
    value: float | None = None
    details: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()


class Poll:
    """One round of questions to Prometheus: each query is asked once however many checks
    need it (``up`` serves the build and the targets check)."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client
        self._answers: dict[str, list[Sample]] = {}
        self._alerts: list[Alert] | None = None

    def query(self, expr: str) -> list[Sample]:
        if expr not in self._answers:
            self._answers[expr] = self.client.query(expr)
        return self._answers[expr]

    def alerts(self) -> list[Alert]:
        if self._alerts is None:
            self._alerts = self.client.alerts()
        return self._alerts


@dataclass
class WindowState:
    """What the loop remembers between polls: the number of targets at the first poll (the
    fleet verification started with; a surge during the rollout must not become the bar)."""

    baseline_targets: int | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _instance(labels: dict[str, str] | object) -> str:
    if isinstance(labels, dict):
        return str(labels.get("instance") or labels.get("pod") or "(no instance label)")
    return "(no instance label)"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _build_text(build: dict[str, str]) -> str:
    return ", ".join(f"{k} `{v}`" for k, v in sorted(build.items())) or "no build labels"


def check_build(plan: VerifyPlan, poll: Poll, state: WindowState) -> Outcome:
    """Every target reports the expected version/revision in its build-info family."""
    if not plan.expected_build or plan.build_family is None:
        return Outcome(
            "skipped",
            "the contract names no build (no `*_build_info` with version or revision)",
        )
    query = plan.select(plan.build_family)
    targets = {_instance(dict(s.labels)) for s in poll.query(plan.select("up"))}
    seen: dict[str, list[dict[str, str]]] = {}
    for s in poll.query(query):
        build = {k: s.labels.get(k, "") for k in plan.expected_build}
        seen.setdefault(_instance(dict(s.labels)), []).append(build)
    expected = dict(plan.expected_build)
    right, details, findings = 0, [], []
    for inst in sorted(targets | set(seen)):
        builds = seen.get(inst, [])
        wrong = [b for b in builds if b != expected]
        if builds and not wrong:
            right += 1
            continue
        what = (
            f"reports {' and '.join(_build_text(b) for b in wrong)}"
            if builds
            else f"reports no `{plan.build_family}`"
        )
        details.append(f"{inst}: {what}")
        findings.append(
            Finding(
                BUILD_MISMATCH,
                inst,
                f"`{inst}` {what} (expected {_build_text(expected)}).",
                {"instance": inst, "expected": expected, "reported": builds, "query": query},
            )
        )
    total = len(targets | set(seen))
    want = _build_text(expected)
    if total == 0:
        finding = Finding(
            BUILD_MISMATCH,
            plan.selector,
            f"No instance of `{plan.selector}` reports `{plan.build_family}` (expected {want}).",
            {"expected": expected, "reported": [], "query": query},
        )
        return Outcome("failing", "no instance reports a build", query, 0.0, (), (finding,))
    summary = f"{right} of {total} instances report {want}"
    status = "ok" if right == total else "failing"
    return Outcome(status, summary, query, float(right), tuple(details), tuple(findings))


def check_targets(plan: VerifyPlan, poll: Poll, state: WindowState) -> Outcome:
    """The selector's targets are up, and there are no fewer than at the first poll."""
    query = plan.select("up")
    samples = poll.query(query)
    count = len(samples)
    if state.baseline_targets is None:
        state.baseline_targets = count
    baseline = max(state.baseline_targets, 1)
    down = sorted(_instance(dict(s.labels)) for s in samples if s.value != 1)
    findings = [
        Finding(
            TARGET_DOWN,
            inst,
            f"Target `{inst}` of `{plan.selector}` is down (`up` is 0).",
            {"instance": inst, "query": query},
        )
        for inst in down
    ]
    details = [f"{inst}: down" for inst in down]
    if count < baseline:
        message = (
            f"`{plan.selector}` matches no target in Prometheus."
            if count == 0
            else f"`{plan.selector}` has {count} targets, {baseline} at the start of the window."
        )
        details.append(message.rstrip("."))
        findings.append(
            Finding(
                TARGETS_DROPPED,
                plan.selector,
                message,
                {"targets": count, "at_start": state.baseline_targets, "query": query},
            )
        )
    summary = f"{count - len(down)} of {count} targets up"
    if state.baseline_targets and count != state.baseline_targets:
        summary += f" ({state.baseline_targets} at the start)"
    status = "failing" if findings else "ok"
    return Outcome(
        status, summary, query, float(count - len(down)), tuple(details), tuple(findings)
    )


def check_series(plan: VerifyPlan, poll: Poll, state: WindowState) -> Outcome:
    """Each family consumers need has series again, with the label keys they need."""
    if plan.families is None:
        return Outcome(
            "skipped",
            "no consumers given: no family to look for (--consumers PATH or --all-families)",
        )
    if not plan.families:
        return Outcome("skipped", "the consumers read no family of the contract")
    details, findings, back = [], [], 0
    template = ""
    for need in plan.families:
        names = "|".join(need.series)
        by = ", ".join(need.labels)
        query = f'count by ({by}) ({{__name__=~"{names}", {plan.inner}}})'
        template = template or query
        samples = poll.query(query)
        evidence = {
            "family": need.family,
            "query": query,
            "labels": list(need.labels),
        }
        if not samples:
            details.append(f"{need.family}: no series")
            findings.append(
                Finding(
                    SERIES_MISSING,
                    need.family,
                    f"`{need.family}` has no series for `{plan.selector}`.",
                    evidence,
                    need.consumers,
                )
            )
            continue
        missing = [lb for lb in need.labels if not any(s.labels.get(lb) for s in samples)]
        for label in missing:
            details.append(f"{need.family}: no series with `{label}`")
            findings.append(
                Finding(
                    SERIES_MISSING,
                    f"{need.family}{{{label}}}",
                    f"`{need.family}` has series but none with the label `{label}`.",
                    {**evidence, "label": label},
                    need.consumers,
                )
            )
        if not missing:
            back += 1
    total = len(plan.families)
    summary = f"{back} of {total} families back with the labels consumers need"
    status = "ok" if back == total else "failing"
    return Outcome(status, summary, template, float(back), tuple(details), tuple(findings))


def check_error_rate(plan: VerifyPlan, poll: Poll, state: WindowState) -> Outcome:
    """The error-rate expression is at most ``max_error_rate`` (every series of its result)."""
    if plan.error_rate is None:
        return Outcome("skipped", plan.error_rate_missing)
    query = plan.error_rate
    values = [(s, s.value) for s in poll.query(query) if not math.isnan(s.value)]
    limit = plan.max_error_rate
    if not values:
        # An empty answer is not a low error rate: no request was counted in the range yet (a
        # target scraped once has no rate), or the expression matches nothing. Say so rather
        # than "ok": the report must not claim a rate nobody measured.
        return Outcome(
            "skipped",
            "no data: the query returned no value (no requests in its range yet, or it "
            "matches no series); the error rate was not judged",
            query,
        )
    worst = max(v for _, v in values)
    over = [(s, v) for s, v in values if v > limit]
    details = tuple(
        f"{_labels_text(dict(s.labels))}: {_fmt(v)}" for s, v in sorted(over, key=lambda x: -x[1])
    )
    if not over:
        return Outcome("ok", f"{_fmt(worst)} ≤ {_fmt(limit)}", query, worst)
    finding = Finding(
        ERROR_RATE_HIGH,
        plan.selector,
        f"The error rate of `{plan.selector}` is {_fmt(worst)}, over the limit {_fmt(limit)}.",
        {"query": query, "value": worst, "limit": limit, "series": list(details)},
    )
    return Outcome("failing", f"{_fmt(worst)} > {_fmt(limit)}", query, worst, details, (finding,))


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def check_alerts(plan: VerifyPlan, poll: Poll, state: WindowState) -> Outcome:
    """No alert whose labels match the selector is firing."""
    query = f"GET /api/v1/alerts, labels matching {plan.selector}"
    mine = [a for a in poll.alerts() if matches(a.labels, plan.matchers)]
    firing = [a for a in mine if a.state == "firing"]
    pending = sorted({a.name for a in mine if a.state == "pending"})
    by_name: dict[str, list[Alert]] = {}
    for a in firing:
        by_name.setdefault(a.name, []).append(a)
    findings = []
    details = []
    for name, alerts in sorted(by_name.items()):
        since = min(a.active_at for a in alerts)
        details.append(f"{name}: firing since {since} ({len(alerts)} alert(s))")
        findings.append(
            Finding(
                ALERT_FIRING,
                name,
                f"Alert `{name}` is firing for `{plan.selector}` (active since {since}).",
                {
                    "alerts": [{"labels": dict(a.labels), "value": a.value} for a in alerts],
                    "query": query,
                },
            )
        )
    details += [f"{name}: pending" for name in pending]
    if findings:
        summary = f"{len(by_name)} alert(s) firing: {', '.join(sorted(by_name))}"
        return Outcome(
            "failing", summary, query, float(len(firing)), tuple(details), tuple(findings)
        )
    summary = "no alert firing" + (f" ({len(pending)} pending)" if pending else "")
    return Outcome("ok", summary, query, 0.0, tuple(details))


CheckFunction = Callable[[VerifyPlan, Poll, WindowState], Outcome]

#: The checks by name (:data:`compatcheck.verify.section.CHECK_NAMES` is their order).
CHECKS: dict[str, CheckFunction] = {
    "build": check_build,
    "targets": check_targets,
    "series": check_series,
    "error-rate": check_error_rate,
    "alerts": check_alerts,
}
