"""Metrics checks: what a transition takes away from dashboards, alerts and recording rules.

Pure functions over two :class:`~compatcheck.model.MetricsSchema` values, ``before`` (what runs now)
and ``after`` (what the transition moves to). In a rollback ``before`` is NEW and ``after`` is OLD,
so "removed" means "NEW has it and OLD does not": exactly what breaks consumers written against NEW.

Every finding's evidence carries ``family`` (the family's name in ``before``, the name consumers use
today); the consumers layer relies on it to attach alerts and panels to findings.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compatcheck.checks.build import names_a_build
from compatcheck.model import Finding, MetricFamily, MetricsSchema, format_bound
from compatcheck.rules import CheckContext, check

if TYPE_CHECKING:
    from compatcheck.consumers.judge import Judgement

#: The kinds :func:`metrics_changes` owns: what the two metrics schemas say about the transition.
FAMILY_REMOVED = "metrics/family-removed"
FAMILY_ADDED = "metrics/family-added"
TYPE_CHANGED = "metrics/type-changed"
UNIT_CHANGED = "metrics/unit-changed"
HELP_CHANGED = "metrics/help-changed"
LABEL_REMOVED = "metrics/label-removed"
LABEL_ADDED = "metrics/label-added"
LABEL_VALUES_CHANGED = "metrics/label-values-changed"
BUCKETS_CHANGED = "metrics/buckets-changed"
QUANTILES_CHANGED = "metrics/quantiles-changed"
RENAMED = "metrics/renamed"
BUILD_INFO_MISSING = "metrics/build-info-missing"

#: Suffixes that carry a unit or a sample kind; a rename that only swaps one of these (``_seconds``
#: → ``_milliseconds``, adding ``_total``) is the most common kind of metric rename.
UNIT_SUFFIXES = (
    "total",
    "seconds",
    "milliseconds",
    "microseconds",
    "nanoseconds",
    "ms",
    "bytes",
    "kilobytes",
    "megabytes",
    "ratio",
    "percent",
    "count",
    "info",
    "created",
    "celsius",
    "meters",
    "volts",
    "amperes",
    "joules",
    "grams",
)

#: Minimum character similarity for a rename that is not a suffix or single-token change.
RENAME_SIMILARITY = 0.85

#: Labels that identify a build; their values change with every release.
IDENTITY_LABELS = frozenset(
    {
        "version",
        "revision",
        "commit",
        "branch",
        "goversion",
        "build_date",
        "builddate",
        "build_user",
    }
)


#: Types that differ only by exposition format: the same series, stored alike by Prometheus.
#: An OpenMetrics ``info`` is a 0.0.4 gauge named ``*_info``, a ``stateset`` a gauge with the
#: state label, ``unknown`` is 0.0.4's ``untyped``. A change between these is never a finding.
FORMAT_TYPES = {"info": "gauge", "stateset": "gauge", "unknown": "untyped"}


def stored_type(typ: str) -> str:
    """The type as both formats can say it (see :data:`FORMAT_TYPES`)."""
    return FORMAT_TYPES.get(typ, typ)


def same_stored_type(b: MetricFamily, a: MetricFamily) -> bool:
    """Whether two types differ at most by what the exposition format can say.

    Trap: 0.0.4 has no gauge histogram; a reader knows one only from its ``_gcount``/``_gsum``
    samples, so a 0.0.4 ``histogram`` without samples may well be OpenMetrics' gauge histogram.
    """
    if stored_type(b.type) == stored_type(a.type):
        return True
    if {b.type, a.type} == {"histogram", "gaugehistogram"}:
        return not (b if b.type == "histogram" else a).has_samples
    return False


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[_.:]+", name.lower()) if t]


def _stem(name: str) -> list[str]:
    """Name tokens minus trailing unit suffixes: ``http_request_seconds_total`` → http, request."""
    toks = _tokens(name)
    while len(toks) > 1 and toks[-1] in UNIT_SUFFIXES:
        toks.pop()
    return toks


def _token_edit_distance_at_most_one(a: Sequence[str], b: Sequence[str]) -> bool:
    """True when ``b`` is ``a`` with one token inserted, removed or substituted (or equal)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(list(long_[:i]) + list(long_[i + 1 :]) == list(short) for i in range(len(long_)))


