"""Cached-verdict latency of the policy hook (target: p99 ≤ 50 ms), in process and as replicas;
its cold verdict over two big stored snapshots (target: ≤ 1 s, memory ≤ 5× a snapshot's size).

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

Cold verdict (``--cold-runs``, 0 to skip): two stored snapshots of ``--cold-mb`` MB each
(kube-state-metrics-like: 64 values for each of five labels in every family), never seen by the
hook, judged by ``POST /v1/check``: min/median/max over fresh pairs, against the same run's floor
(``json.loads`` of both files in this process) and ``compatcheck diff`` of one pair (whole
process). Then a pair sharing one side with the last one (parses only the other: about half a
cold verdict), and the hook's peak resident set above its idle size, per snapshot size.

    python bench/hook.py [--requests 2000] [--concurrency 8] [--cold 40]
                         [--state redis://127.0.0.1:6379/0] [--cold-runs 5] [--cold-mb 13]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import statistics
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


def start_hook(
    log: Path, *extra: str, store: Path = REPO / "fixtures" / "snapshots"
) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "COMPATCHECK_TOKEN": TOKEN}
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "compatcheck.serve", "--port", "0",
         "--snapshot-dir", str(store),
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


def ab_calls(urls: list[str], callers: int, total: int, tmp: Path) -> tuple[list[float], float]:
    """The same cached checks from ApacheBench (``ab``, C: it takes next to no CPU from the
    hooks, unlike 50 Python threads), callers split evenly over ``urls``; every request's time
    (``-g``) pooled, and the requests per second summed. Each ``ab`` run is checked: no failed
    and no non-2xx answer."""
    body = tmp / "ab-body.json"
    body.write_text(json.dumps(BODY))
    runs = []
    for i, url in enumerate(urls):
        cmd = ["ab", "-q", "-k", "-n", str(total // len(urls)), "-c", str(callers // len(urls)),
               "-p", str(body), "-T", "application/json", "-H", f"Authorization: Bearer {TOKEN}",
               "-g", str(tmp / f"ab-{i}.tsv"), f"{url}/v1/check"]  # fmt: skip
        runs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    samples: list[float] = []
    rps = 0.0
    for i, run in enumerate(runs):
        out = run.communicate()[0]
        if run.returncode != 0 or "Non-2xx" in out or "Failed requests:        0" not in out:
            raise SystemExit(f"ab against {urls[i]} failed:\n{out}")
        rps += float(out.split("Requests per second:")[1].split()[0])
        rows = (tmp / f"ab-{i}.tsv").read_text().splitlines()[1:]
        samples += [int(row.split("\t")[4]) / 1000 for row in rows]  # ttime, ms
    return samples, rps


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
        print(f"target p99 <= 50 ms (across replicas, {callers} Python callers): {met}")
        if shutil.which("ab"):
            one, ab1 = ab_calls(urls[:1], callers, args.requests * 2, tmp)
            two, ab2 = ab_calls(urls, callers, args.requests * 2, tmp)
            print(f"ab, 1 replica, {callers} callers: {percentiles(one)} ({ab1:.0f} req/s)")
            print(f"ab, across 2 replicas, {callers} callers: {percentiles(two)} ({ab2:.0f} "
                  f"req/s; ×{ab2 / ab1:.2f} of one)")  # fmt: skip
            met = "met" if p99(two) <= 50 else "MISSED"
            print(f"target p99 <= 50 ms (across replicas, {callers} callers, ab): {met}")
        else:
            print("ab (apache2-utils) not installed: no measurement without client threads")
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


def wide_exposition(families: int, seed: int = 3) -> str:
    """An exposition shaped like kube-state-metrics': every family has 64 series and five labels
    with 64 values each (the schema keeps up to 64 values per label: a snapshot at its widest)."""
    rng = random.Random(seed)
    out = []
    for f in range(families):
        name = f"kube_pod_container_status_{f}"
        out.append(f"# HELP {name} Status of container {f}.\n# TYPE {name} gauge\n")
        for s in range(64):
            out.append(
                f'{name}{{namespace="team-{s}-namespace",pod="app-{s:02d}-7d9f8b6c4-x{f % 7}",'
                f'container="container-{s}",node="ip-10-0-{s}-{f % 13}.ec2.internal",'
                f'reason="Reason{s}"}} {rng.randrange(2)}\n'
            )
    return "".join(out)


def big_store(tmp: Path, size_mb: float, versions: int) -> tuple[Path, float]:
    """A snapshot store with ``versions`` distinct snapshots of service ``big`` (v0, v1, ...),
    each with one family renamed; their size in MB."""
    families = max(1, round(size_mb / 13.1 * 1200))
    prom, first = tmp / "big.prom", tmp / "big.snapshot.json"
    prom.write_text(wide_exposition(families))
    subprocess.run(
        [sys.executable, "-m", "compatcheck", "snapshot", str(prom), "-o", str(first), "-q"],
        check=True,
        cwd=REPO,
    )
    doc = json.loads(first.read_text())
    store = tmp / "store"
    (store / "big").mkdir(parents=True)
    # The small fixtures too: the hook warms up on them, so that its idle size counts its
    # imports and first-use costs but nothing of a big snapshot.
    shutil.copytree(REPO / "fixtures" / "snapshots" / "shop", store / "shop")
    fams = doc["metrics"]["families"]
    for v in range(versions):
        renamed = dict(fams[v % len(fams)], name=f"kube_pod_container_state_{v}")
        variant = dict(doc, label=f"v{v}")
        variant["metrics"] = dict(doc["metrics"], families=[*fams[:v], renamed, *fams[v + 1 :]])
        text = json.dumps(variant, indent=2, sort_keys=True)
        (store / "big" / f"v{v}.snapshot.json").write_text(text)
    return store, (store / "big" / "v0.snapshot.json").stat().st_size / 1e6


def _rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in bytes, from /proc (empty where there is none)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        k: int(v.split()[0]) * 1024
        for k, v in (line.split(":", 1) for line in lines)
        if k in ("VmRSS", "VmHWM")
    }


def _row(label: str, times: tuple[list[float], list[float]]) -> str:
    wall, cpu = times
    return (
        f"{label:<48}{min(wall):>8.3f}{statistics.median(wall):>9.3f}{max(wall):>9.3f}"
        f"{statistics.median(cpu):>9.3f}"
    )


def _cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold(args: argparse.Namespace, tmp: Path) -> None:
    """The cold-verdict figures (see the module docstring), each run's floor, whole-process diff
    and hook verdict measured in turns, so that a change of load hits them alike."""
    runs = args.cold_runs
    # Pair i is (v2i+1, v2i+2) (v0 is not used); the last check shares v2·runs.
    store, size = big_store(tmp, args.cold_mb, 2 * runs + 2)
    files = [store / "big" / f"v{v}.snapshot.json" for v in range(2 * runs + 2)]
    proc, url = start_hook(tmp / "cold.log", store=store)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    got: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("floor", "whole", "cold", "shared")
    }
    try:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as client:

            def check(key: str, old: int, new: int) -> None:
                ask = {"service": "big", "old": {"version": f"v{old}"}}
                ask["new"] = {"version": f"v{new}"}
                cpu, started = _cpu(proc.pid), time.perf_counter()
                resp = client.post("/v1/check", json=ask)
                got[key][0].append(time.perf_counter() - started)
                got[key][1].append(_cpu(proc.pid) - cpu)
                # A family renamed on each side: a real verdict is NO-GO.
                if resp.status_code != 200 or resp.json()["go"] is not False:
                    raise SystemExit(f"unexpected answer {resp.status_code}: {resp.text[:200]}")

            warm = client.post("/v1/check", json=BODY)  # imports, first-use costs
            if warm.status_code != 200:
                raise SystemExit(f"unexpected answer {warm.status_code}: {warm.text[:200]}")
            idle = _rss(proc.pid).get("VmHWM", 0)
            for i in range(runs):
                old, new = files[2 * i + 1], files[2 * i + 2]
                cpu, started = time.process_time(), time.perf_counter()
                json.loads(old.read_bytes())
                json.loads(new.read_bytes())
                got["floor"][0].append(time.perf_counter() - started)
                got["floor"][1].append(time.process_time() - cpu)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                argv = ["diff", str(old), str(new), "-q", "--format", "json"]
                diff = subprocess.run(
                    [sys.executable, "-m", "compatcheck", *argv],
                    cwd=REPO,
                    capture_output=True,
                    check=False,
                )
                got["whole"][0].append(time.perf_counter() - started)
                # The same NO-GO as the hook's (exit 1): a diff that failed early is no reference.
                if diff.returncode != 1:
                    raise SystemExit(f"diff: exit {diff.returncode}: {diff.stderr[-200:]!r}")
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                got["whole"][1].append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )
                check("cold", 2 * i + 1, 2 * i + 2)
            check("shared", 2 * runs, 2 * runs + 1)  # v2·runs is kept from the last pair
            peak = _rss(proc.pid).get("VmHWM", 0)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    print(f"\ncold verdict: two stored snapshots of {size:.1f} MB each, {runs} fresh pairs")
    print(f"seconds{'':<41}{'min':>8}{'median':>9}{'max':>9}{'cpu med':>9}")
    print(_row("floor: json.loads of both (this process)", got["floor"]))
    print(_row("compatcheck diff OLD NEW (whole process)", got["whole"]))
    print(_row("hook POST /v1/check, cold (neither parsed)", got["cold"]))
    print(_row("hook POST /v1/check, one side parsed before", got["shared"]))
    med = statistics.median(got["cold"][0])
    cpu_med = statistics.median(got["cold"][1])
    print(
        f"cold verdict: {med:.3f} s median ({cpu_med:.3f} s CPU), "
        f"{med / statistics.median(got['floor'][0]):.1f}x the json.load floor, "
        f"{med / statistics.median(got['whole'][0]):.2f}x compatcheck diff; sharing one side: "
        f"{statistics.median(got['shared'][0]) / med:.2f}x a cold one; target ≤ 1 s: "
        f"{'met' if med <= 1 else 'MISSED'}"
    )
    if idle and peak:
        grew = (peak - idle) / 1e6
        print(
            f"memory: peak resident {peak / 1e6:.0f} MB, {grew:.0f} MB above the peak when idle "
            f"({idle / 1e6:.0f} MB) = {grew / size:.1f}x one snapshot, {grew / size / 2:.1f}x the "
            "pair; target ≤ 5x (one snapshot): "
            f"{'met' if grew / size <= 5 else 'MISSED'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--state", metavar="redis://HOST:PORT/DB", help="also bench replicas")
    parser.add_argument(
        "--cold", type=int, default=40, metavar="PAIRS", help="image pairs judged cold (0: none)"
    )
    parser.add_argument("--cold-runs", type=int, default=5, help="cold verdicts (0: none)")
    parser.add_argument("--cold-mb", type=float, default=13.0, help="size of each snapshot")
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
        if args.cold_runs > 0:
            cold(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
