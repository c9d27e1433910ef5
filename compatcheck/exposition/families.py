"""What the reader keeps per family, and its assembly into the schema.

A family is accumulated by sample name (a *sink* per name, which counts lines and bounds) and
turned into :class:`~compatcheck.model.MetricFamily` entries at the end, keyed by the name
PromQL selects, so that text 0.0.4 and OpenMetrics give the same entries for the same series.
"""

from __future__ import annotations

import math
from dataclasses import replace

from compatcheck.model import LABEL_VALUE_CAP, MetricFamily, MetricsSchema

PLAIN, BUCKET, QUANTILE = 0, 1, 2

# Sample names of each type: (suffix, role). The empty suffix is the family name itself.
SUFFIXES_TEXT: dict[str, tuple[tuple[str, int], ...]] = {
    "counter": (("", PLAIN),),
    "gauge": (("", PLAIN),),
    # Trap: 0.0.4 has no gauge histogram; clients write one as `# TYPE x histogram` with
    # `x_gcount`/`x_gsum` samples (see _gauge_histograms), so those names belong to the histogram.
    "histogram": (
        ("_bucket", BUCKET),
        ("_count", PLAIN),
        ("_sum", PLAIN),
        ("_gcount", PLAIN),
        ("_gsum", PLAIN),
    ),
    "summary": (("", QUANTILE), ("_count", PLAIN), ("_sum", PLAIN)),
    "untyped": (("", PLAIN),),
}
SUFFIXES_OM: dict[str, tuple[tuple[str, int], ...]] = {
    "counter": (("_total", PLAIN), ("_created", PLAIN)),
    "gauge": (("", PLAIN),),
    "histogram": (("_bucket", BUCKET), ("_count", PLAIN), ("_sum", PLAIN), ("_created", PLAIN)),
    "gaugehistogram": (("_bucket", BUCKET), ("_gcount", PLAIN), ("_gsum", PLAIN)),
    "summary": (("", QUANTILE), ("_count", PLAIN), ("_sum", PLAIN), ("_created", PLAIN)),
    "info": (("_info", PLAIN),),
    "stateset": (("", PLAIN),),
    "unknown": (("", PLAIN),),
}
#: OpenMetrics families whose PromQL name is not the TYPE name.
_OM_PROMQL_SUFFIX = {"counter": "_total", "info": "_info"}
#: Type of the ``X_created`` schema entry split off an OpenMetrics counter, histogram or summary:
#: what client libraries declare for it in 0.0.4 (``# TYPE X_created gauge``).
CREATED_TYPE = "gauge"


class Family:
    """Schema accumulator of one family (keyed by its TYPE/HELP name, or by the sample name of
    a family without metadata)."""

    __slots__ = (
        "hc",
        "hc_fast",
        "help",
        "implicit",
        "last",
        "line",
        "name",
        "pieces",
        "sinks",
        "type",
        "unit",
        "values",
    )

    def __init__(self, name: str, line: int, implicit: bool) -> None:
        self.name = name
        self.line = line
        self.implicit = implicit
        self.type: str | None = None
        self.help: str | None = None
        self.unit: str | None = None
        self.values: dict[str, set[str]] = {}
        self.hc: set[str] = set()
        #: The high-cardinality keys the fast path accepts after a character check of the value
        #: alone, with no cache (their values are mostly new on every line).
        self.hc_fast: frozenset[str] = frozenset()
        #: Cache of ``key="value`` pieces (fast-path form) already folded into ``values``.
        self.pieces: set[str] = set()
        #: Last fast-path label body folded in: the buckets, ``_sum`` and ``_count`` of one
        #: series share it, so most histogram lines skip label work entirely.
        self.last = ""
        self.sinks: list[Sink] = []

    def mark_high_cardinality(self, key: str) -> None:
        """Keep only ``key`` itself from now on: its values are ids, not a contract."""
        self.hc.add(key)
        self.values.pop(key, None)
        prefix = key + '="'
        self.pieces = {p for p in self.pieces if not p.startswith(prefix)}
        # `__name__` never takes the fast path (a quoted name inside the braces).
        self.hc_fast = frozenset(self.hc - {"__name__"})

    def has_samples(self) -> bool:
        # A loop, not any() over a generator: asked for every metadata line.
        for s in self.sinks:  # noqa: SIM110
            if s.n or s.bounds:
                return True
        return False


class Sink:
    """One sample name of a family and what its lines count."""

    __slots__ = ("bound_key", "bound_tag", "bounds", "fam", "n", "name", "role")

    def __init__(self, fam: Family, name: str, role: int) -> None:
        self.fam = fam
        self.name = name
        self.role = role
        self.n = 0
        #: Lines per bound string (``le`` or ``quantile`` value) for bucket/quantile samples.
        self.bounds: dict[str, int] = {}
        key = "le" if role == BUCKET else "quantile"
        self.bound_key = key
        self.bound_tag = f'",{key}="'


