"""Hypothesis strategies for the model: metric families, schemas and snapshots."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from compatcheck.model import METRIC_TYPES, MetricFamily, MetricsSchema
from compatcheck.snapshot import ProbeRecord, Snapshot

names = st.from_regex(r"[a-z][a-z0-9_]{0,14}", fullmatch=True)
label_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("le", "quantile")
)
label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
bounds = st.lists(st.one_of(finite, st.just(math.inf)), max_size=6, unique=True).map(
    lambda xs: tuple(sorted(xs))
)


@st.composite
def families(draw: st.DrawFn, name: str | None = None) -> MetricFamily:
    labels = tuple(sorted(draw(st.sets(label_names, max_size=4))))
    values = {
        lbl: tuple(sorted(draw(st.sets(label_values, min_size=1, max_size=4)))) for lbl in labels
    }
    typ = draw(st.sampled_from(METRIC_TYPES))
    return MetricFamily(
        name=name or draw(names),
        type=typ,
        unit=draw(st.sampled_from(["", "seconds", "bytes"])),
        help=draw(st.text(max_size=20)),
        labels=labels,
        label_values=values,
        high_cardinality=(),
        buckets=draw(bounds) if typ in ("histogram", "gaugehistogram") else (),
        quantiles=draw(bounds) if typ == "summary" else (),
        series=draw(st.integers(min_value=0, max_value=1000)),
        has_samples=draw(st.booleans()),
    )


@st.composite
def schemas(draw: st.DrawFn) -> MetricsSchema:
    fam_names = draw(st.sets(names, max_size=8))
    fams = {n: draw(families(n)) for n in sorted(fam_names)}
    return MetricsSchema(families=fams, content_type=draw(st.sampled_from(["", "text/plain"])))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    return Snapshot(
        label=draw(st.text(max_size=10)),
        source=draw(st.text(max_size=20)),
        captured_at="2026-11-26T00:00:00+00:00",
        metrics=draw(st.one_of(st.none(), schemas())),
        readiness=draw(
            st.one_of(st.none(), st.just({"/readyz": ProbeRecord(status=200, json={"ok": True})}))
        ),
        build=draw(st.dictionaries(st.sampled_from(["version", "revision"]), st.text(max_size=8))),
        alembic_head=draw(st.one_of(st.none(), st.from_regex(r"[0-9a-f]{12}", fullmatch=True))),
        artifact=None,
        unavailable=draw(
            st.dictionaries(st.sampled_from(["metrics", "readiness"]), st.text(max_size=20))
        ),
    )
