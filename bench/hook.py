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

Cold verdict from the registry (when Debian's ``docker-registry`` is installed): a real
registry on loopback holds ``--cold`` pairs of images, each with its own contract attached
(``compatcheck snapshot --attach``; every contract's bytes differ, so nothing is cached); a hook
with ``allow_images`` judges each pair once (``{"image": ...}`` targets: referrers lookup,
manifest and snapshot fetched and verified, parsed, evaluated). Then the same pairs again: the
verdict is cached but each lookup still asks the registry for the list of referrers (contract
bytes from the hook's content cache).

    python bench/hook.py [--requests 2000] [--concurrency 8] [--cold 40]
                         [--state redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
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


def _push_image(registry: str, repo: str, n: int) -> str:
    """Push a minimal OCI image (a config blob, no layers) numbered ``n``; its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    start = httpx.post(f"{registry}/v2/{repo}/blobs/uploads/")
    location = start.headers["location"]
    location = location if location.startswith("http") else registry + location
    sep = "&" if "?" in location else "?"
    put = httpx.put(f"{location}{sep}digest={config_digest}", content=config)
    put.raise_for_status()
    media = "application/vnd.oci.image.manifest.v1+json"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": media,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [],
    }).encode()  # fmt: skip
    resp = httpx.put(
        f"{registry}/v2/{repo}/manifests/n{n}", content=manifest, headers={"Content-Type": media}
    )
    resp.raise_for_status()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def _start_registry(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    from compatcheck.targets import free_port

    port = free_port()
    config = tmp / "registry.json"  # JSON is YAML
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "registry-data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))  # fmt: skip
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("docker-registry did not start")


def cold_from_registry(pairs: int, tmp: Path) -> None:
    """Cold verdicts of image targets from a real registry, then the same pairs again."""
    from compatcheck.artifact.contract import attach_contract

    if not (shutil.which("docker-registry") or os.access("/usr/bin/docker-registry", os.X_OK)):
        print("cold verdict from the registry: not measured (docker-registry is not installed)")
        return
    registry, url = _start_registry(tmp)
    host = url.removeprefix("http://")
    snapshots = REPO / "fixtures" / "snapshots" / "shop"
    docs = {v: json.loads((snapshots / f"{v}.snapshot.json").read_text()) for v in ("v3", "v4")}
    try:
        bodies = []
        for i in range(pairs):
            refs = {}
            for role, version in (("old", "v3"), ("new", "v4")):
                digest = _push_image(url, "team/shop", 2 * i + (role == "new"))
                refs[role] = f"{host}/team/shop@{digest}"
                doc = {**docs[version], "captured_at": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z"}
                attach_contract(f"oci:{refs[role]}", json.dumps(doc).encode(), doc["captured_at"])
            bodies.append({"service": "shop", "old": {"image": refs["old"]},
                           "new": {"image": refs["new"]}})  # fmt: skip
        config = tmp / "hook-images.yaml"
        config.write_text(f"allow_images: ['{host}/team/*']\n")
        proc, hook = start_hook(tmp / "hook-images.log", "-c", str(config))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            with httpx.Client(base_url=hook, headers=auth, timeout=60) as client:
                client.post("/v1/check", json=bodies[0])  # imports and first connection
                for label, batch in (("cold", bodies[1:]), ("cached verdict", bodies[1:])):
                    samples = []
                    for body in batch:
                        started = time.perf_counter()
                        resp = client.post("/v1/check", json=body)
                        samples.append(time.perf_counter() - started)
                        if resp.status_code != 200 or resp.json()["go"] is not False:
                            raise SystemExit(f"unexpected {resp.status_code}: {resp.text[:200]}")
                    print(f"image targets from the registry, {label}, 1 caller: "
                          f"{percentiles(samples)}")  # fmt: skip
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    finally:
        os.killpg(registry.pid, signal.SIGTERM)
        registry.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--state", metavar="redis://HOST:PORT/DB", help="also bench replicas")
    parser.add_argument(
        "--cold", type=int, default=40, metavar="PAIRS", help="image pairs judged cold (0: none)"
    )
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
        if args.cold > 1:
            cold_from_registry(args.cold, Path(tmp))
        if args.state:
            replicas(args, Path(tmp), (p99(fifty), rps50))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
