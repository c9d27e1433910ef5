"""Benchmark: compatcheck's exposition reader against prometheus_client and promtool.

Three inputs, each measured in the same run against the references:

* **repetitive**: a generated text-format 0.0.4 exposition (≈300 families, a third of the
  samples in histograms, label sets like ``method``/``path``/``status``/``instance``/``pod`` that
  repeat across series) of ``--size-mb`` megabytes;
* **high-cardinality**: generated like cAdvisor's or kube-state-metrics' output, every series
  with its own container id, path and instance (no label set repeats);
* **real-world**: an exposition captured from a real exporter (node_exporter, committed under
  ``fixtures/expositions/realworld/``), parsed many times per run because it is small.

For each: throughput (MB/s, min/median/max over ``--repeat`` runs, without tracemalloc, which
slows allocations several-fold) of ``parse_text``, ``parse_stream`` (64 KiB byte chunks, as
``httpx.Response.iter_bytes`` yields them), ``prometheus_client``'s parser (its generator
consumed fully, families dropped as they come, its cheapest use) and, where installed,
``promtool check metrics`` (whole process, resident set); peak memory under tracemalloc (the
input is allocated before tracing starts). Targets: ≥ 90 MB/s repetitive, ≥ 40 MB/s
high-cardinality, memory flat in the number of samples (printed as the peak at full vs half
size).

``--beside N`` runs N CPU-bound processes meanwhile (the loaded figures); the ``cpu med`` column
is MB per CPU second, what the parser costs whatever else the machine runs.

Run: ``python bench/parse.py [--size-mb 35] [--repeat 5] [--beside 1]``. It is a benchmark, not a
test: it prints the tables and ratios and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import beside, describe
from prometheus_client.parser import text_string_to_metric_families

from compatcheck.exposition import parse_stream, parse_text
from tests.exposition_text import Labels, series_lines

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
STATUSES = ("200", "201", "204", "301", "400", "401", "403", "404", "429", "500", "502", "503")
PATHS = tuple(
    f"/api/v{v}/{res}{suffix}"
    for v in (1, 2)
    for res in ("users", "orders", "payments", "carts", "products", "sessions", "search", "health")
    for suffix in ("", "/{id}", "/{id}/items")
)
INSTANCES = tuple(f"10.42.{i // 8}.{10 + i}:8080" for i in range(24))
PODS = tuple(
    f"checkout-api-7d9f8b6c4-{random.Random(i).getrandbits(40):010x}"[:-5] for i in range(90)
)
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
QUANTILES = ("0.5", "0.9", "0.95", "0.99")
SUBSYSTEMS = ("http_server", "grpc_server", "db_client", "cache", "queue", "worker", "auth", "jobs")
NOUNS = ("requests", "errors", "connections", "operations", "messages", "retries", "bytes", "calls")


def _label_domains(rng: random.Random) -> list[tuple[str, tuple[str, ...]]]:
    """A realistic label schema for one family: a few of the usual keys, always a pod/instance."""
    keys: list[tuple[str, tuple[str, ...]]] = []
    if rng.random() < 0.8:
        keys.append(("method", METHODS))
    if rng.random() < 0.7:
        keys.append(("path", PATHS))
    if rng.random() < 0.6:
        keys.append(("status", STATUSES))
    keys.append(("instance", INSTANCES) if rng.random() < 0.5 else ("pod", PODS))
    return keys


def _series_labels(domains: list[tuple[str, tuple[str, ...]]], index: int) -> str:
    """The ``index``-th distinct label set of a family (mixed radix over the domains)."""
    parts = []
    for key, values in domains:
        parts.append(f'{key}="{values[index % len(values)]}"')
        index //= len(values)
    return ",".join(parts)


def _with(labels: str) -> Labels:
    """The label set ``labels`` as written, with one more label or none."""
    return lambda extra: (
        f"{{{labels}}}" if extra is None else f'{{{labels},{extra[0]}="{extra[1]}"}}'
    )


def generate_exposition(size_mb: float, seed: int = 42) -> str:
    """A deterministic 0.0.4 exposition of about ``size_mb`` MB (≈300 families)."""
    rng = random.Random(seed)
    target = int(size_mb * 1_000_000)
    # Per family: (name, type, help, label domains, relative weight); series counts are then
    # scaled so the text reaches the target size with histograms ≈ a third of the samples.
    specs: list[tuple[str, str, list[tuple[str, tuple[str, ...]]]]] = []
    for i in range(300):
        sub = SUBSYSTEMS[i % len(SUBSYSTEMS)]
        noun = NOUNS[(i // len(SUBSYSTEMS)) % len(NOUNS)]
        kind = ("counter", "gauge", "counter", "histogram", "gauge", "summary")[i % 6]
        if kind == "counter":
            name = f"{sub}_{noun}_{i}_total"
        elif kind == "histogram":
            name = f"{sub}_{noun}_duration_seconds_{i}"
        elif kind == "summary":
            name = f"{sub}_{noun}_latency_seconds_{i}"
        else:
            name = f"{sub}_{noun}_in_flight_{i}"
        specs.append((name, kind, _label_domains(rng)))
    lines_per_series = {"counter": 1, "gauge": 1, "histogram": len(BUCKETS) + 2, "summary": 6}
    caps = []
    for _, _, domains in specs:
        cap = 1
        for _, values in domains:
            cap *= len(values)
        caps.append(cap)
    total_lines = target / 118  # ≈ bytes per sample line
    # A third of the sample lines in histograms, the rest spread over the other families; a
    # family never has more series than its label domains allow (water-filling).
    series = [0] * len(specs)
    for is_hist, share in ((True, 1 / 3), (False, 2 / 3)):
        group = [i for i, s in enumerate(specs) if (s[1] == "histogram") == is_hist]
        lines_left = total_lines * share
        while group:
            per_family = lines_left / len(group)
            capped = [i for i in group if caps[i] * lines_per_series[specs[i][1]] <= per_family]
            if not capped:
                for i in group:
                    series[i] = max(1, int(per_family / lines_per_series[specs[i][1]]))
                break
            for i in capped:
                series[i] = caps[i]
                lines_left -= caps[i] * lines_per_series[specs[i][1]]
                group.remove(i)
    out: list[str] = []
    for (name, kind, domains), n_series in zip(specs, series, strict=True):
        block = [
            f"# HELP {name} Total {kind} of {name.replace('_', ' ')}.",
            f"# TYPE {name} {kind}",
        ]
        for s in range(n_series):
            labels = _series_labels(domains, s)
            if kind == "counter":
                block.append(f"{name}{{{labels}}} {rng.randrange(10**7)}")
            elif kind == "gauge":
                v = "NaN" if rng.random() < 0.01 else repr(round(rng.random() * 1000, 4))
                ts = f" {1700000000000 + s}" if rng.random() < 0.02 else ""
                block.append(f"{name}{{{labels}}} {v}{ts}")
            elif kind == "histogram":
                counts = list(itertools.accumulate(rng.randrange(200) for _ in BUCKETS))
                buckets = zip(BUCKETS, map(str, counts), strict=True)
                total = (f"{rng.random() * counts[-1]:.6g}", str(counts[-1]))
                block += series_lines(name, kind, _with(labels), buckets, total)
            else:
                quantiles = [(q, f"{rng.random():.6e}") for q in QUANTILES]
                total = (f"{rng.random() * 1e4:.6g}", str(rng.randrange(10**6)))
                block += series_lines(name, kind, _with(labels), quantiles, total)
        text = "\n".join(block) + "\n"
        out.append(text)
    return "".join(out)


def generate_high_cardinality(size_mb: float, seed: int = 7) -> str:
    """A 0.0.4 exposition shaped like cAdvisor's or kube-state-metrics': every series has its own
    container id, filesystem path and instance address, so no label set repeats."""
    rng = random.Random(seed)
    names = [
        ("container_fs_reads_bytes_total", "counter"),
        ("container_fs_writes_bytes_total", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("container_cpu_usage_seconds_total", "counter"),
        ("kube_pod_container_status_restarts_total", "counter"),
        ("container_network_receive_bytes_total", "counter"),
    ]
    per_family = int(size_mb * 1_000_000 / 215 / len(names)) + 1
    out: list[str] = []
    for name, kind in names:
        out.append(f"# HELP {name} {name.replace('_', ' ')}.\n# TYPE {name} {kind}\n")
        for _ in range(per_family):
            pod = f"{rng.getrandbits(64):016x}"
            out.append(
                f'{name}{{container="c{rng.randrange(40)}",'
                f'id="/kubepods/burstable/pod{pod}/{rng.getrandbits(48):012x}",'
                f'image="registry.example.com/team/app:{rng.randrange(400)}",'
                f'instance="10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}:10250",'
                f'namespace="ns-{rng.randrange(30)}",pod="app-{pod[:10]}"}} '
                f"{rng.randrange(10**10)}\n"
            )
    return "".join(out)


#: An exposition captured from a real exporter (node_exporter 1.5.0, Debian's package, on this
#: machine; see fixtures/expositions/realworld/README.md).
REAL_WORLD = (
    Path(__file__).resolve().parent.parent / "fixtures/expositions/realworld/node_exporter.prom"
)


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _consume_prometheus_client(text: str) -> int:
    n = 0
    for fam in text_string_to_metric_families(text):
        n += len(fam.samples)
    return n


Timings = tuple[list[float], list[float]]


def _times(fn: Callable[[], object], repeat: int, inner: int = 1) -> Timings:
    """Wall and CPU seconds per call of ``fn`` over ``repeat`` runs (each the mean of ``inner``
    calls, so that a small input is timed over enough work)."""
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(inner):
            fn()
        wall.append((time.perf_counter() - t0) / inner)
        cpu.append((time.process_time() - c0) / inner)
    return wall, cpu


def _peak(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _iter(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks


def _promtool(data: bytes, repeat: int) -> tuple[Timings, int] | None:
    """``promtool check metrics`` reading the exposition on stdin, whole process: wall times and
    its peak resident set in bytes (0 when GNU time is not installed to measure it: a child's
    ``ru_maxrss`` from ``wait4`` starts from its parent's, which Linux carries across exec).
    None when promtool is not installed."""
    exe = shutil.which("promtool")
    if exe is None:
        return None
    gnu_time = shutil.which("time") or (
        "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    )
    times, cpu, rss = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        exposition, measured = Path(tmp, "in.prom"), Path(tmp, "rss")
        exposition.write_bytes(data)
        for _ in range(repeat):
            argv = [exe, "check", "metrics"]
            if gnu_time:
                argv = [gnu_time, "-f", "%M", "-o", str(measured), *argv]
            with exposition.open("rb") as stdin:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run(argv, stdin=stdin, capture_output=True, check=False)
                times.append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if gnu_time:
                rss = max(rss, int(measured.read_text().split()[-1]) * 1024)
    return (times, cpu), rss


def _row(name: str, mb: float, times: Timings, peak: int) -> str:
    wall, cpu = times
    lo, med, hi = min(wall), statistics.median(wall), max(wall)
    return (
        f"{name:<26}{mb / hi:>8.1f}{mb / med:>8.1f}{mb / lo:>8.1f}"
        f"{mb / max(statistics.median(cpu), 1e-9):>9.1f}{peak / 1e6:>10.2f}"
    )


def measure(label: str, text: str, args: argparse.Namespace, target: float) -> float:
    """Print one input's table; returns our median MB/s (parse_text)."""
    data = text.encode()
    chunks = _chunks(data)
    mb = len(data) / 1e6
    schema = parse_text(text)
    assert parse_stream(_iter(chunks)) == schema, "parse_stream and parse_text disagree"
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    series = sum(f.series for f in schema.families.values())
    # A small input is parsed many times per timing so each run is ≥ about 0.2 s of work.
    inner = max(1, int(4 / max(mb, 0.01)))
    print(
        f"\n## {label}: {mb:.2f} MB, {len(schema.families)} families, {samples} samples, "
        f"{series} series" + (f" (timed {inner}x per run)" if inner > 1 else "")
    )
    print(f"{'parser':<26}{'MB/s min':>8}{'med':>8}{'max':>8}{'cpu med':>9}{'peak MB':>10}")
    ours = _times(lambda: parse_text(text), args.repeat, inner)
    print(_row("compatcheck parse_text", mb, ours, _peak(lambda: parse_text(text))))
    streamed = _times(lambda: parse_stream(_iter(chunks)), args.repeat, inner)
    peak_stream = _peak(lambda: parse_stream(_iter(chunks)))
    print(_row("compatcheck parse_stream", mb, streamed, peak_stream))
    med = mb / statistics.median(ours[0])
    cpu_med = mb / statistics.median(ours[1])
    if not args.skip_reference:
        ref = _times(lambda: _consume_prometheus_client(text), args.repeat, inner)
        ref_peak = _peak(lambda: _consume_prometheus_client(text))
        print(_row("prometheus_client", mb, ref, ref_peak))
        tool = _promtool(data, args.repeat)
        if tool is not None:
            print(_row("promtool check metrics*", mb, tool[0], tool[1]))
        ratio = statistics.median(ref[0]) / statistics.median(ours[0])
        print(
            f"ratio (medians): {ratio:.1f}x prometheus_client's speed, "
            f"{_peak(lambda: parse_text(text)) / ref_peak:.3f}x its peak memory"
            + (
                f"; {statistics.median(tool[0][0]) / statistics.median(ours[0]):.1f}x promtool's "
                "speed"
                if tool is not None
                else ""
            )
        )
    if target:
        verdict = "met" if med >= target else "NOT met"
        print(
            f"target: >= {target:.0f} MB/s (median parse_text): {med:.1f} MB/s, {verdict} "
            f"(by CPU time: {cpu_med:.1f} MB/s)"
        )
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size-mb", type=float, default=35.0, help="generated inputs' size (35)")
    ap.add_argument("--repeat", type=int, default=5, help="timing runs per parser (5)")
    ap.add_argument(
        "--skip-reference", action="store_true", help="measure only compatcheck (quick iteration)"
    )
    ap.add_argument("--beside", type=int, default=0, help="CPU-bound processes running beside")
    args = ap.parse_args(argv)
    print(describe(args.beside))
    high = generate_high_cardinality(args.size_mb)
    with beside(args.beside):
        measure("repetitive (generated)", generate_exposition(args.size_mb), args, 90)
        measure("high-cardinality (generated)", high, args, 40)
        if REAL_WORLD.is_file():
            measure("real-world (node_exporter capture)", REAL_WORLD.read_text(), args, 0)
    # Memory flat in the number of samples: the same shape at half the size must peak alike.
    half = generate_high_cardinality(args.size_mb / 2)
    full_peak = _peak(lambda: parse_text(high))
    half_peak = _peak(lambda: parse_text(half))
    print(
        f"\nmemory vs samples (high-cardinality): peak {half_peak / 1e6:.2f} MB at "
        f"{len(half) / 1e6:.0f} MB, {full_peak / 1e6:.2f} MB at {len(high) / 1e6:.0f} MB "
        f"(ratio {full_peak / max(half_peak, 1):.2f}; flat is about 1)"
    )
    if not args.skip_reference and shutil.which("promtool"):
        print("* promtool: whole process (start-up included), peak = resident set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
