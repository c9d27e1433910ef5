"""Judge every consumer against the release a transition moves to.

``before`` is what runs now, ``after`` is the target (in a rollback: NEW and OLD). Only the
*difference* between them can break a consumer, so a selector is judged like this:

* its metric is in ``after`` → present (even if ``before`` lacks it: a consumer written for the
  target works again after the rollback);
* not in ``after`` but written by a loaded recording rule → as good as that rule (chains are
  followed, cycles cut; a bridge rule file loaded as a consumer therefore counts as a fix);
* in ``before`` only → gone: ``consumers/query-broken``;
* in neither → another exporter's metric (``up``, ``node_*``): not this service's business.

A label the expression needs (a matcher, ``by``, ``on``, ``group_left``, a ``label_replace``
source, an alert's ``$labels.x``) is missing when ``before``'s family has it and ``after``'s does
not; labels in neither are target labels (``job``, ``instance``) added at scrape time.

What a missing operand *does* depends on the operator, and the finding says so in
``evidence["effect"]``:

``blank``      the query returns nothing (an alert can no longer fire, a panel is empty);
``fires``      under ``absent()``/``absent_over_time()``: the detector fires after the transition.
               Reported as query-broken because it pages someone for a metric that was renamed
               or removed on purpose; the SRE should know before rolling back;
``unfiltered`` on the right of ``unless``: the filter stops filtering, so the query returns (and an
               alert fires for) everything the filter used to exclude;
``masked``     rescued only by a constant (``x or vector(0)``, ``or on() vector(0)``): the query
               never goes blank but silently reads the constant. Still broken, and worse than
               blank: an alert on it can never fire and the panel looks healthy;
``mislabeled`` a grouping/joining label is gone: series collapse into one group or stop matching.

``a or b`` where one side is blank but the other side still selects data is *not* broken: that
is the ``new or old`` form of a hand-written bridge, and it works.

Buckets: a ``le`` matcher whose bound ``after`` lacks selects nothing, so it is
``consumers/query-broken`` (effect ``blank``, the bound in ``missing_bucket``); a ``le`` regex that
matches other bounds (``changed``), or ``histogram_quantile``/``by (le)`` over a family whose
bounds differ (``estimate``) give ``consumers/bucket-dependent``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from compatcheck.checks.consumers import BUCKET_DEPENDENT, QUERY_BROKEN
from compatcheck.checks.metrics import (
    BUCKETS_CHANGED,
    FAMILY_REMOVED,
    LABEL_REMOVED,
    RENAMED,
    TYPE_CHANGED,
)
from compatcheck.consumers.bridge import (
    family_renames,
    label_renames,
    rewrite_query,
    series_names,
    series_renames,
)
from compatcheck.consumers.collector import gc_paused
from compatcheck.consumers.load import ConsumerSet, Expression
from compatcheck.consumers.promql import REASON_MATCHER, VAR_PREFIX, Node, Selector, matches_empty
from compatcheck.model import (
    Consumer,
    Finding,
    MetricFamily,
    MetricsSchema,
    format_bound,
    parse_bound,
    sort_findings,
)

_HISTOGRAMS = ("histogram", "gaugehistogram")
# A missing label needed for these reasons empties the result (a matcher selects nothing, a
# label_values() variable lists nothing); for the others the series merely lose a grouping.
_EMPTYING = frozenset({REASON_MATCHER, "label_values"})
_PHRASE = {
    "blank": "returns no data",
    "fires": "fires",
    "unfiltered": "stops filtering",
    "masked": "silently reads its fallback constant",
    "mislabeled": "loses a label it groups or joins on",
}
# metrics/* kinds and which consumer problems they explain
_FAMILY_KINDS = frozenset({FAMILY_REMOVED, RENAMED, TYPE_CHANGED})
_LABEL_KINDS = frozenset({LABEL_REMOVED})
_BUCKET_KINDS = frozenset({BUCKETS_CHANGED})


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason one expression misbehaves after the transition."""

    kind: str
    effect: str
    family: str  # the family's name in ``before``
    metric: str  # the sample name selected
    selector: str
    label: str | None = None
    reason: str | None = None
    renamed_to: str | None = None
    label_renamed_to: str | None = None
    chain: tuple[str, ...] = ()
    #: Labels the query needs that the renamed family of ``after`` does not have: no bridge and
    #: no rewrite can bring them back.
    lost_labels: tuple[str, ...] = ()
    lost_by_matcher: bool = False
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    #: The ``le`` bound an exact matcher selects and the target lacks.
    bound: str | None = None


