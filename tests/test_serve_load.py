"""Load and abuse against a real uvicorn hook on loopback.

``test_load_and_abuse``: 2,000 requests at 50 concurrent after a warm-up of 400 (800 after 160
in the default quick profile; ``HYPOTHESIS_PROFILE=ci``, as ``.ci/run`` sets, runs the full
size). Valid checks, malformed JSON, hostile JSON (1,000 levels deep, 5,000-digit numbers,
repeated keys, lone surrogates in a token), oversized bodies (declared and streamed), unknown
services and versions, missing and wrong tokens, Flagger and Spinnaker calls, all interleaved.
The hook must answer every one with the code its category calls for, never crash, and keep its
memory bounded (RSS of the child process, read from /proc, before and after).

``test_abuse_run``: everything at once with ``--check-timeout 2``: 40 clients trickling their
request heads, clients trickling or abandoning bodies, hostile bodies, a burst of identical and
distinct cold checks of big snapshots, and a caller of cached verdicts timing every answer. No
answer may take longer than the deadline allows, identical cold checks must share one
evaluation, and the figures are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import THOROUGH

from .test_serve_helpers import (
    AUTH,
    SNAPSHOTS,
    TOKEN,
    HookProcess,
    body,
    hook_process,
    trickle_head,
)

TOTAL = 2_000 if THOROUGH else 800
CONCURRENCY = 50
MAX_BODY = 8192  # room for a 5,000-digit number, which must be a 400, not a 413
#: RSS growth allowed over a full run once warm: generous for allocator noise, below a leak
#: (2,000 requests leaking even one report each would be tens of MiB; the quick profile's 800,
#: half that).
RSS_GROWTH_KIB = 24 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    expect: frozenset[int]
    json_body: Any = None
    raw: bytes | None = None
    stream: bool = False
    headers: tuple[tuple[str, str], ...] = tuple(AUTH.items())
    check: Callable[[httpx.Response], bool] | None = None


def _go(value: bool) -> Callable[[httpx.Response], bool]:
    return lambda r: r.json()["go"] is value


CASES = [
    Case("go", "POST", "/v1/check", frozenset({200}), body("shop", "v1", "v2"), check=_go(True)),
    Case(
        "no-go", "POST", "/v1/check", frozenset({200}), body("shop", "v3", "v4"),
        check=_go(False),
    ),
    Case(
        "deploy", "POST", "/v1/check", frozenset({200}),
        body("shop", "v1", "v2", direction="deploy"), check=_go(True),
    ),
    # Never cached (cannot tell): needs a slot, so "busy" is a right answer too.
    Case("cannot-tell", "POST", "/v1/check", frozenset({503, 429}), body("shop", "v0", "v1")),
    Case("malformed", "POST", "/v1/check", frozenset({400}), raw=b'{"service": "shop", "old": '),
    Case("not-object", "POST", "/v1/check", frozenset({400}), raw=b'"shop"'),
    Case("traversal", "POST", "/v1/check", frozenset({400}), body("../../etc", "v1", "v2")),
    Case("oversized", "POST", "/v1/check", frozenset({413}), raw=b" " * (2 * MAX_BODY)),
    Case(
        "oversized-streamed", "POST", "/v1/check", frozenset({413}), raw=b" " * (2 * MAX_BODY),
        stream=True,
    ),
    Case("unknown-service", "POST", "/v1/check", frozenset({404}), body("cart", "v1", "v2")),
    Case("unknown-version", "POST", "/v1/check", frozenset({404}), body("shop", "v1", "v8")),
    Case("no-token", "POST", "/v1/check", frozenset({401}), body("shop", "v1", "v2"), headers=()),
    Case(
        "wrong-token", "POST", "/v1/check", frozenset({401}), body("shop", "v1", "v2"),
        headers=(("Authorization", "Bearer not-" + TOKEN),),
    ),
    Case(
        "flagger-no-go", "POST", "/v1/flagger", frozenset({412}),
        {"name": "shop", "namespace": "prod", "phase": "Progressing",
         "metadata": {"old": "v3", "new": "v4"}},
    ),
    Case("spinnaker", "POST", "/v1/checks", frozenset({202}), body("shop", "v1", "v2")),
    Case("health", "GET", "/healthz", frozenset({200}), headers=()),
    Case(
        "deep-json", "POST", "/v1/check", frozenset({400}),
        raw=b'{"service": "shop", "old": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ),
    Case(
        "5000-digits", "POST", "/v1/check", frozenset({400}),
        raw=b'{"service": "shop", "old": {"version": ' + b"9" * 5000 + b"}}",
    ),
    Case(
        "duplicate-key", "POST", "/v1/check", frozenset({400}),
        raw=b'{"service": "shop", "service": "cart", "old": {"version": "v1"}, '
        b'"new": {"version": "v2"}}',
    ),
    Case(
        "surrogate-token", "POST", "/v1/flagger", frozenset({401}), headers=(),
        raw=b'{"name": "shop", "metadata": {"old": "v1", "new": "v2", "token": "\\ud800"}}',
    ),
]  # fmt: skip


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1024):
        yield data[i : i + 1024]


async def _send(client: httpx.AsyncClient, case: Case) -> tuple[int, float]:
    kwargs: dict[str, Any] = {"headers": dict(case.headers)}
    if case.json_body is not None:
        kwargs["content"] = json.dumps(case.json_body).encode()
        kwargs["headers"]["Content-Type"] = "application/json"
    elif case.raw is not None:
        kwargs["content"] = _chunks(case.raw) if case.stream else case.raw
    started = time.perf_counter()
    resp = await client.request(case.method, case.path, **kwargs)
    elapsed = time.perf_counter() - started
    assert resp.status_code in case.expect, (case.name, resp.status_code, resp.text[:200])
    if resp.status_code >= 400:
        error = resp.json()["error"]
        assert isinstance(error, str) and error and "\n" not in error, (case.name, error)
    if resp.status_code == 429:
        assert resp.headers["retry-after"] == "1"
    if case.check is not None and resp.status_code == 200:
        assert case.check(resp), (case.name, resp.text[:200])
    return resp.status_code, elapsed


async def _run(url: str, total: int) -> tuple[Counter[tuple[str, int]], dict[str, list[float]]]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    codes: Counter[tuple[str, int]] = Counter()
    latencies: dict[str, list[float]] = {c.name: [] for c in CASES}
    queue: asyncio.Queue[Case] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(CASES[i % len(CASES)])

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            case = queue.get_nowait()
            code, elapsed = await _send(client, case)
            codes[(case.name, code)] += 1
            latencies[case.name].append(elapsed)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return codes, latencies


def _requests_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "compatcheck_hook_requests_total"
    )


@pytest.mark.slow
def test_load_and_abuse(tmp_path: Path) -> None:
    args = [
        "--snapshot-dir", str(SNAPSHOTS), "--max-body", str(MAX_BODY),
        "--max-concurrent", "4", "--check-timeout", "10",
    ]  # fmt: skip
    with hook_process(args, tmp_path / "hook.log") as hook:
        _run_load(hook)
        assert hook.proc.poll() is None, hook.log.read_text()
        code = hook.stop()
    assert code == 0
    log = (tmp_path / "hook.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def _run_load(hook: HookProcess) -> None:
    started = time.monotonic()
    # Fill the verdict cache one check at a time (valid checks under load must then be 200,
    # never 429), then warm up so the allocator and lazy imports settle before measuring.
    for case in CASES:
        if case.expect == {200} and case.path == "/v1/check":
            resp = httpx.post(f"{hook.url}{case.path}", json=case.json_body, headers=AUTH)
            assert resp.status_code == 200
    asyncio.run(_run(hook.url, TOTAL // 5))
    rss_before = hook.rss_kib()
    before = _requests_total(hook.url)
    codes, latencies = asyncio.run(_run(hook.url, TOTAL))
    after = _requests_total(hook.url)
    rss_after = hook.rss_kib()
    elapsed = time.monotonic() - started

    per_case = Counter[str]()
    for (name, _), n in codes.items():
        per_case[name] += n
    assert sum(per_case.values()) == TOTAL
    assert set(per_case) == {c.name for c in CASES}
    # +1: the /metrics scrape that read `before` is counted by the time `after` is read.
    assert after - before == TOTAL + 1
    assert httpx.get(f"{hook.url}/healthz", timeout=5).json() == {
        "status": "ok",
        "checks_running": 0,
    }
    growth = rss_after - rss_before
    medians = {name: round(sorted(v)[len(v) // 2] * 1000, 1) for name, v in latencies.items() if v}
    print(
        f"\nload: {TOTAL} requests at {CONCURRENCY} concurrent in {elapsed:.1f}s; "
        f"codes {dict(sorted(Counter(c for _, c in codes.elements()).items()))}; "
        f"RSS {rss_before} → {rss_after} KiB ({growth:+d}); "
        f"median ms per case {medians}"
    )
    assert growth < RSS_GROWTH_KIB, (rss_before, rss_after)
    assert elapsed < 90


# -- the abuse run -----------------------------------------------------------------------------

CHECK_TIMEOUT = 2.0
#: Slack over the deadline for an answer to be written and read on a loaded 2-core machine.
SLACK = 1.0
TRICKLERS = 40


def _exposition(families: int, drop_every: int = 0) -> str:
    out = []
    for i in range(families):
        if drop_every and i % drop_every == 0:
            continue
        out.append(f"# HELP fam_{i}_total Family {i}.\n# TYPE fam_{i}_total counter\n")
        out += [f'fam_{i}_total{{route="/r{j}",code="{200 + j}"}} 1\n' for j in range(20)]
    return "".join(out)


def _big_store(tmp_path: Path) -> tuple[Path, int]:
    """The fixture store plus ``big``: versions of 1,000 families (1.3 MB), one with 20 fewer."""
    from compatcheck.exposition import parse_text
    from compatcheck.snapshot import Snapshot, dump_snapshot

    store = tmp_path / "store"
    shutil.copytree(SNAPSHOTS, store)
    (store / "big").mkdir()
    size = 0
    for version, drop in (("v1", 0), ("v2", 50), ("v3", 25), ("v4", 10)):
        metrics = parse_text(_exposition(1000, drop))
        text = dump_snapshot(Snapshot(label=version, source="generated", metrics=metrics))
        (store / "big" / f"{version}.snapshot.json").write_text(text)
        size = max(size, len(text))
    return store, size


async def _raw(port: int, head: bytes, body: bytes, *, close: bool = False) -> tuple[int, float]:
    """A request written by hand: a head, part of a body, then silence (or a hang-up)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    if close:
        writer.close()
        return 0, time.perf_counter() - started
    status_line = await asyncio.wait_for(reader.readline(), CHECK_TIMEOUT + 10)
    writer.close()
    return int(status_line.split()[1]), time.perf_counter() - started


