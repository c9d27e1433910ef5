"""OpenMetrics differential: expositions written by prometheus_client's own OpenMetrics writer.

Real services expose what client libraries write, so the registry is generated (counters, gauges,
histograms, summaries, info and enum/stateset metrics, with units and labels) and rendered by
prometheus_client in both formats. Properties:

* the OpenMetrics schema equals the one prometheus_client's OpenMetrics parser sees, in PromQL
  names (`foo` counter → `foo_total`, `foo` info → `foo_info`, `_created` samples → `foo_created`);
* the 0.0.4 rendering of the same registry gives the same contract — names, label keys and
  values, buckets, `_created` entries — except what 0.0.4 cannot say (units; info and stateset
  are gauges there).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from compatcheck.exposition import parse_text
from compatcheck.model import LABEL_VALUE_CAP, MetricFamily

OM = "application/openmetrics-text; version=1.0.0"
TEXT = "text/plain; version=0.0.4"
KINDS = ("counter", "gauge", "histogram", "summary", "info", "enum")
LABELS = ("method", "route", "status", "pod")
VALUES = st.text(st.sampled_from(list('ab/{}=, "\\\nZé.-_:')), min_size=1, max_size=6)
BOUNDS = st.lists(
    st.sampled_from([0.005, 0.01, 0.1, 0.25, 1.0, 2.5, 10.0]), unique=True, max_size=4
).map(sorted)


@st.composite
def registries(draw: st.DrawFn) -> CollectorRegistry:
    reg = CollectorRegistry()
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(KINDS))
        labels = draw(st.lists(st.sampled_from(LABELS), unique=True, max_size=2))
        unit = draw(st.sampled_from(["", "seconds", "bytes"])) if kind != "enum" else ""
        name = f"m{i}_{kind}"
        doc = draw(st.sampled_from(["", "Requests served.", 'A "quoted" help\\text']))
        series = draw(st.lists(st.tuples(*[VALUES] * len(labels)), unique=True, max_size=3))
        if kind == "counter":
            m = Counter(name, doc, labels, unit=unit, registry=reg)
            for values in series:
                (m.labels(*values) if labels else m).inc(draw(st.integers(0, 5)))
        elif kind == "gauge":
            m = Gauge(name, doc, labels, unit=unit, registry=reg)
            for values in series:
                (m.labels(*values) if labels else m).set(draw(st.floats(-5, 5)))
        elif kind == "histogram":
            bounds = draw(BOUNDS) or [1.0]
            m = Histogram(name, doc, labels, unit=unit, buckets=bounds, registry=reg)
            for values in series:
                (m.labels(*values) if labels else m).observe(draw(st.floats(0, 20)))
        elif kind == "summary":
            m = Summary(name, doc, labels, unit=unit, registry=reg)
            for values in series:
                (m.labels(*values) if labels else m).observe(draw(st.floats(0, 20)))
        elif kind == "info":
            m = Info(name, doc or "Build.", labels, registry=reg)
            for values in series:
                target = m.labels(*values) if labels else m
                target.info({"version": draw(VALUES), "revision": draw(VALUES)})
        else:
            states = draw(
                st.lists(st.sampled_from(["ok", "degraded", "down"]), min_size=1, unique=True)
            )
            m = Enum(name, doc or "State.", labels, states=states, registry=reg)
            for values in series:
                (m.labels(*values) if labels else m).state(draw(st.sampled_from(states)))
    return reg


def reference(text: str) -> dict[str, MetricFamily]:
    """The schema prometheus_client's OpenMetrics parser sees, in PromQL names; ``_created``
    samples are the entry ``X_created`` (a gauge), the series Prometheus stores for them."""
    out: dict[str, MetricFamily] = {}
    for mf in text_string_to_metric_families(text):
        suffix = {"counter": "_total", "info": "_info"}.get(mf.type, "")
        created = [s for s in mf.samples if s.name == mf.name + "_created"]
        mf.samples = [s for s in mf.samples if s.name != mf.name + "_created"]
        if created:
            values = sorted({(k, v) for s in created for k, v in s.labels.items()})
            keys = sorted({k for k, _ in values})
            out[mf.name + "_created"] = MetricFamily(
                name=mf.name + "_created",
                type="gauge",
                help=mf.documentation,
                labels=tuple(keys),
                label_values={k: tuple(v for kk, v in values if kk == k) for k in keys},
                series=len(created),
                has_samples=True,
            )
        name = mf.name + suffix
        values: dict[str, set[str]] = {}
        series: set[frozenset[tuple[str, str]]] = set()
        buckets: set[float] = set()
        quantiles: set[float] = set()
        for s in mf.samples:
            labels = dict(s.labels)
            if "le" in labels and mf.type in ("histogram", "gaugehistogram"):
                buckets.add(float(labels.pop("le")))
            if "quantile" in labels and mf.type == "summary":
                quantiles.add(float(labels.pop("quantile")))
            series.add(frozenset(labels.items()))
            for k, v in labels.items():
                values.setdefault(k, set()).add(v)
        hc = {k for k, v in values.items() if len(v) > LABEL_VALUE_CAP}
        out[name] = MetricFamily(
            name=name,
            type=mf.type,
            unit=mf.unit,
            help=mf.documentation,
            labels=tuple(sorted(values)),
            label_values={k: tuple(sorted(v)) for k, v in values.items() if k not in hc},
            high_cardinality=tuple(sorted(hc)),
            buckets=tuple(sorted(buckets)),
            quantiles=tuple(sorted(quantiles)),
            series=len(series) if mf.samples else 0,
            has_samples=bool(mf.samples),
        )
    return out


PROFILE = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(registries())
def test_openmetrics_matches_prometheus_client(reg: CollectorRegistry) -> None:
    text = generate_openmetrics(reg).decode()
    ours = parse_text(text, content_type=OM)
    assert dict(ours.families) == reference(text)


def _contract(fam: MetricFamily) -> MetricFamily:
    """What both formats can say: no unit, and info/stateset are gauges in 0.0.4."""
    typ = "gauge" if fam.type in ("info", "stateset") else fam.type
    return replace(fam, unit="", type=typ, help="", series=0)


@PROFILE
@given(registries())
def test_both_formats_of_one_registry_give_one_contract(reg: CollectorRegistry) -> None:
    om = parse_text(generate_openmetrics(reg).decode(), content_type=OM)
    txt = parse_text(generate_text(reg).decode(), content_type=TEXT)
    # Trap: in 0.0.4 prometheus_client writes `_created` as a gauge family of its own, in
    # OpenMetrics as samples of its counter/histogram/summary: both are the entry `X_created`.
    assert {n: _contract(f) for n, f in om.families.items()} == {
        n: _contract(f) for n, f in txt.families.items()
    }
