"""Benchmark: compatcheck's exposition reader against prometheus_client's parser.

Generates a realistic text-format 0.0.4 exposition (≈300 families, a third of the samples in
histograms, label sets like ``method``/``path``/``status``/``instance``/``pod``) of ``--size-mb``
megabytes, then, in the same run, measures on that one text:

* throughput (MB/s, best of ``--repeat`` runs each, without tracemalloc, which slows allocations
  several-fold and would distort the comparison) of ``parse_text``, ``parse_stream`` (64 KiB
  byte chunks, as ``httpx.Response.iter_bytes`` yields them) and
  ``prometheus_client.parser.text_string_to_metric_families`` (its generator consumed fully,
  families dropped as they come, which is its cheapest use);
* peak memory of each under tracemalloc (the input text and chunk list are allocated before
  tracing starts, so only what the parser itself allocates is counted).

Run: ``python bench/parse.py [--size-mb 35] [--repeat 3]``. It is a benchmark, not a test: it prints
a table and the ratios against the targets (≥ 15× throughput, ≤ 1/5 peak memory) and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from compatcheck.exposition import parse_stream, parse_text

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
                acc = 0
                for le in BUCKETS:
                    acc += rng.randrange(200)
                    block.append(f'{name}_bucket{{{labels},le="{le}"}} {acc}')
                block.append(f"{name}_sum{{{labels}}} {rng.random() * acc:.6g}")
                block.append(f"{name}_count{{{labels}}} {acc}")
            else:
                for q in QUANTILES:
                    block.append(f'{name}{{{labels},quantile="{q}"}} {rng.random():.6e}')
                block.append(f"{name}_sum{{{labels}}} {rng.random() * 1e4:.6g}")
                block.append(f"{name}_count{{{labels}}} {rng.randrange(10**6)}")
        text = "\n".join(block) + "\n"
        out.append(text)
    return "".join(out)


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _consume_prometheus_client(text: str) -> int:
    n = 0
    for fam in text_string_to_metric_families(text):
        n += len(fam.samples)
    return n


def _best_time(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size-mb", type=float, default=35.0, help="exposition size (default 35)")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per parser (best is kept)")
    ap.add_argument(
        "--skip-reference", action="store_true", help="measure only compatcheck (quick iteration)"
    )
    args = ap.parse_args(argv)

    text = generate_exposition(args.size_mb)
    data = text.encode()
    chunks = _chunks(data)
    mb = len(data) / 1e6
    schema = parse_text(text)
    n_samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    n_hist = sum(
        1 for line in text.splitlines() if line and not line.startswith("#") and "duration" in line
    )
    print(
        f"exposition: {mb:.1f} MB, {len(schema.families)} families, {n_samples} samples "
        f"({n_hist / n_samples:.0%} in histograms), "
        f"{sum(f.series for f in schema.families.values())} series"
    )
    assert parse_stream(_iter(chunks)) == schema, "parse_stream and parse_text disagree"

    rows: list[tuple[str, float, int]] = []
    t = _best_time(lambda: parse_text(text), args.repeat)
    rows.append(("compatcheck parse_text", t, _peak(lambda: parse_text(text))))
    t = _best_time(lambda: parse_stream(_iter(chunks)), args.repeat)
    rows.append(("compatcheck parse_stream", t, _peak(lambda: parse_stream(_iter(chunks)))))
    if not args.skip_reference:
        # Best of the same number of runs: its speed varies more from run to run than ours.
        t = _best_time(lambda: _consume_prometheus_client(text), args.repeat)
        rows.append(("prometheus_client", t, _peak(lambda: _consume_prometheus_client(text))))

    print(f"\n{'parser':<28}{'seconds':>10}{'MB/s':>10}{'peak MB':>10}")
    for name, secs, peak in rows:
        print(f"{name:<28}{secs:>10.3f}{mb / secs:>10.1f}{peak / 1e6:>10.2f}")
    if not args.skip_reference:
        ref_t, ref_peak = rows[-1][1], rows[-1][2]
        print(
            f"\n{'ratio vs prometheus_client':<28}{'speed':>10}{'memory':>10}   target: ≥15x, ≤0.20"
        )
        for name, secs, peak in rows[:-1]:
            print(f"{name:<28}{ref_t / secs:>9.1f}x{peak / ref_peak:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