def assemble_schema(
    order: list[Family], families: dict[str, Family], openmetrics: bool, content_type: str
) -> MetricsSchema:
    """The schema: one entry per name PromQL selects, as Prometheus stores the samples.

    ``order`` is every family block in order of appearance, ``families`` the latest block of
    each metadata name. Both formats give the same entries for the same series: an OpenMetrics
    counter, histogram or summary's ``_created`` samples become the entry ``X_created`` (a gauge),
    as 0.0.4 clients expose them; a 0.0.4 histogram with ``_gcount``/``_gsum`` samples is a gauge
    histogram. Blocks selected by one name (a family repeated, samples before their TYPE) are
    merged into one entry.
    """
    default = "unknown" if openmetrics else "untyped"
    grouped: dict[str, list[MetricFamily]] = {}
    gauge_histograms = {} if openmetrics else _gauge_histograms(order, families)
    folded = {id(part) for parts in gauge_histograms.values() for part in parts}
    for fam in order:
        if id(fam) in folded:
            continue
        typ = fam.type or default
        name = fam.name
        created: Sink | None = None
        if openmetrics and fam.type is not None:
            name += _OM_PROMQL_SUFFIX.get(typ, "")
            created = next((s for s in fam.sinks if s.name == fam.name + "_created"), None)
        elif id(fam) in gauge_histograms:
            typ = "gaugehistogram"
        entry = _schema_family(fam, name, typ, skip=created)
        grouped.setdefault(name, []).append(entry)
        if created is not None and created.n:
            split = replace(
                entry,
                name=created.name,
                type=CREATED_TYPE,
                unit="",
                buckets=(),
                quantiles=(),
                series=created.n,
                has_samples=True,
            )
            grouped.setdefault(created.name, []).append(split)
    out = {name: merge_entries(entries) for name, entries in grouped.items()}
    return MetricsSchema(families=out, content_type=content_type)


def _gauge_histograms(order: list[Family], families: dict[str, Family]) -> dict[int, list[Family]]:
    """0.0.4 ``histogram`` families that are gauge histograms → their ``_gcount``/``_gsum``
    families to fold in (keyed by ``id``).

    Trap: 0.0.4 has no gauge histogram. prometheus_client writes one as ``# TYPE x
    histogram`` with the buckets only, then ``x_gcount`` and ``x_gsum`` as gauge families of
    their own (like ``_created``); older writers put ``x_gcount``/``x_gsum`` samples under the
    histogram. Either way the series are OpenMetrics' ``gaugehistogram`` ``x``.
    """
    out: dict[int, list[Family]] = {}
    for fam in order:
        if fam.type != "histogram":
            continue
        seen = {s.name[len(fam.name) :] for s in fam.sinks if s.n}
        if seen & {"_count", "_sum"}:
            continue
        parts = [
            part
            for part in (families.get(fam.name + s) for s in ("_gcount", "_gsum"))
            if part is not None
            and part is not fam
            and part.type in (None, "gauge")
            and part.has_samples()
        ]
        if parts or seen & {"_gcount", "_gsum"}:
            out[id(fam)] = parts
    return out


def merge_entries(entries: list[MetricFamily]) -> MetricFamily:
    """One schema entry from blocks that PromQL selects by one name (in order of appearance).

    The type, help and unit come from the first block with samples (else the first block); label
    keys, values and bounds are united; ``series`` is the largest block's (the blocks may repeat
    the same series).
    """
    if len(entries) == 1:
        return entries[0]
    first = next((e for e in entries if e.has_samples), entries[0])
    values: dict[str, set[str]] = {}
    high = {k for e in entries for k in e.high_cardinality}
    for e in entries:
        for key, vals in e.label_values.items():
            values.setdefault(key, set()).update(vals)
    high |= {k for k, v in values.items() if len(v) > LABEL_VALUE_CAP}
    return replace(
        first,
        help=first.help or next((e.help for e in entries if e.help), ""),
        unit=first.unit or next((e.unit for e in entries if e.unit), ""),
        labels=tuple(sorted({k for e in entries for k in e.labels})),
        label_values={k: tuple(sorted(v)) for k, v in sorted(values.items()) if k not in high},
        high_cardinality=tuple(sorted(high)),
        buckets=tuple(sorted({b for e in entries for b in e.buckets})),
        quantiles=tuple(sorted({q for e in entries for q in e.quantiles})),
        series=max(e.series for e in entries),
        has_samples=any(e.has_samples for e in entries),
    )


def _schema_family(fam: Family, name: str, typ: str, *, skip: Sink | None = None) -> MetricFamily:
    series = 0
    buckets: set[float] = set()
    quantiles: set[float] = set()
    has_samples = False
    for sink in fam.sinks:
        if sink is skip:
            continue
        if sink.n:
            has_samples = True
            series = max(series, sink.n)
        if sink.bounds:
            has_samples = True
            per_bound: dict[float | str, int] = {}
            for text, count in sink.bounds.items():
                value = float(text)
                # NaN never equals itself: one key for all its spellings.
                key: float | str = "NaN" if math.isnan(value) else value
                per_bound[key] = per_bound.get(key, 0) + count
                (buckets if sink.role == BUCKET else quantiles).add(value)
            series = max(series, *per_bound.values())
    labels = sorted(set(fam.values) | fam.hc)
    return MetricFamily(
        name=name,
        type=typ,
        unit=fam.unit or "",
        help=fam.help or "",
        labels=tuple(labels),
        label_values={k: tuple(sorted(v)) for k, v in sorted(fam.values.items())},
        high_cardinality=tuple(sorted(fam.hc)),
        buckets=tuple(sorted(buckets)),
        quantiles=tuple(sorted(quantiles)),
        series=series,
        has_samples=has_samples,
    )
