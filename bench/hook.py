"""Cached-verdict latency of the policy hook (target: p99 ≤ 50 ms), in process and as replicas.

Starts ``python -m compatcheck.serve`` on a free loopback port with the stored ``shop`` snapshots,
primes the verdict cache, then times ``POST /v1/check`` answered from the cache: sequentially on
one keep-alive connection (what one Argo/Flagger/Spinnaker caller sees), and from N concurrent
callers. Prints p50/p90/p99/max in milliseconds.

With ``--state redis://HOST:PORT/DB`` it then starts two replicas sharing that Redis (under a key
prefix of their own, deleted after) and measures, in the same run, against the in-process hook:

- cached verdict across replicas: the verdict is evaluated on replica A only, then 50 callers
  are spread over A and B (B's first answer comes from Redis, later ones from its own LRU);
- a poll on the other replica (``GET /v1/checks/ID``: always a Redis read) at 50 callers;
- throughput of cached verdicts with one replica vs two (each with ``--state``).

    python bench/hook.py [--requests 2000] [--concurrency 8] [--state redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
BODY = {"service": "shop", "old": {"version": "v3"}, "new": {"version": "v4"}}


def start_hook(log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "COMPATCHECK_TOKEN": TOKEN}
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "compatcheck.serve", "--port", "0",
         "--snapshot-dir", str(REPO / "fixtures" / "snapshots"),
         # 64 lookup slots: 50 callers of cached verdicts are never "busy" (429).
         "--max-concurrent", "8", *extra],
        stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if "listening on " in line:
                return proc, line.split("listening on ", 1)[1].split()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"hook did not start:\n{log.read_text(errors='replace')}")


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)

    def at(q: float) -> float:
        return s[min(len(s) - 1, int(len(s) * q))] * 1000

    return (
        f"n={len(s)} p50={at(0.50):.2f} ms p90={at(0.90):.2f} ms "
        f"p99={at(0.99):.2f} ms max={s[-1] * 1000:.2f} ms"
    )


def p99(samples: list[float]) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000


def timed_calls(url: str | list[str], n: int, poll: str | None = None) -> list[float]:
    """``n`` cached checks (or polls of ``poll``), alternating over ``url`` if it is a list; one
    keep-alive connection per replica."""
    urls = [url] if isinstance(url, str) else url
    out = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    clients = [httpx.Client(base_url=u, headers=auth) for u in urls]
    try:
        for i in range(n):
            client = clients[i % len(clients)]
            started = time.perf_counter()
            resp = client.get(poll) if poll else client.post("/v1/check", json=BODY)
            out.append(time.perf_counter() - started)
            if resp.status_code != 200 or resp.json()["go"] is not False:
                raise SystemExit(f"unexpected answer {resp.status_code}: {resp.text[:200]}")
    finally:
        for client in clients:
            client.close()
    return out


def concurrent(
    urls: list[str], callers: int, total: int, poll: str | None = None
) -> tuple[list[float], float]:
    """``total`` calls from ``callers`` threads, caller i on replica i mod len(urls) (one
    keep-alive connection each, as a controller behind a Service has); the samples and the
    requests per second."""
    results: list[list[float]] = [[] for _ in range(callers)]
    failed: list[BaseException] = []
    per = max(1, total // callers)

    def caller(i: int) -> None:
        try:
            results[i] = timed_calls(urls[i % len(urls)], per, poll)
        except BaseException as exc:  # a thread's SystemExit would vanish silently
            failed.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if failed:
        raise SystemExit(f"{len(failed)} callers failed: {failed[0]}")
    merged = [x for r in results for x in r]
    return merged, len(merged) / wall


def replicas(args: argparse.Namespace, tmp: Path, in_process: tuple[float, float]) -> None:
    """The ``--state`` figures, each with its ratio to the in-process hook's (p99, req/s)."""
    import secrets

    import redis

    prefix = f"compatcheck-bench-{secrets.token_hex(4)}:"
    sep = "&" if "?" in args.state else "?"
    state = ["--state", f"{args.state}{sep}prefix={prefix}"]
    procs = []
    try:
        for name in ("a", "b"):
            procs.append(start_hook(tmp / f"replica-{name}.log", *state))
        urls = [url for _, url in procs]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        job = httpx.post(f"{urls[0]}/v1/checks", json=BODY, headers=auth, timeout=30).json()
        poll = job["location"]
        while httpx.get(urls[1] + poll, headers=auth).json()["status"] == "RUNNING":
            time.sleep(0.05)
        base_p99, base_rps = in_process
        callers = 50
        across, rps2 = concurrent(urls, callers, args.requests)
        print(f"cached verdict across 2 replicas, {callers} callers: {percentiles(across)} "
              f"({rps2:.0f} req/s; p99 ×{p99(across) / base_p99:.2f} of in-process)")  # fmt: skip
        polls, _ = concurrent(urls[1:], callers, args.requests, poll)
        print(f"poll on the other replica (Redis read), {callers} callers: {percentiles(polls)} "
              f"(p99 ×{p99(polls) / base_p99:.2f} of in-process cached verdict)")  # fmt: skip
        _, rps1 = concurrent(urls[:1], callers, args.requests)
        print(f"throughput, cached, {callers} callers: in-process {base_rps:.0f} req/s, "
              f"1 replica with --state {rps1:.0f} req/s (×{rps1 / base_rps:.2f}), "
              f"2 replicas {rps2:.0f} req/s (×{rps2 / base_rps:.2f}; 2 vs 1: ×{rps2 / rps1:.2f}) "
              f"on {os.cpu_count()} CPUs shared with this client")  # fmt: skip
        met = "met" if p99(across) <= 50 else "MISSED"
        print(f"target p99 <= 50 ms (across replicas, {callers} callers): {met}")
    finally:
        for proc, _ in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        client = redis.Redis.from_url(args.state)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--state", metavar="redis://HOST:PORT/DB", help="also bench replicas")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_hook(Path(tmp) / "hook.log")
        try:
            timed_calls(url, 50)  # prime the cache, warm up the connection and imports
            seq = timed_calls(url, args.requests)
            print(f"cached verdict, 1 caller:  {percentiles(seq)}")
            merged, rps = concurrent([url], args.concurrency, args.requests)
            print(f"cached verdict, {args.concurrency} callers: {percentiles(merged)} "
                  f"({rps:.0f} req/s)")  # fmt: skip
            print(f"target p99 <= 50 ms (1 caller): {'met' if p99(seq) <= 50 else 'MISSED'}")
            if args.state:
                fifty, rps50 = concurrent([url], 50, args.requests)
                print(f"cached verdict, in process, 50 callers: {percentiles(fifty)} "
                      f"({rps50:.0f} req/s)")  # fmt: skip
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        if args.state:
            replicas(args, Path(tmp), (p99(fifty), rps50))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