@dataclass(frozen=True, slots=True)
class _Result:
    blank: bool
    data: bool  # selects series that exist after the transition (can rescue an ``or``)
    problems: tuple[Problem, ...] = ()


_OK = _Result(False, True)


class _Index:
    """Sample name → family, for one schema."""

    def __init__(self, schema: MetricsSchema) -> None:
        self.series: dict[str, MetricFamily] = {}
        for fam in schema.families.values():
            for name in series_names(fam):
                self.series.setdefault(name, fam)


def _spellings(bound: float) -> set[str]:
    # Trap: le="1" and le="1.0" are the same bound; clients print either, so a regex written
    # against one spelling must be tried against both.
    return {format_bound(bound), repr(bound) if bound == bound else "NaN"}


class _Judge:
    def __init__(
        self,
        consumers: ConsumerSet,
        before: MetricsSchema,
        after: MetricsSchema,
        renames: dict[str, str],
        label_map: dict[tuple[str, str], str],
    ) -> None:
        self.before = _Index(before)
        self.after = _Index(after)
        self.renames = renames
        self.label_map = label_map
        self.records: dict[str, list[Expression]] = {}
        for e in consumers.expressions:
            if e.record is not None and e.node is not None:
                self.records.setdefault(e.record, []).append(e)
        self.record_memo: dict[str, _Result] = {}
        self.visiting: set[str] = set()
        #: By (text, needs): the text determines name and matchers (it is promql-parser's
        #: rendering of them), and both hash cheaply (a str and a frozenset cache their hash;
        #: a dataclass recomputes its hash over every field at each lookup).
        self.selector_memo: dict[tuple[str, frozenset[tuple[str, str]]], _Result] = {}

    # -- tree ----------------------------------------------------------------------------------

    def eval(self, node: Node) -> _Result:
        if isinstance(node, Selector):
            key = (node.text, node.needs)
            cached = self.selector_memo.get(key)
            if cached is None:
                cached = self.selector(node)
                self.selector_memo[key] = cached
            return cached
        results = [self.eval(c) for c in node.children]
        if node.kind == "absent":
            problems = tuple(
                replace(p, effect="fires") if p.effect == "blank" else p
                for r in results
                for p in r.problems
            )
            return _Result(False, True, problems)
        if node.kind == "unless":
            lhs, rhs = results
            unfiltered = tuple(replace(p, effect="unfiltered") for p in rhs.problems)
            return _Result(lhs.blank, lhs.data, lhs.problems + unfiltered)
        if node.kind == "or":
            lhs, rhs = results
            if lhs.blank and rhs.blank:
                return _Result(True, False, lhs.problems + rhs.problems)
            if lhs.blank or rhs.blank:
                gone, kept = (lhs, rhs) if lhs.blank else (rhs, lhs)
                if kept.data:  # the other side still has data: a working fallback
                    return _Result(False, True, kept.problems)
                masked = tuple(
                    replace(p, effect="masked") if p.effect == "blank" else p for p in gone.problems
                )
                return _Result(False, False, masked + kept.problems)
            return _Result(False, lhs.data or rhs.data, lhs.problems + rhs.problems)
        problems = tuple(p for r in results for p in r.problems)
        return _Result(any(r.blank for r in results), any(r.data for r in results), problems)

    # -- selectors -----------------------------------------------------------------------------

    def selector(self, sel: Selector) -> _Result:
        name = sel.name
        if name is None:
            return self.regex_selector(sel) if sel.name_regex is not None else _OK
        if VAR_PREFIX in name:
            return _OK
        fa = self.after.series.get(name)
        if fa is None:
            if name in self.records:
                return self.record(name)
            fb = self.before.series.get(name)
            if fb is None:
                return _OK
            renamed_to = self.renames.get(name)
            lost: list[str] = []
            by_matcher = False
            target = self.after.series.get(renamed_to) if renamed_to else None
            if target is not None:
                for label, reason in sorted(self.needed(sel).items()):
                    if label in fb.labels and label not in target.labels:
                        lost.append(label)
                        by_matcher = by_matcher or reason in _EMPTYING
            problem = Problem(
                QUERY_BROKEN, "blank", fb.name, name, sel.text, renamed_to=renamed_to,
                lost_labels=tuple(lost), lost_by_matcher=by_matcher,
            )  # fmt: skip
            return _Result(True, False, (problem,))
        fb = self.before.series.get(name)
        if fb is None:
            return _OK
        needs = self.needed(sel)
        problems: list[Problem] = []
        blank = False
        for label, reason in sorted(needs.items()):
            if label in ("le", "quantile") or VAR_PREFIX in label:
                continue
            if label in fb.labels and label not in fa.labels:
                effect = "blank" if reason in _EMPTYING else "mislabeled"
                blank = blank or effect == "blank"
                problems.append(
                    Problem(
                        QUERY_BROKEN, effect, fb.name, name, sel.text, label=label, reason=reason,
                        label_renamed_to=self.label_map.get((fb.name, label)),
                    )
                )  # fmt: skip
        bucket = self.buckets(sel, name, fb, fa)
        if bucket is not None:
            problems.append(bucket)
            blank = blank or bucket.effect == "blank"
        return _Result(blank, not blank, tuple(problems))

    @staticmethod
    def needed(sel: Selector) -> dict[str, str]:
        """label → why, for every label the selector's series must carry (matchers first)."""
        needs: dict[str, str] = {}
        for m in sel.matchers:
            if not matches_empty(m.op, m.value):
                needs[m.label] = REASON_MATCHER
        for label, reason in sorted(sel.needs):
            needs.setdefault(label, reason)
        return needs

    def buckets(
        self, sel: Selector, name: str, fb: MetricFamily, fa: MetricFamily
    ) -> Problem | None:
        if fb.type not in _HISTOGRAMS or name != f"{fb.name}_bucket":
            return None
        b_set, a_set = set(fb.buckets), set(fa.buckets)
        if not b_set or not a_set or b_set == a_set:
            return None
        removed = tuple(format_bound(b) for b in fb.buckets if b not in a_set)
        added = tuple(format_bound(b) for b in fa.buckets if b not in b_set)

        def problem(effect: str) -> Problem:
            return Problem(
                BUCKET_DEPENDENT, effect, fb.name, name, sel.text, label="le",
                removed=removed, added=added,
            )  # fmt: skip

        for m in sel.matchers:
            if m.label != "le" or VAR_PREFIX in m.value:
                continue
            if m.op == "=":
                try:
                    bound = parse_bound(m.value)
                except ValueError:
                    continue
                if bound in b_set and bound not in a_set:
                    # The selector matches no series at all: broken, not merely dependent.
                    return Problem(
                        QUERY_BROKEN, "blank", fb.name, name, sel.text, label="le",
                        removed=removed, added=added, bound=format_bound(bound),
                    )  # fmt: skip
            elif m.op == "=~":
                try:
                    rx = re.compile(m.value)
                except re.error:
                    continue
                hit_b = {b for b in b_set if any(rx.fullmatch(s) for s in _spellings(b))}
                hit_a = {b for b in a_set if any(rx.fullmatch(s) for s in _spellings(b))}
                if hit_b != hit_a:
                    return problem("changed")
        if any(label == "le" for label, _ in sel.needs):  # histogram_quantile, by (le)
            return problem("estimate")
        return None

    def regex_selector(self, sel: Selector) -> _Result:
        """``{__name__=~"..."}``: broken only when it matched something and now matches nothing."""
        assert sel.name_regex is not None
        try:
            rx = re.compile(sel.name_regex)
        except re.error:
            return _OK
        hits = [n for n in self.before.series if rx.fullmatch(n)]
        if not hits:
            return _OK
        if any(rx.fullmatch(n) for n in self.after.series):
            return _OK
        if any(rx.fullmatch(r) and not self.record(r).blank for r in self.records):
            return _OK
        fams = dict.fromkeys(self.before.series[n].name for n in hits)
        problems = tuple(
            Problem(QUERY_BROKEN, "blank", fam, n, sel.text, renamed_to=self.renames.get(n))
            for fam, n in zip(fams, hits, strict=False)
        )
        return _Result(True, False, problems)

    def record(self, name: str) -> _Result:
        """A recorded series is as good as every rule that writes it; the chain is kept."""
        cached = self.record_memo.get(name)
        if cached is not None:
            return cached
        if name in self.visiting:
            return _OK  # a cycle: Prometheus itself would produce nothing new; do not loop
        self.visiting.add(name)
        blank, data = False, False
        problems: list[Problem] = []
        for d in self.records[name]:
            assert d.node is not None
            r = self.eval(d.node)
            blank = blank or r.blank
            data = data or r.data
            problems.extend(replace(p, chain=(d.subject, *p.chain)) for p in r.problems)
        self.visiting.discard(name)
        result = _Result(blank, data or not blank, tuple(problems))
        self.record_memo[name] = result
        return result


