"""Capture: scraping a real HTTP server, merging scrapes, and the demo pipeline on real services."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from compatcheck.capture import FAMILY_INTERMITTENT, capture_snapshot, merge_schemas, run_check
from compatcheck.checks.readiness import check_readiness
from compatcheck.config import ReadinessConfig, load_config
from compatcheck.errors import UnavailableError
from compatcheck.masking import mask_secrets
from compatcheck.model import MetricFamily, MetricsSchema
from compatcheck.scrape import PROMETHEUS_ACCEPT, probe, scrape_metrics
from compatcheck.targets import free_port
from tests.conftest import DemoRun
from tests.httpserve import serve_http

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"

BODY = (
    b"# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n"
    b'app_requests_total{code="200"} 3\n'
)


class _Handler(BaseHTTPRequestHandler):
    seen_accept: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen_accept.append(self.headers.get("Accept", ""))
        if self.path == "/metrics":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(3 * 1024**3))
            self.end_headers()
        elif self.path == "/json":
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen_accept = []
    with serve_http(_Handler) as url:
        yield url


def test_scrape_sends_prometheus_accept_and_records_content_type(server):
    schema = scrape_metrics(server + "/metrics")
    assert _Handler.seen_accept == [PROMETHEUS_ACCEPT]
    assert schema.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert sorted(schema.families) == ["app_requests_total"]
    assert schema.families["app_requests_total"].label_values == {"code": ("200",)}


def test_scrape_refuses_a_3gb_body_at_once(server):
    with pytest.raises(UnavailableError) as err:
        scrape_metrics(server + "/huge", timeout=2)
    assert str(err.value) == (
        f"{server}/huge: scrape failed: body of 3221225472 bytes is over the 64 MiB cap"
    )


def test_scrape_errors_are_one_line_with_credentials_masked(server):
    port = server.rsplit(":", 1)[1]
    with pytest.raises(UnavailableError) as err:
        scrape_metrics(f"http://ops:s3cret@127.0.0.1:{port}/private")
    assert str(err.value) == (
        f"http://ops:***@127.0.0.1:{port}/private: scrape failed: HTTP 401 Unauthorized"
    )
    closed = free_port()
    with pytest.raises(UnavailableError) as err:
        scrape_metrics(f"http://127.0.0.1:{closed}/metrics", timeout=1)
    assert str(err.value) == f"http://127.0.0.1:{closed}/metrics: scrape failed: connection refused"


def test_probe_decodes_json_and_reports_failures_as_data(server):
    ok = probe(server + "/json")
    assert (ok.status, ok.json, ok.error) == (200, {"ok": True}, None)
    closed = probe(f"http://127.0.0.1:{free_port()}/readyz", timeout=1)
    assert (closed.status, closed.error) == (None, "connection refused")
    assert mask_secrets("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def _fam(**kw) -> MetricFamily:  # type: ignore[no-untyped-def]
    return MetricFamily(name="m", type="counter", has_samples=True, **kw)


def test_captures_share_one_verifying_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every capture's client verifies with one context (building one loads the CA bundle); a
    different SSL_CERT_FILE gets its own, as httpx.Client() would honour it."""
    import ssl

    import certifi

    from compatcheck.capture.probes import verifying_tls
    from compatcheck.capture.target import TargetCapture

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    shared = verifying_tls()
    assert verifying_tls() is shared
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    config = load_config(Path(__file__).parent.parent / "fixtures/demo/compatcheck.yaml")
    captures = [
        TargetCapture(config, config.target(role), None, None, threading.Event())  # type: ignore[arg-type]
        for role in ("old", "new")
    ]
    for capture in captures:
        with capture.session() as client:
            assert client._transport._pool._ssl_context is shared  # type: ignore[attr-defined]
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert verifying_tls() is not shared


def test_merge_marks_what_comes_and_goes_as_intermittent():
    first = MetricsSchema(
        families={
            "m": _fam(labels=("code",), label_values={"code": ("200",)}, series=1),
            "lazy": MetricFamily(name="lazy", type="gauge"),
        }
    )
    second = MetricsSchema(
        families={
            "m": _fam(
                labels=("code", "route"),
                label_values={"code": ("200", "500"), "route": ("/a",)},
                series=2,
            )
        },
        content_type="application/openmetrics-text",
    )
    merged = merge_schemas([first, second])
    assert merged.content_type == "application/openmetrics-text"
    assert merged.families["m"].labels == ("code", "route")
    assert merged.families["m"].label_values == {"code": ("200", "500"), "route": ("/a",)}
    assert merged.families["m"].series == 2
    assert merged.families["m"].intermittent == ("code=500", "route")
    assert merged.families["lazy"].intermittent == (FAMILY_INTERMITTENT,)
    assert merge_schemas([first, first]).families == first.families


