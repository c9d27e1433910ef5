"""The hook under abuse: hostile bodies, slow stores, slow clients, stale caches, cold bursts.

Hostile bodies go through the ASGI app (Starlette's TestClient, or the raw ASGI interface for a
client that disconnects). Slow clients need a real server: the hook runs as a child process
(uvicorn on loopback) and the clients are raw sockets that trickle bytes. Slow stores are real
HTTP servers that answer a byte at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from compatcheck.serve import ServeSettings, create_app
from compatcheck.serve import inputs as inputs_module
from compatcheck.serve.checker import Checker

from .test_serve import MakeClient, metric
from .test_serve_helpers import (
    AUTH,
    SNAPSHOTS,
    TOKEN,
    body,
    hook_clients,
    hook_process,
    serve_http,
    trickle_head,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    yield from hook_clients()


def _hook_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "compatcheck.serve"]


# -- malformed bodies: 400, one log line -----------------------------------------------------

HOSTILE: list[tuple[str, str, bytes, int, str]] = [
    (
        "1000-deep",
        "/v1/check",
        b'{"service": "shop", "old": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        400,
        "request body is nested deeper than 8 levels",
    ),
    (
        "5000-digit",
        "/v1/check",
        b'{"service": "shop", "old": {"version": ' + b"9" * 5000 + b"}}",
        400,
        "request body is JSON with a number of more than 4300 digits",
    ),
    (
        "duplicate-key",
        "/v1/check",
        b'{"service": "shop", "old": {"version": "v1"}, "new": {"version": "v2"},'
        b' "new": {"version": "v9"}}',
        400,
        "request body is JSON with a duplicate key `new`",
    ),
    (
        "surrogate-key",
        "/v1/check",
        b'{"service": "shop", "\\ud800": 1}',
        400,
        "unknown key `\ud800` in request",
    ),
    (
        "surrogate-token",
        "/v1/flagger",
        b'{"name": "shop", "metadata": {"old": "v1", "new": "v2", "token": "\\udfff"}}',
        401,
        "missing or wrong bearer token (or `metadata.token`)",
    ),
]


@pytest.mark.parametrize(
    ("path", "raw", "status", "error"),
    [c[1:] for c in HOSTILE],
    ids=[c[0] for c in HOSTILE],
)
def test_hostile_bodies_are_4xx_with_one_log_line(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    path: str,
    raw: bytes,
    status: int,
    error: str,
) -> None:
    client = make_client(raise_server_exceptions=False)
    headers = {} if path == "/v1/flagger" else AUTH
    caplog.set_level(logging.INFO, logger="compatcheck.serve")
    resp = client.post(path, content=raw, headers={**headers, "Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"].startswith(error), resp.json()
    lines = _hook_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is None
    message = lines[0].getMessage()
    assert message.startswith(f"{status} POST {path}: ") and "\n" not in message
    message.encode("ascii")  # escaped: a lone surrogate cannot break the log


def test_a_client_that_disconnects_mid_body_is_400_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(ServeSettings(snapshot_dir=str(SNAPSHOTS), token=TOKEN))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/check",
        "raw_path": b"/v1/check",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-length", b"100")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"service": "sh', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    caplog.set_level(logging.INFO, logger="compatcheck.serve")
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {
        "error": "client disconnected before sending the whole body"
    }
    assert [r.getMessage() for r in _hook_lines(caplog)] == [
        "400 POST /v1/check: client disconnected before sending the whole body"
    ]


def test_unauthenticated_flagger_bodies_have_a_small_cap(make_client: MakeClient) -> None:
    """Flagger carries its token in the body, so anyone can make the hook read one: a small one."""
    client = make_client(max_body=1024 * 1024)
    padding = "x" * (20 * 1024)
    raw = json.dumps({"name": "shop", "metadata": {"old": "v1", "new": "v2", "pad": padding}})
    resp = client.post("/v1/flagger", content=raw)
    assert (resp.status_code, resp.json()) == (
        413,
        {"error": f"request body of {len(raw)} bytes is over the 16384 byte cap"},
    )
    # The same body with the token in a header is read in full (then judged).
    resp = client.post("/v1/flagger", content=raw, headers=AUTH)
    assert resp.status_code == 200, resp.text


# -- everything inside a slot and the deadline -----------------------------------------------


class _Trickle:
    """An HTTP snapshot store that sends each snapshot one byte per ``pause`` seconds."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.stop = threading.Event()

    def handler(self) -> Any:
        import http.server

        trickle = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = (SNAPSHOTS / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    if trickle.stop.wait(trickle.pause):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def test_a_slow_store_cannot_hold_a_request_past_the_deadline(make_client: MakeClient) -> None:
    """Reading the snapshots is part of the check: with --check-timeout 1 the answer is a 503
    after about a second, and the reading thread stops there too (its slot comes back)."""
    trickle = _Trickle(pause=0.05)
    try:
        with serve_http(trickle.handler()) as base:
            client = make_client(snapshot_dir=base, check_timeout=1.0, max_concurrent=1)
            started = time.monotonic()
            resp = client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
            took = time.monotonic() - started
            assert (resp.status_code, resp.json()) == (503, {"error": "check timed out after 1s"})
            assert 0.9 < took < 2.0, took
            lookups = client.app.state.hook.checker._lookups  # type: ignore[attr-defined]
            deadline = time.monotonic() + 3
            while lookups.taken and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lookups.taken == 0
    finally:
        trickle.stop.set()


def test_lookups_over_the_limit_are_429_at_once(make_client: MakeClient) -> None:
    """Reading and hashing happen in a slot too: 8 lookups per check slot, then 429 at once."""
    trickle = _Trickle(pause=0.05)
    try:
        with serve_http(trickle.handler()) as base:
            client = make_client(snapshot_dir=base, check_timeout=3.0, max_concurrent=1)
            results: list[int] = []

            def call() -> None:
                r = client.post("/v1/check", json=body("shop", "v1", "v2"), headers=AUTH)
                results.append(r.status_code)

            threads = [threading.Thread(target=call) for _ in range(8)]
            for t in threads:
                t.start()
            lookups = client.app.state.hook.checker._lookups  # type: ignore[attr-defined]
            deadline = time.monotonic() + 3
            while lookups.taken < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.monotonic()
            busy = client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH)
            assert time.monotonic() - started < 0.5
            assert (busy.status_code, busy.json()) == (
                429,
                {"error": "too many lookups running (limit 8)"},
            )
            trickle.stop.set()
            for t in threads:
                t.join(10)
    finally:
        trickle.stop.set()


