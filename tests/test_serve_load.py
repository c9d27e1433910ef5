"""Load and abuse: 2,000+ requests at 50 concurrent against a real uvicorn hook on loopback.

Valid checks, malformed JSON, oversized bodies (declared and streamed), unknown services and
versions, missing and wrong tokens, Flagger and Spinnaker calls, all interleaved. The hook must
answer every one with the code its category calls for, never crash, and keep its memory bounded
(RSS of the child process, read from /proc, before and after).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .test_serve_helpers import AUTH, SNAPSHOTS, TOKEN, HookProcess, body, hook_process

TOTAL = 2_000
CONCURRENCY = 50
MAX_BODY = 4096
#: RSS growth allowed over a full run once warm: generous for allocator noise, far below a leak
#: (2,000 requests leaking even one report each would be tens of MiB).
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
    asyncio.run(_run(hook.url, 400))
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
