"""One path from a URL to a snapshot: `diff URL`, `snapshot URL` and the hook record the metrics
the same way (one function), and only `snapshot URL` touches anything but `/metrics`.

Two releases on loopback, each with `/metrics` and a JSON `/readyz`: NEW's readiness body has
`db_connected`, OLD's does not, and OLD names the counter `shop_orders_created_total` where NEW
has `shop_orders_total`. Written down before running: a rollback NEW → OLD renames NEW's
`shop_orders_total` (metrics/renamed, subject: the name the rollback takes away) whichever way
the releases are read; `/readyz#/db_connected` is lost (readiness/field-missing) only where the
readiness contract was recorded, i.e. in the recorded snapshots, not in `diff URL URL`.
"""

from __future__ import annotations

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


def _release(root: Path, version: str, name: str, ready: dict[str, Any], seen: list[str]) -> Any:
    """A release's endpoints as files (``/metrics``, a JSON ``/readyz``); requests in ``seen``."""
    root.mkdir()
    (root / "metrics").write_text(EXPOSITION.format(name=name, version=version))
    (root / "readyz").write_text(json.dumps(ready))

    class Recording(static_handler(root)):  # type: ignore[misc]
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

    return Recording


@pytest.fixture
def seen() -> list[str]:
    return []


@pytest.fixture
def releases(tmp_path: Path, seen: list[str]) -> Iterator[tuple[str, str]]:
    old = _release(tmp_path / "v1", "1", "orders_created", {"status": "ready"}, seen)
    new = _release(tmp_path / "v2", "2", "orders", {"status": "ready", "db_connected": True}, seen)
    with serve_http(old) as old_url, serve_http(new) as new_url:
        yield old_url, new_url


def _report(argv: list[str], out: Path) -> tuple[int, set[tuple[str, str]], dict[str, Any]]:
    code = main([*argv, "--format", "json", "-o", str(out), "-q"])
    doc = json.loads(out.read_text())
    return code, {(f["kind"], f["subject"]) for f in doc["findings"]}, doc


def _metrics_contract(snap: Snapshot) -> dict[str, Any]:
    doc = snap.to_json()
    return {k: doc[k] for k in ("metrics", "build", "alembic_head", "artifact", "unavailable")}


def test_diff_of_urls_and_of_their_snapshots_see_the_same_metrics(
    releases: tuple[str, str], seen: list[str], tmp_path: Path
) -> None:
    old, new = releases
    renamed = ("metrics/renamed", "shop_orders_total")
    code, live, doc = _report(["diff", old, new], tmp_path / "live.json")
    assert (code, live) == (1, {renamed})
    assert doc["new"]["build"] == {"version": "2", "revision": "abc2"}
    assert seen == ["/metrics"] * 4  # two scrapes each, nothing else
    for name, url in (("old", old), ("new", new)):
        assert main(["snapshot", url, "-o", str(tmp_path / f"{name}.json"), "-q"]) == 0
    assert sorted(set(seen)) == ["/metrics", "/readyz"]
    stored = [str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    code, found, _ = _report(["diff", *stored], tmp_path / "stored.json")
    assert (code, found) == (1, {renamed, ("readiness/field-missing", "/readyz#/db_connected")})
    for name, url in (("old", old), ("new", new)):
        live_snap, recorded = load_source(url), load_snapshot(tmp_path / f"{name}.json")
        assert _metrics_contract(live_snap) == _metrics_contract(recorded)
        assert live_snap.readiness is None  # not captured, rather than captured empty
        assert recorded.readiness is not None and set(recorded.readiness) == {"/readyz"}


def test_what_a_comparison_cannot_read_is_data_and_a_snapshot_refuses_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    snap = load_source(url)
    assert (snap.metrics, snap.readiness, snap.source) == (None, None, url)
    assert snap.unavailable == {"metrics": f"{url}: scrape failed: connection refused"}
    with pytest.raises(UnavailableError) as err:
        snapshot_from_url(url.removesuffix("/metrics"), readiness=ReadinessConfig(timeout=0.3))
    assert str(err.value) == (
        f"{url.removesuffix('/metrics')}: `/readyz` not ready within 0.3 s "
        "(last error: connection refused)"
    )