async def _abuse(url: str, port: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    out: dict[str, Any] = {"codes": Counter(), "latency": {}}

    async def call(client: httpx.AsyncClient, name: str, path: str, **kw: Any) -> int:
        started = time.perf_counter()
        resp = await client.post(path, **kw)
        out["latency"].setdefault(name, []).append(time.perf_counter() - started)
        out["codes"][(name, resp.status_code)] += 1
        if resp.status_code >= 400:
            assert "\n" not in resp.json()["error"], resp.text
        return resp.status_code

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        done = asyncio.Event()

        async def cached_caller() -> None:
            while not done.is_set():
                await call(
                    client, "cached", "/v1/check", json=body("shop", "v3", "v4"), headers=AUTH
                )
                await asyncio.sleep(0.02)

        async def lag() -> None:
            """The most this event loop ran late (a 20 ms sleep that took longer)."""
            out["lag"] = 0.0
            while not done.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.02)
                out["lag"] = max(out["lag"], time.perf_counter() - started - 0.02)

        async def hostile() -> None:
            bad = [c for c in CASES if c.raw is not None and c.expect <= {400, 401, 413}]
            for i in range(200):
                c = bad[i % len(bad)]
                await call(client, "hostile", c.path, content=c.raw, headers=dict(c.headers))

        head = (
            b"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 1000\r\n\r\n"
        )
        burst = [
            call(client, "cold-identical", "/v1/check", json=body("big", "v1", "v2"), headers=AUTH)
            for _ in range(20)
        ] + [
            call(client, "cold-distinct", "/v1/check", json=body("big", old, new), headers=AUTH)
            for old, new in (("v1", "v3"), ("v1", "v4"), ("v3", "v4"), ("v2", "v4"))
        ]
        caller = asyncio.create_task(cached_caller())
        lagging = asyncio.create_task(lag())
        slow_bodies = [_raw(port, head, b'{"service": "sh') for _ in range(20)]
        hang_ups = [_raw(port, head, b'{"service": "sh', close=True) for _ in range(20)]
        started = time.perf_counter()
        results = await asyncio.gather(*burst, hostile(), *slow_bodies, *hang_ups)
        out["wall"] = time.perf_counter() - started
        out["slow_bodies"] = results[len(burst) + 1 : len(burst) + 21]
        done.set()
        await caller
        await lagging
    return out


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    )


