"""Cached-verdict latency of the policy hook (target: p99 ≤ 50 ms).

Starts ``python -m compatcheck.serve`` on a free loopback port with the stored ``shop`` snapshots,
primes the verdict cache, then times ``POST /v1/check`` answered from the cache: sequentially on
one keep-alive connection (what one Argo/Flagger/Spinnaker caller sees), and from N concurrent
callers. Prints p50/p90/p99/max in milliseconds.

    python bench/hook.py [--requests 2000] [--concurrency 8]
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


def start_hook(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "COMPATCHECK_TOKEN": TOKEN}
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "compatcheck.serve", "--port", "0",
         "--snapshot-dir", str(REPO / "fixtures" / "snapshots")],
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


def timed_calls(url: str, n: int) -> list[float]:
    out = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=auth) as client:
        for _ in range(n):
            started = time.perf_counter()
            resp = client.post("/v1/check", json=BODY)
            out.append(time.perf_counter() - started)
            if resp.status_code != 200 or resp.json()["go"] is not False:
                raise SystemExit(f"unexpected answer {resp.status_code}: {resp.text[:200]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_hook(Path(tmp) / "hook.log")
        try:
            timed_calls(url, 50)  # prime the cache, warm up the connection and imports
            seq = timed_calls(url, args.requests)
            print(f"cached verdict, 1 caller:  {percentiles(seq)}")
            results: list[list[float]] = [[] for _ in range(args.concurrency)]
            per = max(1, args.requests // args.concurrency)

            def caller(i: int) -> None:
                results[i] = timed_calls(url, per)

            threads = [threading.Thread(target=caller, args=(i,)) for i in range(args.concurrency)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            merged = [x for r in results for x in r]
            print(
                f"cached verdict, {args.concurrency} callers: {percentiles(merged)} "
                f"({len(merged) / wall:.0f} req/s)"
            )
            p99 = sorted(seq)[int(len(seq) * 0.99)] * 1000
            print(f"target p99 <= 50 ms (1 caller): {'met' if p99 <= 50 else 'MISSED'}")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
