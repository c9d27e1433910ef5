"""One path from a URL to a snapshot: `diff URL`, `snapshot URL` and the hook record the same.

Two releases on loopback, each with `/metrics`, a JSON `/readyz` and `/healthz`: NEW's readiness
body has `db_connected`, OLD's does not, and OLD names the counter `shop_orders_created_total`
where NEW has `shop_orders_total`. Written down before running: a rollback NEW → OLD loses
`/readyz#/db_connected` (readiness/field-missing) and renames NEW's `shop_orders_total`
(metrics/renamed, subject: the name the rollback takes away), whichever way they are read.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compatcheck.capture import snapshot_from_url
from compatcheck.cli import main
from compatcheck.config import ReadinessConfig
from compatcheck.errors import UnavailableError
from compatcheck.snapshot import Snapshot, load_snapshot
from compatcheck.sources import load_source
from compatcheck.targets import free_port

from .test_serve_helpers import serve_http, static_handler

EXPOSITION = (
    "# HELP shop_{name}_total Orders.\n# TYPE shop_{name}_total counter\n"
    'shop_{name}_total{{status="paid"}} 3\n'
    "# HELP shop_build_info Build.\n# TYPE shop_build_info gauge\n"
    'shop_build_info{{version="{version}",revision="abc{version}"}} 1\n'
)


def _release(root: Path, version: str, name: str, ready: dict[str, Any]) -> Path:
    """A release's endpoints as files: ``/metrics`` and a JSON ``/readyz``."""
    root.mkdir()
    (root / "metrics").write_text(EXPOSITION.format(name=name, version=version))
    (root / "readyz").write_text(json.dumps(ready))
    return root


class _Starting(http.server.BaseHTTPRequestHandler):
    """A release that answers every request 503: up, not ready."""

    def do_GET(self) -> None:
        self.send_error(503)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    old = _release(tmp_path / "v1", "1", "orders_created", {"status": "ready"})
    new = _release(tmp_path / "v2", "2", "orders", {"status": "ready", "db_connected": True})
    with serve_http(static_handler(old)) as old_url, serve_http(static_handler(new)) as new_url:
        yield old_url, new_url


WANT = {
    ("readiness/field-missing", "/readyz#/db_connected"),
    ("metrics/renamed", "shop_orders_total"),
}


def _report(argv: list[str], out: Path) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--format", "json", "-o", str(out), "-q"])
    return code, json.loads(out.read_text())


def _contract(snap: Snapshot) -> dict[str, Any]:
    """What a snapshot records, without what differs from one capture to the next."""
    doc = snap.to_json()
    for entry in doc["readiness"].values():
        entry.update(time_to_ready=None, waited=None)
    return {k: doc[k] for k in ("metrics", "readiness", "build", "alembic_head", "artifact")}


def test_diff_of_urls_and_diff_of_their_snapshots_agree(
    releases: tuple[str, str], tmp_path: Path
) -> None:
    old, new = releases
    code, live = _report(["diff", old, new], tmp_path / "live.json")
    assert (code, {(f["kind"], f["subject"]) for f in live["findings"]}) == (1, WANT)
    for name, url in (("old", old), ("new", new)):
        assert main(["snapshot", url, "-o", str(tmp_path / f"{name}.json"), "-q"]) == 0
    code, stored = _report(
        ["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")], tmp_path / "stored.json"
    )
    assert (code, {(f["kind"], f["subject"]) for f in stored["findings"]}) == (1, WANT)
    for name, url in (("old", old), ("new", new)):
        recorded = load_snapshot(tmp_path / f"{name}.json")
        assert _contract(load_source(url)) == _contract(recorded)
        assert recorded.readiness is not None and set(recorded.readiness) == {"/readyz"}
    assert live["new"]["build"] == {"version": "2", "revision": "abc2"}


def test_a_comparison_does_not_wait_for_a_release_that_does_not_answer() -> None:
    """`diff` and the hook judge what runs now: one readiness probe, and the reason is data."""
    url = f"http://127.0.0.1:{free_port()}/metrics"
    snap = load_source(url, timeout=30)
    assert snap.metrics is None
    assert snap.unavailable == {"metrics": f"{url}: not ready (last error: connection refused)"}
    assert snap.readiness is not None and snap.readiness["/readyz"].ready is False
    # `snapshot URL` waits (up to its timeout) and refuses to record it.
    with pytest.raises(UnavailableError, match="not ready within"):
        snapshot_from_url(url.removesuffix("/metrics"), readiness=ReadinessConfig(timeout=0.3))


def test_a_release_not_ready_is_unavailable_in_a_diff(tmp_path: Path) -> None:
    good = Path(__file__).resolve().parent.parent / "fixtures" / "expositions" / "node_app.prom"
    with serve_http(_Starting) as url:
        code, doc = _report(["diff", str(good), url], tmp_path / "r.json")
    assert code == 3
    assert {(f["kind"], f["subject"]) for f in doc["findings"]} == {
        ("check/unavailable", "new:metrics")
    }
    [finding] = doc["findings"]
    assert finding["message"] == (
        f"NEW metrics could not be checked: {url}/metrics: not ready (last answer HTTP 503)"
    )
