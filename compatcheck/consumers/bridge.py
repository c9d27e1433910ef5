"""The bridge: keep consumers working across a rename while a rollback is in effect.

Two complementary fixes for a query that a rename breaks:

* :func:`render_bridge_rules` writes a Prometheus rule file whose recording rules recreate the
  series names of the running release (``before``) from the series of the target (``after``):
  ``record: shop_http_server_requests_total`` / ``expr: shop_http_requests_total``. Loaded for the
  rollback window, every alert and panel keeps working unchanged. A label renamed in place becomes
  a ``label_replace`` rule. Labels the target does not have at all cannot be recreated; the file
  says so in a comment next to the rule.
* :func:`rewrite_query` gives the ``new or old`` form of one query, for consumers an SRE prefers to
  edit: it returns data before and after the rollback.

Renames come from ``metrics/renamed`` findings (the metrics checks decide what is a rename); the
schemas decide which series each family has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from compatcheck.checks.consumers import QUERY_BROKEN
from compatcheck.checks.metrics import RENAMED
from compatcheck.consumers.promql import PromQLError, parse_promql, rename_metrics
from compatcheck.model import Finding, MetricFamily, MetricsSchema

#: Units a name suffix (or OpenMetrics ``# UNIT``) can carry, as (dimension, factor to the base).
_UNIT_SCALES: dict[str, tuple[str, float]] = {
    "seconds": ("time", 1.0),
    "milliseconds": ("time", 1e-3),
    "ms": ("time", 1e-3),
    "microseconds": ("time", 1e-6),
    "nanoseconds": ("time", 1e-9),
    "bytes": ("size", 1.0),
    "kilobytes": ("size", 1e3),
    "megabytes": ("size", 1e6),
    "ratio": ("ratio", 1.0),
    "percent": ("ratio", 1e-2),
}
_HISTOGRAMS = ("histogram", "gaugehistogram")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_PLAIN_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")


def series_names(family: MetricFamily) -> tuple[str, ...]:
    """The sample names PromQL can select for ``family`` (its ``name`` is the PromQL name).

    Trap: a histogram's family name selects nothing by itself; its series are ``_bucket``,
    ``_sum`` and ``_count`` (``_gsum``/``_gcount`` for a gauge histogram).
    """
    n = family.name
    if family.type == "histogram":
        return (f"{n}_bucket", f"{n}_sum", f"{n}_count")
    if family.type == "gaugehistogram":
        return (f"{n}_bucket", f"{n}_gsum", f"{n}_gcount")
    if family.type == "summary":
        return (n, f"{n}_sum", f"{n}_count")
    return (n,)


def unit_of(family: MetricFamily) -> str | None:
    """The family's unit: its OpenMetrics ``# UNIT`` or the last unit word of its name."""
    if family.unit in _UNIT_SCALES:
        return family.unit
    for token in reversed(re.split(r"[_:]+", family.name.lower())):
        if token in _UNIT_SCALES:
            return token
    return None


def _scaled(names: Sequence[str], family: MetricFamily) -> tuple[str, ...]:
    """The sample names of ``family`` whose values are in its unit (``_count`` is a count)."""
    if family.type in (*_HISTOGRAMS, "summary"):
        return tuple(n for n in names if not n.endswith(("_count", "_gcount")))
    return tuple(names)


def unit_conversion(before: MetricFamily, after: MetricFamily) -> float | str | None:
    """How ``after``'s values become ``before``'s: None (same unit), a factor, or why they can't.

    Trap: a rename from ``_seconds`` to ``_milliseconds`` bridged name for name would feed every
    alert written for seconds values 1000 times too large; such a rule is worse than none.
    """
    b, a = unit_of(before), unit_of(after)
    if b is None or a is None or b == a:
        return None
    (b_dim, b_scale), (a_dim, a_scale) = _UNIT_SCALES[b], _UNIT_SCALES[a]
    if b_dim != a_dim:
        return f"`{b}` cannot be computed from `{a}`"
    return a_scale / b_scale