def rename_score(old: str, new: str) -> float:
    """How plausible it is that ``old`` was renamed to ``new``; 0.0 means not a rename.

    Ordered so that the strongest explanation wins when several candidates exist: a pure unit or
    suffix change (1.0) beats a one-token edit (0.9) beats a close spelling (its similarity).
    """
    if old == new:
        return 0.0
    s_old, s_new = _stem(old), _stem(new)
    if s_old == s_new:
        return 1.0
    ratio = difflib.SequenceMatcher(None, old, new).ratio()
    if len(s_old) >= 2 and len(s_new) >= 2 and _token_edit_distance_at_most_one(s_old, s_new):
        return 0.9 + ratio / 100
    if ratio >= RENAME_SIMILARITY:
        return ratio * 0.89
    return 0.0


def _labels_compatible(a: MetricFamily, b: MetricFamily) -> bool:
    """Label keys close enough for a rename: one set contains the other, or most keys overlap."""
    la, lb = set(a.labels), set(b.labels)
    if la <= lb or lb <= la:
        return True
    return len(la & lb) / len(la | lb) >= 0.5


@dataclass(frozen=True)
class RenamePair:
    before: MetricFamily
    after: MetricFamily
    score: float


def detect_renames(
    removed: Iterable[MetricFamily], added: Iterable[MetricFamily]
) -> list[RenamePair]:
    """Pair families only in ``before`` with families only in ``after`` that look like renames.

    Greedy one-to-one matching on the best score, ties broken by name, so the result is
    deterministic and one family is never reported as the rename of two others.
    """
    candidates: list[RenamePair] = []
    added_list = list(added)
    for b in removed:
        for a in added_list:
            if stored_type(a.type) != stored_type(b.type) or not _labels_compatible(a, b):
                continue
            score = rename_score(b.name, a.name)
            if score > 0:
                candidates.append(RenamePair(b, a, score))
    candidates.sort(key=lambda p: (-p.score, p.before.name, p.after.name))
    used_before: set[str] = set()
    used_after: set[str] = set()
    pairs: list[RenamePair] = []
    for p in candidates:
        if p.before.name in used_before or p.after.name in used_after:
            continue
        used_before.add(p.before.name)
        used_after.add(p.after.name)
        pairs.append(p)
    return pairs


