"""Registries prometheus_client can build, as data: generated, mutated, then built and rendered.

A :class:`Metric` describes one metric the way an instrumented service declares it (kind, name,
help, label names, unit, the label values of its children); :func:`build` turns a list of them
into a real ``CollectorRegistry``, rendered by prometheus_client's own writers in 0.0.4
(:func:`render_text`) and OpenMetrics (:func:`render_openmetrics`). Keeping the description apart
from the registry is what lets a test mutate one side (drop a family, a label, a bucket).

Kinds: the instruments (``counter``, ``gauge``, ``histogram``, ``summary``, ``info``, ``enum``)
and what a custom collector yields (``counter_nocreated``: a counter without ``_created``, as
older clients or ``disable_created_metrics()`` expose; ``gaugehistogram``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily
from prometheus_client.core import Metric as ClientMetric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

KINDS = (
    "counter",
    "counter_nocreated",
    "gauge",
    "histogram",
    "summary",
    "info",
    "enum",
    "gaugehistogram",
)
LABELS = ("method", "route", "status", "pod")
VALUES = st.text(st.sampled_from(list('ab/{}=, "\\\nZé.-_:')), min_size=1, max_size=6)
BOUNDS = (0.005, 0.01, 0.1, 0.25, 1.0, 2.5, 10.0)
STATES = ("ok", "degraded", "down")
#: Always present, so that no generated pair lacks build info (`metrics/build-info-missing`).
BUILD = "app_build"


@dataclass(frozen=True)
class Metric:
    kind: str
    name: str
    doc: str
    labels: tuple[str, ...]
    unit: str
    #: Label values of each child (one tuple per series; ``()`` for an unlabelled metric).
    series: tuple[tuple[str, ...], ...]
    bounds: tuple[float, ...] = ()
    states: tuple[str, ...] = ()
    #: The label pairs an ``info`` metric's children carry.
    info: tuple[tuple[str, str], ...] = ()

    @property
    def full_name(self) -> str:
        """The name prometheus_client gives the family: the unit appended as a suffix."""
        return f"{self.name}_{self.unit}" if self.unit else self.name


@st.composite
def metrics(draw: st.DrawFn, max_metrics: int = 5) -> list[Metric]:
    """A service's metrics (plus its build info), in registration order."""
    build_labels = (("version", draw(VALUES)), ("revision", draw(VALUES)))
    out = [Metric("info", BUILD, "Build.", (), "", ((),), info=build_labels)]
    for i in range(draw(st.integers(0, max_metrics))):
        kind = draw(st.sampled_from(KINDS))
        labels = tuple(draw(st.lists(st.sampled_from(LABELS), unique=True, max_size=2)))
        series = tuple(draw(st.lists(st.tuples(*[VALUES] * len(labels)), unique=True, max_size=3)))
        if not labels:
            series = ((),)  # an unlabelled metric always has its one series
        out.append(
            Metric(
                kind=kind,
                name=f"m{i}_{kind}",
                doc=draw(st.sampled_from(["", "Requests served.", 'A "quoted" help\\text'])),
                labels=labels,
                unit=draw(st.sampled_from(["", "seconds", "bytes"]))
                if kind not in ("enum", "info")
                else "",
                series=series,
                bounds=tuple(sorted(draw(st.sets(st.sampled_from(BOUNDS), min_size=1, max_size=4))))
                if kind in ("histogram", "gaugehistogram")
                else (),
                states=tuple(draw(st.lists(st.sampled_from(STATES), min_size=1, unique=True)))
                if kind == "enum"
                else (),
                info=(("edition", draw(VALUES)),) if kind == "info" else (),
            )
        )
    return out


