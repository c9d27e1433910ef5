"""What the reader keeps per family, and its assembly into the schema.

A family is accumulated by sample name (a *sink* per name, which counts lines and bounds) and
turned into :class:`~compatcheck.model.MetricFamily` entries at the end, keyed by the name
PromQL selects, so that text 0.0.4 and OpenMetrics give the same entries for the same series.
"""

from __future__ import annotations

import math
from dataclasses import replace

from compatcheck.model import LABEL_VALUE_CAP, MetricFamily

_PLAIN, _BUCKET, _QUANTILE = 0, 1, 2

# Sample names of each type: (suffix, role). The empty suffix is the family name itself.
_SUFFIXES_TEXT: dict[str, tuple[tuple[str, int], ...]] = {
    "counter": (("", _PLAIN),),
    "gauge": (("", _PLAIN),),
    # Trap: 0.0.4 has no gauge histogram; clients write one as `# TYPE x histogram` with
    # `x_gcount`/`x_gsum` samples (see _text_type), so those names belong to the histogram.
    "histogram": (
        ("_bucket", _BUCKET),
        ("_count", _PLAIN),
        ("_sum", _PLAIN),
        ("_gcount", _PLAIN),
        ("_gsum", _PLAIN),
    ),
    "summary": (("", _QUANTILE), ("_count", _PLAIN), ("_sum", _PLAIN)),
    "untyped": (("", _PLAIN),),
}
_SUFFIXES_OM: dict[str, tuple[tuple[str, int], ...]] = {
    "counter": (("_total", _PLAIN), ("_created", _PLAIN)),
    "gauge": (("", _PLAIN),),
    "histogram": (("_bucket", _BUCKET), ("_count", _PLAIN), ("_sum", _PLAIN), ("_created", _PLAIN)),
    "gaugehistogram": (("_bucket", _BUCKET), ("_gcount", _PLAIN), ("_gsum", _PLAIN)),
    "summary": (("", _QUANTILE), ("_count", _PLAIN), ("_sum", _PLAIN), ("_created", _PLAIN)),
    "info": (("_info", _PLAIN),),
    "stateset": (("", _PLAIN),),
    "unknown": (("", _PLAIN),),
}
#: OpenMetrics families whose PromQL name is not the TYPE name.
_OM_PROMQL_SUFFIX = {"counter": "_total", "info": "_info"}
#: Type of the ``X_created`` schema entry split off an OpenMetrics counter, histogram or summary:
#: what client libraries declare for it in 0.0.4 (``# TYPE X_created gauge``).
CREATED_TYPE = "gauge"


class _Family:
    """Schema accumulator of one family (keyed by its TYPE/HELP name, or by the sample name of
    a family without metadata)."""

    __slots__ = (
        "hc",
        "hc_cached",
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
        #: Cache of ``key="value`` pieces (fast-path form) already folded into ``values``.
        self.pieces: set[str] = set()
        #: The pieces of high-cardinality keys in ``pieces`` (evictable).
        self.hc_cached: set[str] = set()
        #: Last fast-path label body folded in: the buckets, ``_sum`` and ``_count`` of one
        #: series share it, so most histogram lines skip label work entirely.
        self.last = ""
        self.sinks: list[_Sink] = []


class _Sink:
    """One sample name of a family and what its lines count."""

    __slots__ = ("bound_key", "bound_tag", "bounds", "fam", "n", "name", "role")

    def __init__(self, fam: _Family, name: str, role: int) -> None:
        self.fam = fam
        self.name = name
        self.role = role
        self.n = 0
        #: Lines per bound string (``le`` or ``quantile`` value) for bucket/quantile samples.
        self.bounds: dict[str, int] = {}
        key = "le" if role == _BUCKET else "quantile"
        self.bound_key = key
        self.bound_tag = f'",{key}="'


def _has_samples(fam: _Family) -> bool:
    return any(s.n or s.bounds for s in fam.sinks)


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


def _schema_family(fam: _Family, name: str, typ: str, *, skip: _Sink | None = None) -> MetricFamily:
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
                (buckets if sink.role == _BUCKET else quantiles).add(value)
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
