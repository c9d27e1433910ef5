"""The policy hook through its ASGI app (Starlette's TestClient) and, for what only a real server
shows (sockets, SIGTERM, the command-line flags), through uvicorn in a child process on loopback.

Slow releases are real HTTP servers that answer late; nothing here is mocked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from compatcheck.engine import evaluate
from compatcheck.errors import UsageError
from compatcheck.schemas import validate
from compatcheck.serve import add_serve_arguments
from compatcheck.serve.settings import settings_from_args
from compatcheck.store import SnapshotStore

from .test_serve_helpers import (
    AUTH,
    METRICS,
    REPO,
    SNAPSHOTS,
    TOKEN,
    body,
    cannot_tell,
    hook_clients,
    hook_process,
    metrics_handler,
    serve_http,
    static_handler,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MakeClient = Callable[..., TestClient]
RENAMED = {
    ("metrics/buckets-changed", "http_request_duration_seconds"),
    ("metrics/family-added", "db_connections"),
    ("metrics/family-removed", "worker_threads"),
    ("metrics/label-removed", "shop_orders_created_total{payment_method}"),
    ("metrics/renamed", "http_request_duration_seconds"),
    ("metrics/renamed", "http_server_requests_total"),
    ("metrics/renamed", "shop_orders_created_total"),
}


def findings_of(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


def without_timings(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "timings"}


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    yield from hook_clients()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of the hook's own /metrics (0 when the series does not exist yet)."""
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


# -- /v1/check -----------------------------------------------------------------------------------


def test_check_answers_the_engines_report_plus_go(client: TestClient) -> None:
    store = SnapshotStore(str(SNAPSHOTS))
    for old, new, go in (("v1", "v2", True), ("v3", "v4", False)):
        resp = client.post("/v1/check", json=body("shop", old, new), headers=AUTH)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        report = resp.json()
        assert report["go"] is go
        assert report["verdict"] == ("go" if go else "no-go")
        assert validate(report, "report") is None
        direct = evaluate(store.get("shop", old), store.get("shop", new)).to_json()
        assert without_timings(report) == without_timings(direct)
    assert findings_of(report) == RENAMED
    assert (report["old"]["label"], report["new"]["label"]) == ("v3", "v4")


def test_check_in_deploy_direction(client: TestClient) -> None:
    resp = client.post("/v1/check", json=body("shop", "v3", "v4", direction="deploy"), headers=AUTH)
    assert resp.status_code == 200
    assert resp.json()["direction"] == "deploy"


def test_cannot_tell_is_503_with_the_report(client: TestClient) -> None:
    data = cannot_tell(
        client,
        "v0",
        "v1",
        "cannot tell yet: OLD exposition `fixtures/metrics/exposition_invalid/old.prom` is "
        "invalid: line 4: unterminated label value of `status`",
    )
    assert findings_of(data["report"]) == {("metrics/exposition-invalid", "old")}


@pytest.mark.parametrize(
    ("service", "old", "error"),
    [
        ("shop", "v9", "no stored snapshot for service 'shop' version 'v9'"),
        ("cart", "v1", "no stored snapshot for service 'cart' version 'v1'"),
    ],
)
def test_unknown_service_or_version_is_404(
    client: TestClient, service: str, old: str, error: str
) -> None:
    resp = client.post("/v1/check", json=body(service, old, "v2"), headers=AUTH)
    assert (resp.status_code, resp.json()) == (404, {"error": error})


BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "request body is empty (expected a JSON object)"),
    ("truncated", b'{"service": "shop"', "request body is not valid JSON: Expecting ',' delimiter"),
    ("not utf-8", b'{"service": "\xff"}', "request body is not UTF-8"),
    ("array", b"[1, 2]", "request body must be a JSON object"),
    ("no new", b'{"service": "shop", "old": {"version": "v1"}}', "request needs `new`"),
    (
        "unknown key",
        json.dumps({**body("shop", "v1", "v2"), "command": ["rm"]}).encode(),
        "unknown key `command` in request (expected: service, old, new, direction)",
    ),
    (
        "path in version",
        json.dumps(body("shop", "../../etc/passwd", "v2")).encode(),
        "invalid old version name '../../etc/passwd'",
    ),
    (
        "traversal service",
        json.dumps(body("..", "v1", "v2")).encode(),
        "invalid service name '..'",
    ),
    (
        "both version and url",
        json.dumps(
            {
                "service": "shop",
                "old": {"version": "v1", "url": "http://x/"},
                "new": {"version": "v2"},
            }
        ).encode(),
        "`old` needs exactly one of `version`, `url` or `image`",
    ),
    (
        "path target",
        json.dumps({"service": "shop", "old": {"path": "/etc"}, "new": {"version": "v2"}}).encode(),
        "unknown key `path` in `old` (expected version, url or image)",
    ),
    (
        "bad direction",
        json.dumps(body("shop", "v1", "v2", direction="sideways")).encode(),
        "`direction` must be rollback or deploy",
    ),
]


