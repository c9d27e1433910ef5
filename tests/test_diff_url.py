"""`compatcheck diff` against real prometheus_client HTTP servers on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from compatcheck.cli import main
from compatcheck.schemas import validate
from compatcheck.sources import load_source


def _serve(registry: CollectorRegistry) -> tuple[str, object]:
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    return f"http://127.0.0.1:{server.server_address[1]}/metrics", server


def _registry(version: str, buckets: tuple[float, ...], renamed: bool) -> CollectorRegistry:
    reg = CollectorRegistry()
    name = "shop_orders_created" if renamed else "shop_orders"
    c = Counter(name, "Orders.", ["status"], registry=reg)
    c.labels("paid").inc()
    h = Histogram(
        "shop_request_duration_seconds", "Latency.", ["route"], buckets=buckets, registry=reg
    )
    h.labels("/orders").observe(0.2)
    g = Gauge("shop_build_info", "Build.", ["version", "revision"], registry=reg)
    g.labels(version, "abc" + version).set(1)
    return reg


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    old_url, old_srv = _serve(_registry("1", (0.1, 0.5, 1.0), renamed=False))
    new_url, new_srv = _serve(_registry("2", (0.05, 0.1, 0.5, 1.0), renamed=True))
    yield old_url, new_url
    for srv in (old_srv, new_srv):
        srv.shutdown()  # type: ignore[attr-defined]
        srv.server_close()  # type: ignore[attr-defined]


def test_scrape_negotiates_openmetrics(servers: tuple[str, str]) -> None:
    snap = load_source(servers[0])
    assert snap.metrics is not None
    assert snap.metrics.content_type.startswith("application/openmetrics-text")
    fams = snap.metrics.families
    # OpenMetrics names the counter family `shop_orders`; PromQL selects `shop_orders_total`.
    assert "shop_orders_total" in fams and fams["shop_orders_total"].type == "counter"
    assert fams["shop_request_duration_seconds"].buckets == (0.1, 0.5, 1.0, float("inf"))


def test_diff_two_live_services(servers: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = main(["diff", servers[0], servers[1], "--format", "json", "-o", str(out)])
    doc = json.loads(out.read_text())
    assert validate(doc, "report") is None
    got = {(f["kind"], f["subject"]) for f in doc["findings"]}
    assert got == {
        ("metrics/renamed", "shop_orders_created_total"),
        # Its `_created` series, which Prometheus stores too (negotiated OpenMetrics here).
        ("metrics/renamed", "shop_orders_created_created"),
        ("metrics/buckets-changed", "shop_request_duration_seconds"),
    }
    assert code == 1 and doc["verdict"] == "no-go"
    assert doc["old"]["source"] == servers[0]


def test_diff_of_base_urls_scrapes_their_metrics(servers: tuple[str, str], tmp_path: Path) -> None:
    """`diff http://host:port http://host:port/` reads `/metrics`, as `snapshot` and `check` do."""
    old_base = servers[0].removesuffix("/metrics")
    new_base = servers[1].removesuffix("metrics")  # trailing slash
    out = tmp_path / "r.json"
    code = main(["diff", old_base, new_base, "--format", "json", "-o", str(out), "-q"])
    doc = json.loads(out.read_text())
    assert validate(doc, "report") is None
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == {
        ("metrics/renamed", "shop_orders_created_total"),
        # Its `_created` series, which Prometheus stores too (negotiated OpenMetrics here).
        ("metrics/renamed", "shop_orders_created_created"),
        ("metrics/buckets-changed", "shop_request_duration_seconds"),
    }
    assert code == 1
    assert (doc["old"]["label"], doc["old"]["source"]) == (old_base, servers[0])
    assert doc["new"]["source"] == servers[1]