# ---------------------------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """What the consumers make of a transition: two lists, for the two checks that report them."""

    #: The metric findings, each with the consumers it breaks attached.
    metrics: list[Finding]
    #: ``consumers/*`` findings (parse errors from loading included), sorted.
    consumers: list[Finding]


def check_consumers(
    consumers: ConsumerSet,
    before: MetricsSchema,
    after: MetricsSchema,
    metric_findings: Sequence[Finding],
) -> list[Finding]:
    """``metric_findings`` with the consumers each one breaks, plus the consumers/* findings."""
    judged = judge_consumers(consumers, before, after, metric_findings)
    return judged.metrics + judged.consumers


def judge_consumers(
    consumers: ConsumerSet,
    before: MetricsSchema,
    after: MetricsSchema,
    metric_findings: Sequence[Finding],
) -> Judgement:
    """The consumers each metric finding breaks, and the consumers/* findings.

    The schemas are the source of truth for what breaks; ``metric_findings`` only contribute the
    renames (for the rewrite and the bridge) and receive the consumers they explain. Parse errors
    from loading are included, so the caller adds nothing else.
    """
    with gc_paused():
        return _judge_all(consumers, before, after, metric_findings)


def _judge_all(
    consumers: ConsumerSet,
    before: MetricsSchema,
    after: MetricsSchema,
    metric_findings: Sequence[Finding],
) -> Judgement:
    renames_f = family_renames(metric_findings, before, after)
    renames = series_renames(renames_f, before, after)
    label_map = {(f, b): a for f, b, a in label_renames(before, after)}
    judge = _Judge(consumers, before, after, renames, label_map)

    per_subject: dict[str, list[tuple[Expression, Problem]]] = {}
    node_memo: dict[int, _Result] = {}
    seen: set[tuple[str, str, Problem]] = set()
    for e in consumers.expressions:
        if e.node is None:
            continue
        r = node_memo.get(id(e.node))
        if r is None:
            r = judge.eval(e.node)
            node_memo[id(e.node)] = r
        if not r.problems:
            continue
        for p in sorted(r.problems, key=_chain_length):  # direct causes first
            if e.subject in p.chain:
                continue  # a record cycle leading back to this very consumer
            if (e.subject, e.text, p) not in seen:
                seen.add((e.subject, e.text, p))
                per_subject.setdefault(e.subject, []).append((e, p))

    new: list[Finding] = []
    for subject, items in per_subject.items():
        for kind in (QUERY_BROKEN, BUCKET_DEPENDENT):
            chosen = [(e, p) for e, p in items if p.kind == kind]
            if chosen:
                new.append(_finding(kind, subject, chosen, renames))

    # Each metric finding looks only at the problems of its own family (an index, not a scan of
    # every consumer's problems per finding: 1,000 rules x 100 findings would be 10^5 checks).
    by_family: dict[str, dict[str, list[Problem]]] = {}
    for subject, items in per_subject.items():
        for _, p in items:
            by_family.setdefault(p.family, {}).setdefault(subject, []).append(p)
    enriched = [_attach(f, by_family, consumers) for f in metric_findings]
    return Judgement(enriched, sort_findings([*consumers.findings, *new]))