def _p(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000


@pytest.mark.slow
def test_abuse_run(tmp_path: Path) -> None:
    store, snapshot_bytes = _big_store(tmp_path)
    args = [
        "--snapshot-dir", str(store), "--max-body", str(MAX_BODY), "--max-concurrent", "2",
        "--check-timeout", str(CHECK_TIMEOUT), "--header-timeout", "2", "--body-timeout", "2",
    ]  # fmt: skip
    with hook_process(args, tmp_path / "hook.log") as hook:
        port = int(hook.url.rsplit(":", 1)[1])

        def post(*pair: str) -> int:
            resp = httpx.post(f"{hook.url}/v1/check", json=body(*pair), headers=AUTH, timeout=10)
            return resp.status_code

        # Cached verdicts for the caller below, and imports warmed up.
        assert [post("shop", "v3", "v4"), post("shop", "v1", "v2")] == [200, 200]
        # The allocator warmed on big snapshots once (another pair than the burst's): a first
        # evaluation may pass the deadline (503); it finishes anyway and the retry is cached.
        deadline = time.monotonic() + 30
        while post("big", "v2", "v3") != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        rss_before = hook.rss_kib()
        evaluations_before = _metric(hook.url, "compatcheck_hook_check_duration_seconds_count")
        stop, closed = threading.Event(), list[float]()
        tricklers = [
            threading.Thread(target=trickle_head, args=(port, stop, closed, 0.25), daemon=True)
            for _ in range(TRICKLERS)
        ]
        started = time.monotonic()
        for t in tricklers:
            t.start()
        try:
            result = asyncio.run(_abuse(hook.url, port))
            for t in tricklers:
                t.join(10)
        finally:
            stop.set()
        trickle_closed = max(closed) - started if closed else float("nan")
        rss_after = hook.rss_kib()
        quiet = time.monotonic() + 15  # evaluations that outlived their callers end
        while httpx.get(f"{hook.url}/healthz", timeout=5).json()["checks_running"]:
            assert time.monotonic() < quiet
            time.sleep(0.1)
        evaluations = _metric(hook.url, "compatcheck_hook_check_duration_seconds_count")
        evaluations -= evaluations_before
        # The burst's evaluation outlived its callers' deadline: it finished and was cached, so
        # their retry is answered without evaluating again.
        retry_started = time.monotonic()
        while post("big", "v1", "v2") != 200:
            assert time.monotonic() - retry_started < 10
            time.sleep(0.2)
        retried = time.monotonic() - retry_started
        again = _metric(hook.url, "compatcheck_hook_check_duration_seconds_count")
        assert again - evaluations_before == evaluations
        shared = _metric(hook.url, "compatcheck_hook_checks_shared_total")
        assert hook.proc.poll() is None
        assert httpx.get(f"{hook.url}/healthz", timeout=5).status_code == 200
        hook.stop()
    log = (tmp_path / "hook.log").read_text()

    codes: Counter[tuple[str, int]] = result["codes"]
    latency: dict[str, list[float]] = result["latency"]
    by_status = Counter[int]()
    for (_, code), n in codes.items():
        by_status[code] += n
    slow_codes = sorted({c for c, _ in result["slow_bodies"]})
    slowest_body = max(t for _, t in result["slow_bodies"])
    lines = [
        f"abuse run ({result['wall']:.1f}s, --check-timeout {CHECK_TIMEOUT:g}, --max-concurrent 2, "
        f"snapshots of {snapshot_bytes / 1e6:.1f} MB): codes {dict(sorted(by_status.items()))}",
        "latency ms p50/p99/max: "
        + "; ".join(
            f"{name} {_p(v, 0.5):.0f}/{_p(v, 0.99):.0f}/{max(v) * 1000:.0f} (n={len(v)})"
            for name, v in sorted(latency.items())
        ),
        f"24 cold checks of 5 distinct pairs: {evaluations:.0f} evaluations, {shared:.0f} joined "
        f"a running one; their retry answered from the cache after {retried:.1f}s; "
        f"20 trickled bodies answered {slow_codes} in {slowest_body:.2f}s max",
        f"{len(closed)}/{TRICKLERS} trickling connections closed by {trickle_closed:.1f}s; "
        f"RSS {rss_before} → {rss_after} KiB ({rss_after - rss_before:+d}); "
        f"this client's event loop ran up to {result['lag'] * 1000:.0f} ms late",
    ]
    print("\n" + "\n  ".join(lines))
    assert 500 not in by_status and "Traceback" not in log, log[-3000:]
    assert {code for (name, code) in codes if name == "hostile"} <= {400, 401, 413}
    assert {code for (name, code) in codes if name.startswith("cold")} <= {200, 429, 503}
    assert {code for (name, code) in codes if name == "cached"} == {200}
    # A latency is measured in this process, so it includes how late this process's own event
    # loop ran (its 100 connections, other jobs on a shared 2-core machine): that lag is added
    # to the slack. It says nothing about the hook (a hook that blocks its loop does not delay
    # ours), and on a quiet machine it is milliseconds. Without it a loaded machine failed the
    # deadline by a scheduler's delay (3.18 s against 3 s).
    slack = SLACK + result["lag"]
    for name, samples in latency.items():
        assert max(samples) < CHECK_TIMEOUT + slack, (name, max(samples), slack)
    assert slow_codes == [408]
    assert slowest_body < 2 + slack
    # 20 identical cold checks share one evaluation; each distinct pair needs at most one.
    assert evaluations <= 5, evaluations
    assert shared >= 1
    assert len(closed) == TRICKLERS and trickle_closed < 2 + 2 + result["lag"]
    assert rss_after - rss_before < 64 * 1024
