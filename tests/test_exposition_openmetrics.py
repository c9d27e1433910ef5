"""OpenMetrics differential: expositions written by prometheus_client's own OpenMetrics writer.

Real services expose what client libraries write, so the registry is generated (counters with and
without `_created`, gauges, histograms, summaries, info and enum/stateset metrics, gauge
histograms, with units and labels: tests/registries.py) and rendered by prometheus_client in both
formats. Properties:

* the OpenMetrics schema equals the one prometheus_client's OpenMetrics parser sees, in PromQL
  names (`foo` counter → `foo_total`, `foo` info → `foo_info`, `_created` samples → `foo_created`);
* the 0.0.4 rendering of the same registry gives the same contract — names, label keys and
  values, buckets, `_created` entries — except what 0.0.4 cannot say (units; info and stateset
  are gauges there).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from compatcheck.exposition import parse_text
from compatcheck.model import LABEL_VALUE_CAP, MetricFamily
from tests.registries import build, metrics

OM = "application/openmetrics-text; version=1.0.0"
TEXT = "text/plain; version=0.0.4"
registries = metrics().map(build)


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


@given(registries)
def test_openmetrics_matches_prometheus_client(reg: CollectorRegistry) -> None:
    text = generate_openmetrics(reg).decode()
    ours = parse_text(text, content_type=OM)
    assert dict(ours.families) == reference(text)


def _contract(fam: MetricFamily) -> MetricFamily:
    """What both formats can say: no unit, info/stateset are gauges in 0.0.4, and a gauge
    histogram without samples is a plain histogram there (only `_gcount` samples tell)."""
    typ = "gauge" if fam.type in ("info", "stateset") else fam.type
    if typ == "gaugehistogram" and not fam.has_samples:
        typ = "histogram"
    return replace(fam, unit="", type=typ, help="", series=0)


@given(registries)
def test_both_formats_of_one_registry_give_one_contract(reg: CollectorRegistry) -> None:
    om = parse_text(generate_openmetrics(reg).decode(), content_type=OM)
    txt = parse_text(generate_text(reg).decode(), content_type=TEXT)
    # Trap: in 0.0.4 prometheus_client writes `_created` as a gauge family of its own, in
    # OpenMetrics as samples of its counter/histogram/summary: both are the entry `X_created`.
    assert {n: _contract(f) for n, f in om.families.items()} == {
        n: _contract(f) for n, f in txt.families.items()
    }