def test_demo_rollback_captures_both_releases(demo_check: DemoRun) -> None:
    result = demo_check.result
    old, new = result.old, result.new
    assert (old.build, new.build) == (
        {"version": "1.0.0", "revision": "1a2b3c4"},
        {"version": "2.0.0", "revision": "2b3c4d5"},
    )
    assert (old.alembic_head, new.alembic_head) == ("1a0c0ffee001", "2b0c0ffee003")
    assert old.metrics is not None and new.metrics is not None
    shop_old = {n for n in old.metrics.families if n.startswith("shop_")}
    shop_new = {n for n in new.metrics.families if n.startswith("shop_")}
    assert shop_old == {
        "shop_orders_total",
        "shop_request_duration_seconds",
        "shop_build_info",
        "shop_http_requests_total",
    }
    assert shop_new == {
        "shop_orders_created_total",
        "shop_request_duration_seconds",
        "shop_build_info",
        "shop_db_pool_connections",
        "shop_http_requests_total",
    }
    assert new.metrics.families["shop_orders_created_total"].label_values == {
        "payment_method": ("card", "invoice"),
        "status": ("created", "rejected"),
    }
    assert old.metrics.families["shop_request_duration_seconds"].buckets[:3] == (0.05, 0.1, 0.25)
    assert new.metrics.families["shop_request_duration_seconds"].buckets[:3] == (
        0.01,
        0.025,
        0.05,
    )
    assert old.metrics.content_type.startswith("application/openmetrics-text")
    assert new.readiness is not None and old.readiness is not None
    assert list(new.readiness["/readyz"].volatile) == ["/checked_at"]
    assert list(old.readiness["/healthz"].volatile) == ["/uptime_seconds"]
    assert old.readiness["/readyz"].ready is True
    assert {(f.kind, f.subject) for f in check_readiness(new, old)} == {
        ("readiness/field-missing", "/readyz#/db_connected"),
        ("readiness/contract-violated", "/readyz#/db_connected"),
    }
    assert all(f.kind != "artifact/version-mismatch" for f in result.findings)
    for key in ("old.ready", "new.ready", "old.scrape", "new.warmup", "teardown", "capture"):
        assert key in result.timings
    assert list(demo_check.tmp.iterdir()) == []


@pytest.mark.slow
def test_wrong_release_is_a_version_mismatch(tmp_path, isolated_tmp):
    text = (DEMO / "compatcheck.yaml").read_text().replace("shop/v1", "shop/v3")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.replace("cwd: ../", f"cwd: {DEMO}/../"))
    cfg.write_text(cfg.read_text().replace("consumers: [../consumers/shop/]\n", ""))
    snap = capture_snapshot(load_config(cfg), "old")
    assert snap.build["version"] == "3.0.0"
    result = run_check(load_config(cfg))
    mismatch = [f for f in result.findings if f.kind == "artifact/version-mismatch"]
    assert [(f.subject, f.message) for f in mismatch] == [
        (
            "old",
            "`v1` reports version `3.0.0` (expected `1.0.0`) and revision `3c4d5e6` "
            "(expected `1a2b3c4`).",
        )
    ]
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.slow
def test_snapshot_from_url_of_a_running_release(tmp_path, isolated_tmp):
    from compatcheck.capture import snapshot_from_url
    from compatcheck.config import CommandTarget
    from compatcheck.migrations.sources.alembic.runner import migrate_to_head
    from compatcheck.targets import Workspace

    shop = DEMO.parent / "services" / "shop" / "v2"
    db = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    migrate_to_head(shop / "migrations", db)
    target = CommandTarget(
        role="new",
        label="v2",
        command=("{python}", "-m", "shop", "--port", "{port}"),
        cwd=shop,
        env={"DATABASE_URL": db},
    )
    with Workspace(grace=1.0) as ws:
        running = ws.launch(target)
        snap = snapshot_from_url(running.base_url, label="v2")
        metrics_only = snapshot_from_url(running.base_url + "/metrics")
    assert snap.label == "v2"
    assert snap.source == running.base_url
    assert snap.build == {"version": "2.0.0", "revision": "2b3c4d5"}
    assert snap.metrics is not None and "shop_db_pool_connections" in snap.metrics.families
    assert snap.readiness is not None
    assert snap.readiness["/readyz"].json["db_connected"] is True
    assert metrics_only.metrics is not None
    assert sorted(metrics_only.metrics.families) == sorted(snap.metrics.families)
    closed = free_port()
    with pytest.raises(UnavailableError) as err:
        snapshot_from_url(f"http://127.0.0.1:{closed}", readiness=ReadinessConfig(timeout=0.5))
    assert str(err.value) == (
        f"http://127.0.0.1:{closed}: `/readyz` not ready within 0.5 s "
        "(last error: connection refused)"
    )
    assert list(isolated_tmp.iterdir()) == []