def _chain_length(p: Problem) -> int:
    return len(p.chain)


def _attach(
    finding: Finding,
    by_family: dict[str, dict[str, list[Problem]]],
    consumers: ConsumerSet,
) -> Finding:
    kind = finding.kind
    if not kind.startswith("metrics/"):
        return finding
    family = str(finding.evidence.get("family") or finding.subject)
    label = finding.evidence.get("label")

    def explains(p: Problem) -> bool:
        if p.family != family:
            return False
        if kind in _FAMILY_KINDS:
            return p.kind == QUERY_BROKEN and p.label is None
        if kind in _LABEL_KINDS:
            return p.kind == QUERY_BROKEN and (p.label == label or label in p.lost_labels)
        if kind in _BUCKET_KINDS:
            return p.kind == BUCKET_DEPENDENT or p.bound is not None
        return False

    subjects = by_family.get(family, {})
    hit = sorted(s for s, problems in subjects.items() if any(explains(p) for p in problems))
    if not hit:
        return finding
    seen = set(finding.consumers)
    extra = tuple(c for c in (consumers.consumers[s] for s in hit) if c not in seen)
    return replace(finding, consumers=finding.consumers + extra)


def _display(subject: str) -> str:
    kind, _, rest = subject.partition(":")
    return f"{kind} `{rest}`"