class _Collected:
    """A custom collector: what a service's own ``collect()`` yields."""

    def __init__(self, families: Sequence[ClientMetric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[ClientMetric]:
        return iter(self.families)


def _custom(m: Metric) -> ClientMetric:
    if m.kind == "counter_nocreated":
        c = CounterMetricFamily(m.name, m.doc, labels=m.labels, unit=m.unit)
        for values in m.series:
            c.add_metric(list(values), 3.0)
        return c
    g = GaugeHistogramMetricFamily(m.name, m.doc, labels=m.labels, unit=m.unit)
    for values in m.series:
        buckets = [(repr(b), float(i + 1)) for i, b in enumerate(m.bounds)]
        g.add_metric(list(values), [*buckets, ("+Inf", float(len(m.bounds) + 1))], 4.5)
    return g


def _instrument(m: Metric, reg: CollectorRegistry) -> tuple[Any, Callable[[Any], object]]:
    """The prometheus_client instrument for ``m`` and what one request does to a child of it."""
    common: dict[str, Any] = {"registry": reg}
    if m.kind == "info":
        return Info(m.name, m.doc or "Build.", m.labels, **common), lambda i: i.info(dict(m.info))
    if m.kind == "enum":
        e = Enum(m.name, m.doc or "State.", m.labels, states=list(m.states), **common)
        return e, lambda child: child.state(m.states[-1])
    common["unit"] = m.unit
    if m.kind == "counter":
        return Counter(m.name, m.doc, m.labels, **common), lambda c: c.inc(2)
    if m.kind == "gauge":
        return Gauge(m.name, m.doc, m.labels, **common), lambda g: g.set(1.5)
    if m.kind == "histogram":
        h = Histogram(m.name, m.doc, m.labels, buckets=m.bounds, **common)
        return h, lambda child: child.observe(0.2)
    return Summary(m.name, m.doc, m.labels, **common), lambda child: child.observe(0.2)


def build(specs: Sequence[Metric]) -> CollectorRegistry:
    """The registry these metrics make, built with prometheus_client's own classes."""
    reg = CollectorRegistry()
    custom: list[ClientMetric] = []
    for m in specs:
        if m.kind in ("counter_nocreated", "gaugehistogram"):
            custom.append(_custom(m))
            continue
        metric, record = _instrument(m, reg)
        for values in m.series if m.labels else ():
            record(metric.labels(*values))
        if not m.labels:
            record(metric)
    if custom:
        reg.register(_Collected(custom))  # type: ignore[arg-type]
    return reg


def render_text(specs: Sequence[Metric]) -> str:
    return generate_latest(build(specs)).decode()


def render_openmetrics(specs: Sequence[Metric]) -> str:
    return generate_openmetrics(build(specs)).decode()


RENDER = {"text": render_text, "openmetrics": render_openmetrics}


# -- mutations ---------------------------------------------------------------------------------


def droppable_families(specs: Sequence[Metric]) -> list[int]:
    return [i for i, m in enumerate(specs) if m.name != BUILD]


def droppable_labels(specs: Sequence[Metric]) -> list[tuple[int, int]]:
    """(metric, label) pairs whose loss is visible: the metric has a child to carry it."""
    return [
        (i, j)
        for i, m in enumerate(specs)
        if m.name != BUILD and m.series and m.labels
        for j in range(len(m.labels))
    ]


def droppable_buckets(specs: Sequence[Metric]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, m in enumerate(specs)
        if m.kind in ("histogram", "gaugehistogram") and len(m.bounds) > 1 and m.series
        for j in range(len(m.bounds))
    ]


def drop_family(specs: Sequence[Metric], i: int) -> list[Metric]:
    return [m for k, m in enumerate(specs) if k != i]


def drop_label(specs: Sequence[Metric], i: int, j: int) -> list[Metric]:
    m = specs[i]
    series = tuple(dict.fromkeys(v[:j] + v[j + 1 :] for v in m.series))
    changed = replace(m, labels=m.labels[:j] + m.labels[j + 1 :], series=series)
    return [changed if k == i else x for k, x in enumerate(specs)]


def drop_bucket(specs: Sequence[Metric], i: int, j: int) -> list[Metric]:
    m = specs[i]
    changed = replace(m, bounds=m.bounds[:j] + m.bounds[j + 1 :])
    return [changed if k == i else x for k, x in enumerate(specs)]


def entry_names(m: Metric) -> set[str]:
    """The schema entries (PromQL names) one metric gives, as Prometheus stores its series."""
    n = m.full_name
    created = {f"{n}_created"} if m.series else set()
    if m.kind == "counter":
        return {f"{n}_total"} | created
    if m.kind == "counter_nocreated":
        return {f"{n}_total"}
    if m.kind in ("histogram", "summary"):
        return {n} | created
    if m.kind == "info":
        return {f"{n}_info"}
    return {n}
