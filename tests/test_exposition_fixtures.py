"""Realistic expositions (node exporter + a Python app, written by prometheus_client) in both
formats: the same service must give the same schema, in PromQL names, whichever format it uses."""

from __future__ import annotations

import math
from pathlib import Path

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families

from compatcheck.exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    parse_stream,
    parse_text,
    read_exposition_file,
)
from compatcheck.model import MetricsSchema
from tests._support import sampled

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "expositions"
TEXT = FIXTURES / "node_app.prom"
OPENMETRICS = FIXTURES / "node_app.om"
PATHS = ("/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/users", "/healthz", "/search?q=a,b")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)

SHARED = {
    "app_build_info",
    "app_state",
    "db_pool_connections",
    "http_request_duration_seconds",
    "http_requests_in_flight",
    "http_requests_total",
    "http_response_size_bytes",
    "jobs_processed_total",
    "node_cpu_seconds_total",
    "node_filesystem_avail_bytes",
    "node_load1",
    "node_network_receive_bytes_total",
    "node_uname_info",
    "queue_lag_seconds",
}
# In 0.0.4, prometheus_client writes each `_created` as a gauge family of its own; in OpenMetrics
# they are samples of their counter/histogram/summary. Prometheus stores `X_created` either way.
CREATED = {
    "http_request_duration_seconds_created",
    "http_requests_created",
    "http_response_size_bytes_created",
    "jobs_processed_created",
}


def _read(path: Path, content_type: str) -> MetricsSchema:
    """Both fixtures expose the same families (``_created`` included), each in its own format."""
    schema = read_exposition_file(path)
    assert schema.content_type == content_type
    assert set(schema.families) == SHARED | CREATED
    return schema


def test_text_fixture_families() -> None:
    schema = _read(TEXT, CONTENT_TYPE_TEXT)
    assert schema.families["http_request_duration_seconds"] == sampled(
        "http_request_duration_seconds",
        "histogram",
        help="HTTP request latency.",
        labels=("method", "path"),
        label_values={"method": ("GET", "POST"), "path": PATHS},
        buckets=BUCKETS,
        series=10,
    )
    assert schema.families["http_requests_created"].type == "gauge"
    assert schema.families["app_build_info"].type == "gauge"  # 0.0.4 has no info type


def test_openmetrics_fixture_families() -> None:
    schema = _read(OPENMETRICS, CONTENT_TYPE_OPENMETRICS)
    assert {name: schema.families[name] for name in ("queue_lag_seconds", "app_state")} == {
        "queue_lag_seconds": sampled(
            "queue_lag_seconds",
            "gauge",
            unit="seconds",
            help='Consumer lag, with "quotes" and a \\ backslash.',
            labels=("partition", "queue"),
            label_values={"partition": ("0", "1", "2"), "queue": ("billing", "email", "reports")},
            series=9,
        ),
        "app_state": sampled(
            "app_state",
            "stateset",
            help="Lifecycle state.",
            labels=("app_state",),
            label_values={"app_state": ("draining", "ready", "starting")},
            series=3,
        ),
    }
    assert schema.families["http_response_size_bytes"].quantiles == ()
    assert schema.families["http_response_size_bytes"].series == 3
    assert schema.families["node_uname_info"].type == "info"


def test_both_formats_give_the_same_contract() -> None:
    text = read_exposition_file(TEXT).families
    om = read_exposition_file(OPENMETRICS).families
    retyped = {"app_build_info": "info", "node_uname_info": "info", "app_state": "stateset"}
    assert set(text) == set(om)
    for name in SHARED | CREATED:
        a, b = text[name], om[name]
        assert (a.labels, a.label_values, a.buckets, a.quantiles, a.series, a.help) == (
            b.labels,
            b.label_values,
            b.buckets,
            b.quantiles,
            b.series,
            b.help,
        ), name
        assert retyped.get(name, a.type) == b.type, name


def test_fixtures_match_prometheus_client() -> None:
    """Family names (in PromQL form), types and label keys as the reference parsers see them."""
    ref_text = {}
    for mf in text_string_to_metric_families(TEXT.read_text()):
        name = mf.name + "_total" if mf.type == "counter" else mf.name
        ref_text[name] = (mf.type, sorted({k for s in mf.samples for k in s.labels} - {"le"}))
    ours = read_exposition_file(TEXT).families
    assert {
        n: ("unknown" if f.type == "untyped" else f.type, list(f.labels)) for n, f in ours.items()
    } == ref_text
    ref_om = {}
    for mf in om_families(OPENMETRICS.read_text()):  # type: ignore[no-untyped-call]
        name = mf.name + {"counter": "_total", "info": "_info"}.get(mf.type, "")
        ref_om[name] = (
            mf.type,
            mf.unit,
            sorted({k for s in mf.samples for k in s.labels} - {"le"}),
        )
        created = [s for s in mf.samples if s.name == mf.name + "_created"]
        if created:  # stored by Prometheus as the series `X_created`
            ref_om[mf.name + "_created"] = (
                "gauge",
                "",
                sorted({k for s in created for k in s.labels}),
            )
    ours = read_exposition_file(OPENMETRICS).families
    assert {n: (f.type, f.unit, list(f.labels)) for n, f in ours.items()} == ref_om


def test_all_entry_points_agree_on_the_fixtures() -> None:
    for path in (TEXT, OPENMETRICS):
        data = path.read_bytes()
        schema = read_exposition_file(path)
        assert parse_text(data.decode()) == schema
        assert parse_stream(data[i : i + 100] for i in range(0, len(data), 100)) == schema


def test_a_real_node_exporter_capture_matches_prometheus_client() -> None:
    """node_exporter 1.5.0's own output, captured byte for byte: family names, types, label keys
    and series counts as prometheus_client reads them, on both of our reader's paths."""
    path = FIXTURES / "realworld" / "node_exporter.prom"
    text = path.read_text()
    ref: dict[str, tuple[str, list[str], int]] = {}
    for mf in text_string_to_metric_families(text):
        name = mf.name + "_total" if mf.type == "counter" else mf.name
        keys = sorted({k for s in mf.samples for k in s.labels} - {"le", "quantile"})
        series = {
            tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("le", "quantile")))
            for s in mf.samples
        }
        ref[name] = (mf.type, keys, len(series))
    ours = read_exposition_file(path).families
    got = {
        n: ("unknown" if f.type == "untyped" else f.type, list(f.labels), f.series)
        for n, f in ours.items()
    }
    assert got == ref
    assert len(got) == 283
    data = text.encode()
    assert parse_stream(data[i : i + 4096] for i in range(0, len(data), 4096)).families == ours