def _problem_json(e: Expression, p: Problem, renames: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "expr": e.text,
        "line": e.line,
        "where": e.where,
        "selector": p.selector,
        "family": p.family,
        "effect": p.effect,
    }
    if p.kind == BUCKET_DEPENDENT or p.bound is not None:
        if p.bound is not None:
            out["missing_bucket"] = p.bound
        out["removed"] = list(p.removed)
        out["added"] = list(p.added)
    elif p.label is not None:
        out["missing_label"] = p.label
        out["needed_by"] = p.reason
        if p.label_renamed_to is not None:
            out["label_renamed_to"] = p.label_renamed_to
    else:
        out["missing_metric"] = p.metric
        if p.renamed_to is not None:
            out["renamed_to"] = p.renamed_to
        if p.lost_labels:
            out["unrecoverable_labels"] = list(p.lost_labels)
    if p.chain:
        out["chain"] = list(p.chain)
    if (
        p.kind == QUERY_BROKEN
        and p.renamed_to is not None
        and not p.chain
        and not p.lost_by_matcher
    ):
        grafana = e.consumer.type not in ("alert", "record")
        rewrite = rewrite_query(e.text, renames, grafana, vector=e.vector)
        if rewrite is not None:
            out["rewrite"] = rewrite
    return out


def _finding(
    kind: str, subject: str, items: list[tuple[Expression, Problem]], renames: dict[str, str]
) -> Finding:
    e, p = items[0]
    consumer: Consumer = e.consumer
    problems = [_problem_json(x, y, renames) for x, y in items]
    first = problems[0]
    evidence: dict[str, Any] = {"consumer": consumer.to_json()}
    evidence.update({k: v for k, v in first.items() if k not in ("selector", "where")})
    evidence["problems"] = problems
    via = f" via `{'` → `'.join(s.partition(':')[2] for s in p.chain)}`" if p.chain else ""
    distinct = {(y.metric, y.label, y.effect) for _, y in items}
    more = f" (and {len(distinct) - 1} more)" if len(distinct) > 1 else ""
    who = _display(subject)
    if kind == BUCKET_DEPENDENT:
        fam_bounds = f"removed `{', '.join(p.removed) or '-'}`, added `{', '.join(p.added) or '-'}`"
        message = (
            f"{who} depends on the bucket bounds of `{p.family}`, which change{via}: "
            f"{fam_bounds}{more}."
        )
    elif p.bound is not None:
        message = (
            f'{who} {_PHRASE[p.effect]}: `{p.metric}` has no bucket `le="{p.bound}"` in the '
            f"target (removed `{', '.join(p.removed)}`, added `{', '.join(p.added) or '-'}`)"
            f"{via}{more}."
        )
    elif p.label is not None:
        renamed = f" (renamed → `{p.label_renamed_to}`)" if p.label_renamed_to else ""
        message = (
            f"{who} {_PHRASE[p.effect]}: `{p.family}` has no label `{p.label}`{renamed} "
            f"in the target (needed by `{p.reason}`){via}{more}."
        )
    else:
        renamed = f" (renamed → `{p.renamed_to}`)" if p.renamed_to else ""
        if p.lost_labels:
            renamed += f", which has no `{'`, `'.join(p.lost_labels)}`"
        message = f"{who} {_PHRASE[p.effect]}: the target has no `{p.metric}`{renamed}{via}{more}."
    return Finding(kind, subject, message, evidence, consumers=(consumer,))
