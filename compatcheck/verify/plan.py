"""What to verify, worked out once from the contract before the first poll: the selector's
matchers, the build to expect, the families (and label keys) consumers need, the error-rate
expression. Pure: no Prometheus is asked here, so every mistake in the arguments is an exit 2
before anything waits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compatcheck.checks.build import build_info_families, names_a_build
from compatcheck.consumers.bridge import series_names
from compatcheck.consumers.promql import (
    VAR_PREFIX,
    PromQLError,
    Selector,
    matches_empty,
    parse_expression,
    selectors,
)
from compatcheck.errors import UsageError
from compatcheck.model import Consumer, MetricFamily, MetricsSchema
from compatcheck.snapshot import Snapshot

if TYPE_CHECKING:
    from compatcheck.consumers import ConsumerSet

Matcher = tuple[str, str, str]  # (label, op, value)

#: Labels on an HTTP request counter that carry the status code, by convention.
_STATUS_LABELS = ("status", "code", "status_code", "http_status", "http_status_code")


@dataclass(frozen=True)
class FamilyNeed:
    """A family of the contract that must have series again, and the label keys it needs."""

    family: str
    series: tuple[str, ...]
    labels: tuple[str, ...] = ()
    consumers: tuple[Consumer, ...] = ()


@dataclass(frozen=True)
class VerifyPlan:
    selector: str
    matchers: tuple[Matcher, ...]
    expected_build: Mapping[str, str] = field(default_factory=dict)
    build_family: str | None = None
    #: None: nothing says which families matter (no ``--consumers``, no ``--all-families``).
    families: tuple[FamilyNeed, ...] | None = None
    error_rate: str | None = None
    #: Why there is no error-rate expression, when there is none.
    error_rate_missing: str = ""
    max_error_rate: float = 0.015

    @property
    def inner(self) -> str:
        """The selector's matchers as written, without braces, to splice into queries."""
        return inner_matchers(self.selector)

    def select(self, name: str, *extra: str) -> str:
        """``name{<selector's matchers>, <extra>}``."""
        return f"{name}{{{', '.join([self.inner, *extra])}}}"


def job_of(selector: str) -> str | None:
    """The ``job="..."`` of a selector (the usual service name), None without one."""
    m = re.search(r'\bjob\s*=\s*"([^"]+)"', selector)
    return m.group(1) if m else None


def inner_matchers(selector: str) -> str:
    text = selector.strip()
    return text[1:-1].strip().rstrip(",").strip()


def parse_selector(selector: str) -> tuple[Matcher, ...]:
    """``{job="shop"}`` → its matchers; exit 2 for anything else (a metric name included:
    the selector names targets, and verification picks the metrics itself)."""
    text = selector.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise UsageError(
            f"--selector {selector!r}: expected label matchers like '{{job=\"shop\"}}'"
        )
    try:
        node = parse_expression(text)
    except PromQLError as exc:
        raise UsageError(f"--selector {selector!r}: {exc}") from None
    if not isinstance(node, Selector) or node.name or node.name_regex:
        raise UsageError(f"--selector {selector!r}: expected label matchers only")
    return tuple((m.label, m.op, m.value) for m in node.matchers)


def check_expression(expr: str, flag: str) -> str:
    try:
        parse_expression(expr)
    except PromQLError as exc:
        raise UsageError(f"{flag} {expr!r}: not PromQL: {exc}") from None
    return expr


def request_counter(metrics: MetricsSchema | None) -> tuple[MetricFamily, str] | None:
    """The contract's HTTP request counter and its status label, for the default error rate.

    A counter whose name speaks of requests and that carries a status label; the service's own
    (``shop_http_requests_total``) before a library's, shortest name first.
    """
    if metrics is None:
        return None
    found = []
    for fam in metrics.families.values():
        if fam.type != "counter" or "request" not in fam.name:
            continue
        label = next((lb for lb in _STATUS_LABELS if lb in fam.labels), None)
        if label is not None:
            found.append((("http" not in fam.name, len(fam.name), fam.name), fam, label))
    if not found:
        return None
    _, fam, label = min(found, key=lambda x: x[0])
    return fam, label


def default_error_rate(
    plan_selector: str, metrics: MetricsSchema | None, window: str
) -> str | None:
    """``(sum(rate(F{sel, status=~"5.."}[R])) or vector(0)) / sum(rate(F{sel}[R]))`` from the
    contract. ``or vector(0)``: a service that never failed a request has no 5xx series at all,
    and without it the ratio would be empty (no data) exactly when the rate is zero; requests
    counted make it a number, no request at all keeps it empty (the denominator)."""
    found = request_counter(metrics)
    if found is None:
        return None
    fam, label = found
    inner = inner_matchers(plan_selector)
    errors = f'{fam.name}{{{inner}, {label}=~"5.."}}'
    every = f"{fam.name}{{{inner}}}"
    return f"(sum(rate({errors}[{window}])) or vector(0)) / sum(rate({every}[{window}]))"


def _needed_labels(sel: Selector) -> set[str]:
    """Label keys a selector's series must carry: its non-empty matchers and what the
    expression around it reads (``by``, ``on``, ``le`` under ``histogram_quantile``...)."""
    out = {m.label for m in sel.matchers if not matches_empty(m.op, m.value)}
    out |= {label for label, _reason in sel.needs}
    return {lb for lb in out if lb != "__name__" and VAR_PREFIX not in lb}


def family_needs(
    metrics: MetricsSchema, consumers: ConsumerSet | None, *, all_families: bool
) -> tuple[FamilyNeed, ...] | None:
    """The families whose series must be back: every family (``all_families``), or those a
    consumer selects, each with the label keys consumers need that the contract's family has
    (a label the contract itself lacks is a pre-rollback finding, not a verification one)."""
    index: dict[str, MetricFamily] = {}
    for fam in metrics.families.values():
        for name in series_names(fam):
            index.setdefault(name, fam)
    labels: dict[str, set[str]] = {}
    users: dict[str, dict[str, Consumer]] = {}
    for expr in consumers.expressions if consumers is not None else ():
        if expr.node is None:
            continue
        for sel in selectors(expr.node):
            used = index.get(sel.name or "")
            if used is None:
                continue
            keep = set(used.labels) | {"le", "quantile"}
            labels.setdefault(used.name, set()).update(_needed_labels(sel) & keep)
            users.setdefault(used.name, {})[expr.subject] = expr.consumer
    if all_families:
        for name in metrics.families:
            labels.setdefault(name, set())
    elif consumers is None:
        return None
    out = []
    for name in sorted(labels):
        fam = metrics.families[name]
        if not fam.has_samples and name not in users:
            continue  # metadata only in the contract: no series to come back
        out.append(
            FamilyNeed(
                family=name,
                series=series_names(fam),
                labels=tuple(sorted(labels[name])),
                consumers=tuple(users.get(name, {}).values()),
            )
        )
    return tuple(out)


def expected_build(
    expect: Snapshot, *, service: str, family: str | None
) -> tuple[dict[str, str], str | None]:
    """The ``version``/``revision`` the contract reports, and the family that carries them."""
    build = {k: v for k, v in expect.build.items() if k in ("version", "revision") and v}
    if expect.metrics is None:
        return build, family
    candidates = build_info_families(expect.metrics, service=service, family=family)
    named = [n for n in candidates if names_a_build(expect.metrics.families[n])]
    return build, (named[0] if named else family)