@pytest.mark.parametrize(
    ("raw", "error"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_malformed_requests_are_400_in_one_line(client: TestClient, raw: bytes, error: str) -> None:
    resp = client.post(
        "/v1/check", content=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    message = resp.json()["error"]
    assert message.startswith(error)
    assert "\n" not in message
    assert set(resp.json()) == {"error"}


def test_url_targets_are_refused_unless_enabled(client: TestClient) -> None:
    req = {
        "service": "shop",
        "old": {"version": "v1"},
        "new": {"url": "http://127.0.0.1:9/metrics"},
    }
    resp = client.post("/v1/check", json=req, headers=AUTH)
    assert resp.status_code == 403
    assert resp.json()["error"].startswith("url targets are disabled on this server")


def test_url_target_is_scraped_when_enabled(make_client: MakeClient) -> None:
    client = make_client(allow_url_targets=True)
    with serve_http(metrics_handler(METRICS / "renamed" / "new.prom")) as base:
        req = {"service": "shop", "old": {"version": "v3"}, "new": {"url": f"{base}/metrics"}}
        resp = client.post("/v1/check", json=req, headers=AUTH)
    assert resp.status_code == 200
    assert resp.json()["go"] is False
    assert findings_of(resp.json()) == RENAMED


# -- auth and body cap ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": ""},
    ],
    ids=["missing", "wrong", "basic", "empty"],
)
def test_requests_without_the_token_are_401(client: TestClient, headers: dict[str, str]) -> None:
    for method, path in (
        ("POST", "/v1/check"),
        ("POST", "/v1/checks"),
        ("GET", "/v1/checks/x"),
        ("GET", "/nope"),
    ):
        resp = client.request(method, path, json=body("shop", "v1", "v2"), headers=headers)
        assert resp.status_code == 401, (method, path)
        assert resp.json() == {"error": "missing or wrong bearer token"}
        assert resp.headers["www-authenticate"] == 'Bearer realm="compatcheck"'


def test_health_and_metrics_are_open(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks_running": 0}
    assert client.get("/metrics").status_code == 200


def test_no_token_configured_means_open(make_client: MakeClient) -> None:
    client = make_client(token=None)
    assert client.post("/v1/check", json=body("shop", "v1", "v2")).status_code == 200


def test_body_cap_by_declared_length_and_by_streamed_bytes(make_client: MakeClient) -> None:
    client = make_client(max_body=1000)
    resp = client.post("/v1/check", content=b" " * 1001, headers=AUTH)
    assert (resp.status_code, resp.json()) == (
        413,
        {"error": "request body of 1001 bytes is over the 1000 byte cap"},
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(20):
            yield b" " * 100

    resp = client.post("/v1/check", content=chunks(), headers=AUTH)
    assert (resp.status_code, resp.json()) == (
        413,
        {"error": "request body is over the 1000 byte cap"},
    )
    padded = json.dumps(body("shop", "v1", "v2")).encode().ljust(1000)
    assert client.post("/v1/check", content=padded, headers=AUTH).status_code == 200


# -- /v1/checks (Spinnaker) ----------------------------------------------------------------------


def poll(client: TestClient, location: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = client.get(location, headers=AUTH).json()
        if data["status"] != "RUNNING" or time.monotonic() > deadline:
            return data
        time.sleep(0.02)


def test_async_checks_succeed_or_end_terminal(client: TestClient) -> None:
    results = {}
    for old, new in (("v1", "v2"), ("v3", "v4"), ("v0", "v1")):
        resp = client.post("/v1/checks", json=body("shop", old, new), headers=AUTH)
        assert resp.status_code == 202
        location = resp.headers["location"]
        assert location.startswith("/v1/checks/")
        assert resp.json()["location"] == location
        results[new] = poll(client, location)
    assert results["v2"]["status"] == "SUCCEEDED"
    assert results["v2"]["go"] is True
    assert results["v2"]["report"]["verdict"] == "go"
    assert "error" not in results["v2"]
    assert results["v4"]["status"] == "TERMINAL"
    assert results["v4"]["go"] is False
    assert results["v4"]["error"].startswith("no-go: rollback v4 → v3: metrics/family-removed")
    assert findings_of(results["v4"]["report"]) == RENAMED
    assert results["v1"]["status"] == "TERMINAL"
    assert results["v1"]["error"].startswith("cannot tell: OLD exposition")


def test_async_check_validates_before_accepting(client: TestClient) -> None:
    assert client.post("/v1/checks", json=body("shop", "v9", "v2"), headers=AUTH).status_code == 404
    assert client.post("/v1/checks", content=b"{", headers=AUTH).status_code == 400
    resp = client.get("/v1/checks/doesnotexist", headers=AUTH)
    assert resp.status_code == 404


def test_finished_jobs_are_bounded(make_client: MakeClient) -> None:
    client = make_client(max_jobs=3)
    locations = []
    for _ in range(5):
        resp = client.post("/v1/checks", json=body("shop", "v1", "v2"), headers=AUTH)
        locations.append(resp.headers["location"])
        poll(client, locations[-1])
    codes = [client.get(loc, headers=AUTH).status_code for loc in locations]
    assert codes == [404, 404, 200, 200, 200]


# -- slots, timeouts, cache ----------------------------------------------------------------------


def test_busy_is_429_cached_is_not_and_timeouts_end_terminal(make_client: MakeClient) -> None:
    client = make_client(
        allow_url_targets=True, max_concurrent=1, check_timeout=0.5, scrape_timeout=10
    )
    assert client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH).status_code == 200
    release = threading.Event()
    with serve_http(metrics_handler(METRICS / "compatible" / "new.prom", release=release)) as base:
        slow = {"service": "shop", "old": {"version": "v1"}, "new": {"url": f"{base}/metrics"}}
        resp = client.post("/v1/checks", json=slow, headers=AUTH)
        assert resp.status_code == 202
        assert resp.json()["status"] == "RUNNING"
        location = resp.headers["location"]
        assert client.get("/healthz").json()["checks_running"] == 1

        busy = client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH)
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "1"
        assert busy.json() == {"error": "too many checks running (limit 1)"}
        assert client.post("/v1/checks", json=slow, headers=AUTH).status_code == 429
        # A cached verdict needs no slot.
        cached = client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
        assert cached.status_code == 200

        job = poll(client, location)
        assert job["status"] == "TERMINAL"
        assert job["error"] == "check timed out after 0.5s"
        assert job["go"] is None
        # A thread holds its slot until its work ends, past the answer: the pool stays bounded.
        # The scrape's own timeout is the check's deadline too, so it may already have ended
        # (under load the TERMINAL answer and the scrape's timeout race): whichever it is, the
        # slot count and the answer to another check agree.
        timeouts = 1
        if client.get("/healthz").json()["checks_running"] == 1:
            timed_out = client.post("/v1/check", json=slow, headers=AUTH)
            assert timed_out.status_code in (429, 503)
            timeouts += timed_out.status_code == 503  # the slot came back just in between
        release.set()
        deadline = time.monotonic() + 5
        while client.get("/healthz").json()["checks_running"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/healthz").json()["checks_running"] == 0
    assert client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH).status_code == 200
    assert metric(client, "compatcheck_hook_check_timeouts_total") == timeouts


def test_sync_check_timeout_is_503(make_client: MakeClient) -> None:
    client = make_client(allow_url_targets=True, check_timeout=0.3, scrape_timeout=3)
    with serve_http(metrics_handler(METRICS / "compatible" / "new.prom", delay=2.0)) as base:
        slow = {"service": "shop", "old": {"version": "v1"}, "new": {"url": f"{base}/metrics"}}
        started = time.monotonic()
        resp = client.post("/v1/check", json=slow, headers=AUTH)
        # Answered at the deadline, long before the release would have (2 s): room for a
        # loaded machine, where 0.9 s against a 1 s release was a coin toss.
        assert time.monotonic() - started < 1.7
    assert resp.status_code == 503
    assert resp.json() == {"error": "check timed out after 0.3s"}
    assert resp.headers["retry-after"] == "5"


def test_cache_key_follows_policy_and_consumers(make_client: MakeClient, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("severity: {}\n")
    rules = tmp_path / "rules.yml"
    alert = "groups:\n- name: shop\n  rules:\n  - alert: {name}\n    expr: {expr}\n"
    rules.write_text(alert.format(name="WorkersLow", expr="worker_threads < 2"))
    client = make_client(policy=(str(policy),), consumers=(str(rules),))
    req = body("shop", "v3", "v4")

    def check() -> dict[str, Any]:
        resp = client.post("/v1/check", json=req, headers=AUTH)
        assert resp.status_code == 200
        data: dict[str, Any] = resp.json()
        return data

    def consumers_of(report: dict[str, Any]) -> set[tuple[str, str]]:
        return {(f["kind"], c["name"]) for f in report["findings"] for c in f["consumers"]}

    first = check()
    assert first["go"] is False
    assert consumers_of(first) == {
        ("metrics/family-removed", "WorkersLow"),
        ("consumers/query-broken", "WorkersLow"),
    }
    assert check() == first
    assert metric(client, "compatcheck_hook_cache_hits_total") == 1

    rules.write_text(alert.format(name="WorkersVeryLow", expr="worker_threads < 1"))
    assert {name for _, name in consumers_of(check())} == {"WorkersVeryLow"}
    assert metric(client, "compatcheck_hook_cache_hits_total") == 1

    policy.write_text(
        "severity:\n"
        + "".join(
            f"  {k}: warning\n"
            for k in (
                "metrics/family-removed",
                "metrics/label-removed",
                "metrics/renamed",
                "consumers/query-broken",
            )
        )
    )
    relaxed = check()
    assert relaxed["go"] is True
    assert metric(client, "compatcheck_hook_cache_hits_total") == 1
    assert check() == relaxed
    assert metric(client, "compatcheck_hook_cache_hits_total") == 2


def test_broken_policy_edit_is_500_not_a_stale_verdict(
    make_client: MakeClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("severity: {}\n")
    client = make_client(policy=(str(policy),))
    assert client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH).status_code == 200
    policy.write_text("severity:\n  metrics/nope: error\n")
    resp = client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
    assert resp.status_code == 500
    assert resp.json()["error"].startswith("server policy is broken: ")
    assert "metrics/nope" in resp.json()["error"]


def test_cache_is_lru_bounded(make_client: MakeClient) -> None:
    client = make_client(cache_size=1)
    for old, new in (("v1", "v2"), ("v3", "v4"), ("v1", "v2")):
        assert (
            client.post("/v1/check", json=body("shop", old, new), headers=AUTH).status_code == 200
        )
    assert metric(client, "compatcheck_hook_cache_hits_total") == 0
    client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
    assert metric(client, "compatcheck_hook_cache_hits_total") == 1


def test_a_check_sharing_a_side_with_the_last_one_parses_only_the_other(
    make_client: MakeClient,
) -> None:
    client = make_client(cache_size=0)  # no verdict cache: every check is evaluated
    parsed = client.app.state.hook.checker.parsed  # type: ignore[attr-defined]
    expected = {}
    for old, new, parses in (("v1", "v2", 2), ("v2", "v3", 3), ("v2", "v3", 3), ("v4", "v1", 5)):
        answer = client.post("/v1/check", json=body("shop", old, new), headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert parsed.parses == parses, (old, new)
        # A verdict over a kept snapshot is the verdict over the snapshot parsed afresh.
        expected.setdefault((old, new), without_timings(answer.json()))
        assert without_timings(answer.json()) == expected[(old, new)]
    # Only the last pair (v4, v1) is kept: v2 is parsed again, v1 is not.
    client.post("/v1/check", json=body("shop", "v2", "v1"), headers=AUTH)
    assert parsed.parses == 6


def test_checks_asking_for_the_same_new_snapshot_at_once_parse_it_once() -> None:
    """Two evaluations sharing a side that is not parsed yet: the second waits for the first's
    parse (the same object, or the same error) instead of holding a second copy beside it."""
    from compatcheck.errors import InternalError
    from compatcheck.serve.parsed import ParsedSnapshots
    from compatcheck.snapshot import load_snapshot

    parsed = ParsedSnapshots()
    second_asks = threading.Event()

    def parse() -> Any:
        assert second_asks.wait(10)
        time.sleep(0.3)  # the second evaluation asks meanwhile
        return load_snapshot(SNAPSHOTS / "shop" / "v1.snapshot.json")

    got: list[Any] = []
    first = threading.Thread(target=lambda: got.append(parsed.get(("d1", "v1"), parse)))
    first.start()
    second_asks.set()
    got.append(parsed.get(("d1", "v1"), parse))
    first.join(10)
    assert parsed.parses == 1 and len(got) == 2 and got[0] is got[1]

    def broken() -> Any:
        assert second_asks.wait(10)
        time.sleep(0.3)
        calls.append(1)
        raise InternalError("stored snapshot is unusable: bad")

    calls: list[int] = []
    errors: list[str] = []

    def ask() -> None:
        try:
            parsed.get(("d2", "v2"), broken)
        except InternalError as exc:
            errors.append(str(exc))

    first = threading.Thread(target=ask)
    first.start()
    ask()
    first.join(10)
    assert calls == [1] and errors == ["stored snapshot is unusable: bad"] * 2
    assert parsed.parses == 1  # a failed parse is not kept


_BIG_BUFFER_PROBE = """
import sys
from compatcheck.serve.parsed import give_back_big_buffers
if sys.argv[1] == "set":
    assert give_back_big_buffers()
def rss():
    status = open("/proc/self/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024
first = bytearray(24 << 20)  # freed: glibc's dynamic threshold would now be 24 MiB
first[::4096] = b"x" * len(first[::4096])
del first
before = rss()
text = bytearray(13 << 20)  # a snapshot's text, made and freed
text[::4096] = b"x" * len(text[::4096])
del text
print(rss() - before)
"""


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not Path("/proc/self/status").exists(),
    reason="glibc's mmap threshold and /proc are what this is about",
)
def test_a_freed_snapshot_buffer_goes_back_to_the_system() -> None:
    def kept(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
        proc = subprocess.run(
            [sys.executable, "-c", _BIG_BUFFER_PROBE, mode],
            capture_output=True, text=True, env=env, timeout=60, check=True,
        )  # fmt: skip
        return int(proc.stdout)

    assert kept("set") < 4 << 20
    # Without it, glibc keeps the 13 MiB: the probe can tell the two apart.
    assert kept("unset") > 8 << 20


# -- /v1/flagger ---------------------------------------------------------------------------------


def flagger_payload(old: str, new: str, **meta: str) -> dict[str, Any]:
    """What Flagger POSTs (``CanaryWebhookPayload``): metadata values are strings."""
    return {
        "name": "shop",
        "namespace": "prod",
        "phase": "Progressing",
        "checksum": "6d5f9c7b8",
        "metadata": {"old": old, "new": new, **meta},
    }


def test_flagger_status_semantics(client: TestClient) -> None:
    go = client.post("/v1/flagger", json=flagger_payload("v1", "v2"), headers=AUTH)
    assert (go.status_code, go.json()) == (
        200,
        {"go": True, "message": "go: rollback v2 → v1 is safe"},
    )
    nogo = client.post("/v1/flagger", json=flagger_payload("v3", "v4"), headers=AUTH)
    assert nogo.status_code == 412
    assert nogo.json() == {
        "error": "no-go: rollback v4 → v3: metrics/family-removed `worker_threads`, "
        "metrics/label-removed `shop_orders_created_total{payment_method}`, "
        "metrics/renamed `http_request_duration_seconds` (+2 more)",
        "go": False,
    }
    cannot = client.post("/v1/flagger", json=flagger_payload("v0", "v1"), headers=AUTH)
    assert cannot.status_code == 503
    assert cannot.json()["error"].startswith("cannot tell yet: OLD exposition")
    missing = client.post("/v1/flagger", json=flagger_payload("v9", "v1"), headers=AUTH)
    assert missing.status_code == 404


def test_flagger_service_and_validation(client: TestClient) -> None:
    other = client.post(
        "/v1/flagger", json=flagger_payload("v1", "v2", service="cart"), headers=AUTH
    )
    assert other.json() == {"error": "no stored snapshot for service 'cart' version 'v1'"}
    no_meta = {"name": "shop", "namespace": "prod", "phase": "Progressing"}
    resp = client.post("/v1/flagger", json=no_meta, headers=AUTH)
    assert (resp.status_code, resp.json()["error"]) == (
        400,
        "flagger payload needs `metadata` with `old` and `new` versions",
    )
    half = flagger_payload("v1", "")
    resp = client.post("/v1/flagger", json=half, headers=AUTH)
    assert resp.json()["error"] == (
        "flagger payload needs exactly one of `metadata.new` (a stored version) or "
        "`metadata.newImage` (an image digest)"
    )


def test_flagger_token_in_metadata(client: TestClient) -> None:
    """Flagger's webhooks cannot send headers: the token may ride in ``metadata.token``."""
    ok = client.post("/v1/flagger", json=flagger_payload("v1", "v2", token=TOKEN))
    assert ok.status_code == 200
    for meta in ({"token": "wrong"}, {}):
        resp = client.post("/v1/flagger", json=flagger_payload("v1", "v2", **meta))
        assert resp.status_code == 401
    # A wrong header is not rescued by a right body token.
    resp = client.post(
        "/v1/flagger",
        json=flagger_payload("v1", "v2", token=TOKEN),
        headers={"Authorization": "Bearer wrong"},
    )
    assert resp.status_code == 401


# -- /metrics ------------------------------------------------------------------------------------


def test_own_metrics_count_requests_verdicts_and_durations(client: TestClient) -> None:
    client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
    client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
    client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH)
    client.post("/v1/check", json=body("shop", "v0", "v1"), headers=AUTH)
    client.post("/v1/check", json=body("shop", "v1", "v2"))
    client.post("/v1/flagger", json=flagger_payload("v3", "v4"), headers=AUTH)
    client.get("/v1/checks/abc", headers=AUTH)
    client.get("/v1/checks/def", headers=AUTH)
    expected = {
        ("/v1/check", "200"): 3,
        ("/v1/check", "503"): 1,
        ("/v1/check", "401"): 1,
        ("/v1/flagger", "412"): 1,
        ("/v1/checks/{id}", "404"): 2,
    }
    text = client.get("/metrics").text
    got = {
        (s.labels["endpoint"], s.labels["code"]): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "compatcheck_hook_requests_total"
    }
    assert got == expected
    verdicts = {
        v: metric(client, "compatcheck_hook_verdicts_total", verdict=v)
        for v in ("go", "no-go", "unavailable")
    }
    assert verdicts == {"go": 2, "no-go": 2, "unavailable": 1}
    assert metric(client, "compatcheck_hook_check_duration_seconds_count") == 3
    assert metric(client, "compatcheck_hook_cache_hits_total") == 2


# -- store over HTTP, config ---------------------------------------------------------------------


def test_hook_reads_an_http_snapshot_store(make_client: MakeClient) -> None:
    with serve_http(static_handler(SNAPSHOTS)) as base:
        client = make_client(snapshot_dir=base)
        assert client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH).json()["go"]
        assert (
            client.post("/v1/check", json=body("shop", "v7", "v2"), headers=AUTH).status_code == 404
        )


def parse_serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(argv)


def test_settings_from_config_file_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPATCHECK_TOKEN", raising=False)
    conf = tmp_path / "compatcheck.yaml"
    conf.write_text(
        "service: shop\nsnapshot_dir: store\npolicy: [team-policy.yaml]\n"
        "consumers: alerts/\nold: {label: v1}\n"
    )
    token = tmp_path / "token"
    token.write_text(f"{TOKEN}\n")
    args = parse_serve_args(
        "-c", str(conf), "--policy", "extra.yaml", "--token-file", str(token), "--host", "0.0.0.0"
    )
    settings = settings_from_args(args)
    assert settings.snapshot_dir == str(tmp_path / "store")
    assert settings.policy == (str(tmp_path / "team-policy.yaml"), "extra.yaml")
    assert settings.consumers == (str(tmp_path / "alerts"),)
    assert settings.token == TOKEN
    assert (settings.host, settings.port, settings.max_concurrent) == ("0.0.0.0", 8080, 4)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ("--snapshot-dir", "x", "--host", "0.0.0.0"),
            "refusing to listen on 0.0.0.0 without a token",
        ),
        (
            (),
            "nothing to check against: give --snapshot-dir DIR|URL, --allow-url-targets, "
            "or `allow_images` in the config",
        ),
        (
            ("--snapshot-dir", "x", "--token-file", "/nonexistent/t"),
            "/nonexistent/t: cannot read token file",
        ),
    ],
)
def test_unsafe_or_empty_settings_are_refused(
    argv: tuple[str, ...], error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPATCHECK_TOKEN", raising=False)
    with pytest.raises(UsageError) as info:
        settings_from_args(parse_serve_args(*argv))
    assert str(info.value).startswith(error)


# -- a real uvicorn server in a child process ----------------------------------------------------


def test_real_server_answers_and_drains_on_sigterm(tmp_path: Path) -> None:
    args = ["--snapshot-dir", str(SNAPSHOTS), "--allow-url-targets", "--check-timeout", "10"]
    arrived = threading.Event()
    slow_release = metrics_handler(METRICS / "compatible" / "new.prom", delay=1.5, arrived=arrived)
    with (
        serve_http(slow_release) as metrics_url,
        hook_process(args, tmp_path / "hook.log") as hook,
    ):
        with httpx.Client(base_url=hook.url, headers=AUTH, timeout=10) as http:
            assert http.post("/v1/check", json=body("shop", "v1", "v2")).json()["go"] is True
            assert http.post("/v1/check", json=body("shop", "v3", "v4")).json()["go"] is False
            assert (
                http.post(
                    "/v1/check", json=body("shop", "v3", "v4"), headers={"Authorization": ""}
                ).status_code
                == 401
            )

            # Keep-alive answers come back at once: TCP_NODELAY is set on accepted sockets
            # (without it Nagle + delayed ACK add ~40 ms to each response).
            times = []
            for _ in range(11):
                started = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                times.append(time.perf_counter() - started)
            assert sorted(times)[5] < 0.02, times

        answer: dict[str, Any] = {}

        def in_flight() -> None:
            slow = {"service": "shop", "old": {"version": "v1"}, "new": {"url": f"{metrics_url}/m"}}
            resp = httpx.post(f"{hook.url}/v1/check", json=slow, headers=AUTH, timeout=15)
            answer["status"], answer["go"] = resp.status_code, resp.json().get("go")

        thread = threading.Thread(target=in_flight)
        thread.start()
        # The request is in the hook, waiting on the slow release (a fixed sleep here raced the
        # hook on a loaded machine: SIGTERM came before the request did).
        assert arrived.wait(15), "the hook never scraped the slow release"
        hook.terminate()
        thread.join(15)
        code = hook.proc.wait(15)
    assert answer == {"status": 200, "go": True}
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hook.url}/healthz", timeout=2)