# -- cached verdicts follow the exact bytes ----------------------------------------------------

_SEVERE = ("metrics/family-removed", "metrics/label-removed", "metrics/renamed")


def _policy(severity: str) -> str:
    return "severity:\n" + "".join(f"  {kind}: {severity}\n" for kind in _SEVERE)


def test_policy_rewritten_with_same_size_and_mtime_is_not_a_stale_verdict(
    make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust signatures at once (no racy-write window), so that only (size, mtime, ctime) decide.
    monkeypatch.setattr(inputs_module, "_RACY_NS", -(10**18))
    policy = tmp_path / "policy.yaml"
    strict, relaxed = _policy("error"), _policy("info ")
    assert len(strict) == len(relaxed)
    policy.write_text(strict)
    stamp = policy.stat().st_mtime_ns
    client = make_client(policy=(str(policy),))
    req = body("shop", "v3", "v4")
    assert client.post("/v1/check", json=req, headers=AUTH).json()["go"] is False
    policy.write_text(relaxed)
    os.utime(policy, ns=(stamp, stamp))
    assert (policy.stat().st_size, policy.stat().st_mtime_ns) == (len(strict), stamp)
    assert client.post("/v1/check", json=req, headers=AUTH).json()["go"] is True


def test_a_file_changed_during_a_check_never_makes_a_stale_verdict(
    make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict is judged on the bytes its cache key was made of, so a rule file rewritten
    between lookup and evaluation neither leaks into that verdict nor poisons its key."""
    rules = tmp_path / "rules.yml"
    alert = "groups:\n- name: shop\n  rules:\n  - alert: {name}\n    expr: worker_threads < 2\n"
    rules.write_text(alert.format(name="Before"))
    real = Checker.evaluate
    edits = [alert.format(name="During")]

    def evaluate_while_edited(self: Checker, lookup: Any, deadline: float) -> Any:
        if edits:
            rules.write_text(edits.pop())
        return real(self, lookup, deadline)

    monkeypatch.setattr(Checker, "evaluate", evaluate_while_edited)
    client = make_client(consumers=(str(rules),))

    def alerts() -> set[str]:
        resp = client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH)
        return {c["name"] for f in resp.json()["findings"] for c in f["consumers"]}

    assert alerts() == {"Before"}  # judged with what was read, not with the edit
    assert alerts() == {"During"}  # the edit is seen by the next check
    rules.write_text(alert.format(name="Before"))
    assert alerts() == {"Before"}  # and the first key still holds the first verdict


def test_identical_concurrent_cold_requests_share_one_evaluation(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Checker.evaluate
    gate = threading.Event()

    def slow(self: Checker, lookup: Any, deadline: float) -> Any:
        gate.wait(5)
        return real(self, lookup, deadline)

    monkeypatch.setattr(Checker, "evaluate", slow)
    client = make_client(max_concurrent=4)
    answers: list[httpx.Response] = []

    def call() -> None:
        answers.append(client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while metric(client, "compatcheck_hook_checks_shared_total") < 5:
        assert time.monotonic() < deadline, "the requests did not all join one evaluation"
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.content for a in answers}) == 1
    assert metric(client, "compatcheck_hook_check_duration_seconds_count") == 1


def test_a_request_whose_twin_finished_after_its_lookup_is_not_evaluated_again(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bad moment on purpose: B looks up (a miss) while A evaluates; A ends and leaves the
    running set before B asks to run. B must take A's cached verdict, not evaluate again."""
    real_lookup, real_evaluate = Checker.lookup, Checker.evaluate
    a_looked, b_looked, a_answered = threading.Event(), threading.Event(), threading.Event()
    lookups: list[str] = []

    def lookup(self: Checker, req: Any, deadline: float) -> Any:
        found = real_lookup(self, req, deadline)
        lookups.append("x")
        a_looked.set()
        if len(lookups) == 2:  # B's lookup missed: hold it until A has been answered
            b_looked.set()
            assert a_answered.wait(10)
        return found

    def evaluate(self: Checker, lookup: Any, deadline: float) -> Any:
        assert b_looked.wait(10)  # A evaluates only once B has missed too
        return real_evaluate(self, lookup, deadline)

    monkeypatch.setattr(Checker, "lookup", lookup)
    monkeypatch.setattr(Checker, "evaluate", evaluate)
    client = make_client(max_concurrent=4)
    answers: dict[str, httpx.Response] = {}

    def call(name: str) -> None:
        answers[name] = client.post("/v1/check", json=body("shop", "v3", "v4"), headers=AUTH)
        if name == "a":
            a_answered.set()

    a = threading.Thread(target=call, args=("a",))
    a.start()
    b = threading.Thread(target=call, args=("b",))
    assert a_looked.wait(10)  # A's lookup first, so that the held one is B's
    b.start()
    a.join(15)
    b.join(15)
    assert answers["a"].status_code == answers["b"].status_code == 200
    assert metric(client, "compatcheck_hook_check_duration_seconds_count") == 1
    assert metric(client, "compatcheck_hook_checks_shared_total") == 0  # not joined: cached
    assert metric(client, "compatcheck_hook_cache_hits_total") == 1  # B, from A's verdict


# -- slow clients (a real server) --------------------------------------------------------------


@pytest.mark.slow
def test_trickling_clients_do_not_hold_the_server(tmp_path: Path) -> None:
    args = [
        "--snapshot-dir", str(SNAPSHOTS), "--header-timeout", "2", "--body-timeout", "2",
        "--max-connections", "32",
    ]  # fmt: skip
    with hook_process(args, tmp_path / "hook.log") as hook:
        port = int(hook.url.rsplit(":", 1)[1])
        # The verdict is cached first: what is timed below is how the server answers while
        # tricklers hold connections, not how long a cold evaluation takes on a busy machine.
        primed = httpx.post(
            f"{hook.url}/v1/check", json=body("shop", "v1", "v2"), headers=AUTH, timeout=30
        )
        assert primed.status_code == 200, primed.text
        stop = threading.Event()
        closed: list[float] = []
        started = time.monotonic()
        threads = [
            threading.Thread(target=trickle_head, args=(port, stop, closed, 0.2), daemon=True)
            for _ in range(40)
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)  # all 40 are connected and trickling
            # 40 trickling connections exceed the 32 allowed: the server answers 503 until the
            # head timeout drops them, then serves normally again.
            latencies = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                resp = httpx.post(
                    f"{hook.url}/v1/check", json=body("shop", "v1", "v2"), headers=AUTH, timeout=5
                )
                latencies.append(time.monotonic() - t0)
                if resp.status_code == 200:
                    break
                assert resp.status_code == 503, resp.text
                time.sleep(0.1)
            assert resp.status_code == 200
            assert time.monotonic() - started < 2 + 3, "tricklers held the server"
            assert max(latencies) < 1.0, latencies
            for t in threads:
                t.join(5)
            assert len(closed) == 40, f"{len(closed)} of 40 trickling connections were closed"
            assert max(closed) - started < 2 + 3
            # A body that trickles is a 408 after --body-timeout.
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                b"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + TOKEN.encode()
                + b"\r\nContent-Length: 500\r\n\r\n{"
            )
            t0 = time.monotonic()
            answer = b""
            while b"}" not in answer and (more := sock.recv(4096)):
                answer += more
            sock.close()
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b'{"error":"request body not received within 2s"}' in answer
            assert 1.5 < time.monotonic() - t0 < 4
        finally:
            stop.set()
    log = (tmp_path / "hook.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("no request head within 2s") == 40, log[-3000:]