def family_renames(
    findings: Iterable[Finding], before: MetricsSchema, after: MetricsSchema
) -> dict[str, str]:
    """``before`` family name → ``after`` family name, for each ``metrics/renamed`` finding that
    the schemas confirm (the old name gone, the new one present)."""
    out: dict[str, str] = {}
    for f in findings:
        if f.kind != RENAMED:
            continue
        src = str(f.evidence.get("family") or f.subject)
        dst = f.evidence.get("renamed_to")
        if not isinstance(dst, str):
            continue
        if src in before.families and dst in after.families and src not in after.families:
            out[src] = dst
    return out


def series_renames(
    families: Mapping[str, str],
    before: MetricsSchema,
    after: MetricsSchema,
    *,
    same_unit_only: bool = True,
) -> dict[str, str]:
    """Expand family renames to sample names (``x_bucket`` → ``y_bucket``...).

    A series whose values are in a unit that the rename changes is not a name swap: it is left
    out unless ``same_unit_only`` is false (the bridge, which converts what it can).
    """
    out: dict[str, str] = {}
    for src, dst in families.items():
        bf, af = before.families[src], after.families[dst]
        b_names, a_names = series_names(bf), series_names(af)
        if len(b_names) == len(a_names):
            pairs = dict(zip(b_names, a_names, strict=True))
        else:  # the type changed as well: only the bare names can be matched
            pairs = {src: dst}
        if same_unit_only and unit_conversion(bf, af) is not None:
            pairs = {b: a for b, a in pairs.items() if b not in _scaled(b_names, bf)}
        out.update(pairs)
    return out


def label_renames(before: MetricsSchema, after: MetricsSchema) -> list[tuple[str, str, str]]:
    """``(family, label in before, label in after)`` for labels renamed in place.

    Conservative on purpose: the family keeps its name, exactly one label disappears and exactly
    one appears, and both carry the same non-empty set of values. Anything looser is a guess.
    """
    out: list[tuple[str, str, str]] = []
    for name in sorted(set(before.families) & set(after.families)):
        bf, af = before.families[name], after.families[name]
        gone = set(bf.labels) - set(af.labels)
        new = set(af.labels) - set(bf.labels)
        if len(gone) != 1 or len(new) != 1:
            continue
        (b_label,), (a_label,) = gone, new
        values = bf.label_values.get(b_label)
        if values and values == af.label_values.get(a_label):
            out.append((name, b_label, a_label))
    return out


def rewrite_query(
    text: str, renames: Mapping[str, str], grafana: bool = False, *, vector: bool = False
) -> str | None:
    """``(query) or (query with after's names)``: data on both sides of the transition.

    ``renames`` maps sample names of ``before`` to those of ``after``. Returns None when nothing
    in the query is renamed or when the rewrite does not parse (a scalar-valued query cannot be
    joined with ``or``).

    ``vector``: the query is known to parse to an instant vector (:attr:`Parsed.vector
    <compatcheck.consumers.promql.Parsed.vector>`). Renaming metric names to other plain names
    keeps its shape, so the rewrite parses too and is not parsed again (a judge writes hundreds of
    rewrites, each twice as long as its query); any doubt (a comment, a keyword or an unusual
    name among the renames) and it is parsed.
    """
    words = set(_WORD.findall(text))
    used = {k: v for k, v in renames.items() if k in words}
    if not used:
        return None
    old = rename_metrics(text, used)
    if old == text:
        return None
    rewrite = f"({text.strip()}) or ({old.strip()})"
    if vector and _keeps_shape(text, used):
        return rewrite
    try:
        parse_promql(rewrite, grafana)  # only whether it parses: its tree is never judged
    except PromQLError:
        return None
    return rewrite


#: Words the PromQL lexer reads as keywords (case-insensitively) rather than metric names.
_KEYWORDS = frozenset(
    "and or unless atan2 by without on ignoring group_left group_right bool offset start end "
    "step inf nan sum avg count min max group stddev stdvar topk bottomk count_values quantile "
    "limitk limit_ratio".split()
)