def test_cli_refuses_a_broken_policy_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("severity:\n  metrics/nope: error\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compatcheck.serve",
            "--snapshot-dir",
            str(SNAPSHOTS),
            "--policy",
            str(bad),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"compatcheck: error: {bad}:2: unknown finding kind `metrics/nope`")


def test_serve_subcommand_plugs_into_the_cli_parser() -> None:
    from compatcheck.cli import Parser
    from compatcheck.serve import add_serve_parser, cmd_serve

    parser = Parser(prog="compatcheck")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_serve_parser(sub)
    args = parser.parse_args(
        ["serve", "--snapshot-dir", "s", "--policy", "a.yaml", "--policy", "b.yaml", "--port", "0"]
    )
    assert (args.command, args.snapshot_dir, args.policy, args.port) == (
        "serve",
        "s",
        ["a.yaml", "b.yaml"],
        0,
    )
    assert callable(cmd_serve)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["serve", "--max-concurrent", "0"])
    assert info.value.code == 2


def test_a_check_past_its_deadline_keeps_its_slot_until_its_work_ends(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller gets TERMINAL at the deadline, but the evaluation thread cannot be killed: it
    holds its check slot until it ends, so the pool stays bounded (a new check is 429 meanwhile).
    The evaluation is held at its pause point, past the deadline, on purpose."""
    client = make_client(max_concurrent=1, check_timeout=0.5)
    monkeypatch.setenv("COMPATCHECK_PAUSE_AT", "serve-evaluate")
    monkeypatch.setenv("COMPATCHECK_PAUSE_SECONDS", "2")
    resp = client.post("/v1/checks", json=body("shop", "v1", "v3"), headers=AUTH)
    assert resp.status_code == 202
    job = poll(client, resp.headers["location"])
    assert (job["status"], job["error"]) == ("TERMINAL", "check timed out after 0.5s")
    assert client.get("/healthz").json()["checks_running"] == 1
    busy = client.post("/v1/check", json=body("shop", "v2", "v3"), headers=AUTH)
    assert (busy.status_code, busy.json()) == (429, {"error": "too many checks running (limit 1)"})
    monkeypatch.delenv("COMPATCHECK_PAUSE_AT")
    deadline = time.monotonic() + 5
    while client.get("/healthz").json()["checks_running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/healthz").json()["checks_running"] == 0
    assert client.post("/v1/check", json=body("shop", "v2", "v3"), headers=AUTH).status_code == 200