def _fmt_list(values: Iterable[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


#: Marker in ``MetricFamily.intermittent`` for a family missing from some scrapes.
NAME = "__name__"


def _is_intermittent(fam: MetricFamily, label: str, value: str | None = None) -> bool:
    """Families, labels or values seen only in some scrapes are noise, not contract.

    ``intermittent`` holds ``__name__`` (the family), ``key`` (a label key) or ``key=value``
    entries, as capture's scrape merge records them.
    """
    if label in fam.intermittent:
        return True
    return value is not None and f"{label}={value}" in fam.intermittent


def compare_family(b: MetricFamily, a: MetricFamily) -> list[Finding]:
    """Findings for one family present on both sides (or a rename pair), by ``before``'s name."""
    name = b.name
    out: list[Finding] = []
    # Type always; unit and help only when both sides declare one (0.0.4 has no UNIT, and a
    # missing HELP is no contract).
    for kind, attr, required in (
        (TYPE_CHANGED, "type", False),
        (UNIT_CHANGED, "unit", True),
        (HELP_CHANGED, "help", True),
    ):
        old, new = getattr(b, attr), getattr(a, attr)
        if old == new or (required and not (old and new)):
            continue
        if attr == "type" and same_stored_type(b, a):
            continue  # only the format differs (OpenMetrics `info` vs a 0.0.4 gauge...)
        shown = (old, new) if attr == "type" else (f"`{old}`", f"`{new}`")
        out.append(
            Finding(
                kind,
                name,
                f"`{name}` changes {attr}: {shown[0]} → {shown[1]}.",
                {"family": name, "before": old, "after": new},
            )
        )
    # Label sets are only known from samples: a family exposed with metadata only (a labelled
    # metric nobody has touched yet) says nothing about its labels.
    if b.has_samples and a.has_samples:
        out.extend(_compare_labels(name, b, a))
    out.extend(_compare_bounds(name, b, a))
    return out


def _compare_labels(name: str, b: MetricFamily, a: MetricFamily) -> list[Finding]:
    out: list[Finding] = []
    lb, la = set(b.labels), set(a.labels)
    # A label one side lacks: lost when only the old release has it, gained when only the new.
    for kind, verb, labels, side in (
        (LABEL_REMOVED, "loses", lb - la, b),
        (LABEL_ADDED, "gains", la - lb, a),
    ):
        out += [
            Finding(
                kind,
                f"{name}{{{label}}}",
                f"`{name}` {verb} label `{label}`.",
                {"family": name, "label": label},
            )
            for label in sorted(labels)
            if not _is_intermittent(side, label)
        ]
    for label in sorted(lb & la):
        if label in b.high_cardinality or label in a.high_cardinality:
            continue
        # Trap: build identity labels (version, revision...) differ between releases by design;
        # nobody selects on them, and a build-info family's values are all identity.
        if label in IDENTITY_LABELS or _is_build_info(b):
            continue
        before, after = b.label_values.get(label, ()), a.label_values.get(label, ())
        if before == after:
            continue
        # Intermittent values are filtered only among the differences: a family with thousands
        # of values compares at C speed (the hook's cold verdict over big snapshots).
        va = set(after)
        gone = sorted(v for v in set(before) - va if not _is_intermittent(b, label, v))
        if not gone:
            continue
        vb = {v for v in before if not _is_intermittent(b, label, v)}
        new = sorted(va - vb)
        out.append(
            Finding(
                LABEL_VALUES_CHANGED,
                f"{name}{{{label}}}",
                f"`{name}{{{label}}}` loses values {_fmt_list(gone)}"
                + (f" (gains {_fmt_list(new)})." if new else "."),
                {"family": name, "label": label, "removed": gone, "added": new},
            )
        )
    return out


def _compare_bounds(name: str, b: MetricFamily, a: MetricFamily) -> list[Finding]:
    out: list[Finding] = []
    for kind, attr, noun in (
        (BUCKETS_CHANGED, "buckets", "buckets"),
        (QUANTILES_CHANGED, "quantiles", "quantiles"),
    ):
        sb: set[float] = set(getattr(b, attr))
        sa: set[float] = set(getattr(a, attr))
        if not sb or not sa or sb == sa:
            continue
        gone = [format_bound(x) for x in sorted(sb - sa)]
        new = [format_bound(x) for x in sorted(sa - sb)]
        parts = []
        if gone:
            parts.append(f"loses {noun} {', '.join(gone)}")
        if new:
            parts.append(f"gains {', '.join(new)}")
        out.append(
            Finding(
                kind,
                name,
                f"`{name}` {' and '.join(parts)}.",
                {
                    "family": name,
                    "removed": gone,
                    "added": new,
                    "before": [format_bound(x) for x in sorted(sb)],
                    "after": [format_bound(x) for x in sorted(sa)],
                },
            )
        )
    return out


def _is_build_info(fam: MetricFamily) -> bool:
    return fam.name.endswith("_build_info") or fam.name == "target_info"


def _has_build_info(schema: MetricsSchema) -> bool:
    """A build-info family that names a version or revision (``go_build_info{version=""}`` does
    not: it proves nothing about which build answered)."""
    return any(_is_build_info(fam) and names_a_build(fam) for fam in schema.families.values())


def check_metrics(
    before: MetricsSchema, after: MetricsSchema, *, rollback: bool = True
) -> list[Finding]:
    """All ``metrics/*`` findings for the transition ``before`` → ``after`` (unsorted).

    ``rollback`` only names the versions in evidence (``old_name``/``new_name``): in a rollback
    ``after`` is OLD, in a deploy it is NEW.
    """
    out: list[Finding] = []
    bf, af = before.families, after.families
    # A family seen in only some of several merged scrapes (``__name__`` intermittent) is noise:
    # its presence is not a contract either way.
    only_b = [bf[n] for n in sorted(bf.keys() - af.keys()) if not _is_intermittent(bf[n], NAME)]
    only_a = [af[n] for n in sorted(af.keys() - bf.keys()) if not _is_intermittent(af[n], NAME)]
    pairs = detect_renames(only_b, only_a)
    renamed_b = {p.before.name for p in pairs}
    renamed_a = {p.after.name for p in pairs}

    for p in pairs:
        out.append(
            Finding(
                RENAMED,
                p.before.name,
                f"`{p.before.name}` is named `{p.after.name}` after the transition.",
                {
                    "family": p.before.name,
                    "renamed_to": p.after.name,
                    "old_name": p.after.name if rollback else p.before.name,
                    "new_name": p.before.name if rollback else p.after.name,
                },
            )
        )
        out.extend(compare_family(p.before, p.after))
    for fam in only_b:
        if fam.name in renamed_b:
            continue
        out.append(
            Finding(
                FAMILY_REMOVED,
                fam.name,
                f"`{fam.name}` ({fam.type}) disappears.",
                {"family": fam.name, "type": fam.type, "labels": list(fam.labels)},
            )
        )
    for fam in only_a:
        if fam.name in renamed_a:
            continue
        out.append(
            Finding(
                FAMILY_ADDED,
                fam.name,
                f"`{fam.name}` ({fam.type}) appears.",
                {"family": fam.name, "type": fam.type, "labels": list(fam.labels)},
            )
        )
    for name in sorted(bf.keys() & af.keys()):
        out.extend(compare_family(bf[name], af[name]))
    if not _has_build_info(before) and not _has_build_info(after):
        out.append(
            Finding(
                BUILD_INFO_MISSING,
                "build_info",
                "Neither version exposes a `*_build_info` or `target_info` family with a "
                "`version` or `revision` value.",
                {},
            )
        )
    return out


def compared(ctx: CheckContext) -> list[Finding]:
    """:func:`check_metrics` for the context's transition (empty when not comparable), once."""

    def compute() -> list[Finding]:
        if not ctx.comparable:
            return []
        before, after = ctx.before.metrics, ctx.after.metrics
        assert before is not None and after is not None
        return check_metrics(before, after, rollback=ctx.rollback)

    return ctx.memo("metrics", compute)


def judged(ctx: CheckContext) -> Judgement | None:
    """What the context's consumers make of the metric findings, once (None: none were read)."""
    consumers = ctx.consumers
    if consumers is None:
        return None

    def compute() -> Judgement:
        # Imported here: PromQL parsing (~0.15 s) is only needed when consumers were given.
        from compatcheck.consumers.judge import judge_consumers

        before, after = ctx.before.metrics, ctx.after.metrics
        assert before is not None and after is not None
        return judge_consumers(consumers, before, after, compared(ctx))

    return ctx.memo("judgement", compute)


@check(
    FAMILY_REMOVED,
    FAMILY_ADDED,
    TYPE_CHANGED,
    UNIT_CHANGED,
    HELP_CHANGED,
    LABEL_REMOVED,
    LABEL_ADDED,
    LABEL_VALUES_CHANGED,
    BUCKETS_CHANGED,
    QUANTILES_CHANGED,
    RENAMED,
    BUILD_INFO_MISSING,
)
def metrics_changes(ctx: CheckContext) -> list[Finding]:
    """What the transition changes in the metrics, each finding with the consumers it breaks."""
    judgement = judged(ctx)
    return compared(ctx) if judgement is None else judgement.metrics