def _keeps_shape(text: str, used: Mapping[str, str]) -> bool:
    """Whether renaming ``used`` in ``text`` only swaps one metric name for another: no comment
    (the ``)`` after the query would be commented out), no keyword renamed or introduced, no
    name ending in ``offset`` (Grafana's substitution looks at the word before a variable)."""
    if "#" in text:
        return False
    for name in (*used, *used.values()):
        low = name.lower()
        if not _PLAIN_NAME.match(name) or low in _KEYWORDS or low.endswith("offset"):
            return False
    return True


def _yaml_scalar(text: str) -> str:
    if _PLAIN_NAME.match(text):
        return text
    return "'" + text.replace("'", "''") + "'"


def render_bridge_rules(
    findings: Sequence[Finding], before: MetricsSchema, after: MetricsSchema
) -> str:
    """A rule file (``promtool check rules`` clean) that recreates ``before``'s series from
    ``after``'s for every rename in ``findings`` and every in-place label rename of the schemas.

    Also reads the ``renamed_to`` of ``consumers/query-broken`` problems, so a rename the
    consumers hit is bridged even when only the consumer finding was kept.
    """
    fams = family_renames(findings, before, after)
    pairs = series_renames(fams, before, after, same_unit_only=False)
    for f in findings:
        if f.kind != QUERY_BROKEN:
            continue
        for p in f.evidence.get("problems", ()):
            src, dst = p.get("missing_metric"), p.get("renamed_to")
            if isinstance(src, str) and isinstance(dst, str):
                pairs.setdefault(src, dst)

    out = [
        "# Generated by compatcheck: recording rules that recreate the running release's series",
        "# from the rollback target's, so alerts, recording rules and dashboards written for the",
        "# running release keep working during the rollback window. Remove once they are updated.",
    ]
    rules: list[str] = []
    by_family: dict[str, list[tuple[str, str]]] = {}
    for src, dst in sorted(pairs.items()):
        fam = next((f for f, d in fams.items() if src in series_names(before.families[f])), src)
        by_family.setdefault(fam, []).append((src, dst))
    for fam, items in sorted(by_family.items()):
        target = fams.get(fam)
        rules.append(f"      # `{fam}` is `{target or items[0][1]}` in the target release")
        conversion: float | str | None = None
        scaled: tuple[str, ...] = ()
        if target is not None:
            bf, af = before.families[fam], after.families[target]
            lost = sorted(set(bf.labels) - set(af.labels))
            if lost:
                rules.append(
                    "      # not recoverable (the target has no such label): " + ", ".join(lost)
                )
            conversion = unit_conversion(bf, af)
            scaled = _scaled(series_names(bf), bf)
        for src, dst in items:
            expr = dst
            if conversion is not None and src in scaled:
                if isinstance(conversion, str):
                    rules.append(f"      # not bridged: `{src}`: {conversion}")
                    continue
                if src.endswith("_bucket"):
                    # `le` holds the target's unit; PromQL cannot rescale a label's value.
                    rules.append(
                        f"      # not bridged: `{src}`: its `le` bounds are in "
                        f"`{unit_of(after.families[str(target)])}`"
                    )
                    continue
                expr = f"{dst} * {conversion:g}"
            rules.append(f"      - record: {src}")
            rules.append(f"        expr: {_yaml_scalar(expr)}")
    for fam, b_label, a_label in label_renames(before, after):
        rules.append(f"      # `{fam}`: label `{b_label}` is `{a_label}` in the target release")
        rules.append(
            "      # (the scraped series keep their own name too: select on the label to avoid"
            " counting twice)"
        )
        for name in series_names(after.families[fam]):
            expr = f'label_replace({name}, "{b_label}", "$1", "{a_label}", "(.*)")'
            rules.append(f"      - record: {name}")
            rules.append(f"        expr: {_yaml_scalar(expr)}")
    if not rules:
        out.append("groups: []")
        return "\n".join(out) + "\n"
    out += ["groups:", "  - name: compatcheck-bridge", "    rules:", *rules]
    return "\n".join(out) + "\n"
