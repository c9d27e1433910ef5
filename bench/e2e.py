"""Benchmark: the demo ``check`` end to end, split into compatcheck's own work and waiting.

Runs the README's demo (``fixtures/demo/compatcheck.yaml``: shop v1 as OLD, v2 as NEW on SQLite)
``--repeat`` times in-process — config, capture of both releases (concurrently), migrations
inspection, ``evaluate()`` and the JSON report — and reads the stage timings capture records.

* **service start-up**: launch → ready, per release; the slower one bounds any tool;
* **overhead**: wall time minus the slower start-up — everything compatcheck adds (scratch DB
  migration, warm-up, scrapes, probes, migrations inspection, evaluate, report, teardown);
* **overlap**: OLD's and NEW's capture windows summed versus the capture wall time; ≈2× means they
  ran side by side;
* **CPU**: user + system time of this process (every thread: captures, migrations, evaluate),
  the releases' own not included. On a shared machine the wall figures are mostly waiting for a
  core; the CPU time is what compatcheck itself costs, and compares runs made under other loads.

Target: overhead ≤ 0.3 s beyond the slower start-up, OLD and NEW overlapping.
Run: ``python bench/e2e.py [--repeat 3] [--config fixtures/demo/compatcheck.yaml] [--cli]
[--beside N]``; ``--beside N`` runs N CPU-bound processes meanwhile; ``--cli`` also times
``python -m compatcheck check`` as a child process (interpreter start-up and imports included).
It prints a table and exits 0: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import beside, describe  # noqa: E402

from compatcheck.capture import run_check  # noqa: E402
from compatcheck.config import load_config  # noqa: E402


def one_run(config_path: Path) -> dict[str, float]:
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.reporters import render

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    config = load_config(config_path)
    result = run_check(config)
    t_eval = time.perf_counter()
    report = evaluate(
        result.old,
        result.new,
        EvaluateOptions(
            consumers=tuple(str(p) for p in config.consumers if p.exists()),
            extra_findings=tuple(result.findings),
            migrations=result.migrations,
            timings=result.timings,
        ),
    )
    render(report, "json")
    end = time.perf_counter()
    t = dict(result.timings)
    t["cpu"] = time.process_time() - cpu0
    t["evaluate+report"] = end - t_eval
    t["wall"] = end - t0
    t["slowest_startup"] = max(t.get("old.ready", 0.0), t.get("new.ready", 0.0))
    t["overhead"] = t["wall"] - t["slowest_startup"]
    t["overlap"] = (t.get("old.total", 0.0) + t.get("new.total", 0.0)) / t["capture"]
    t["verdict_no_go"] = 0.0 if report.go else 1.0
    return t


def cli_run(config_path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "compatcheck", "check", "-c", str(config_path), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "fixtures/demo/compatcheck.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cli", action="store_true", help="also time the CLI as a child process")
    parser.add_argument("--beside", type=int, default=0, help="CPU-bound processes running beside")
    args = parser.parse_args()

    one_run(args.config)  # warm the imports and the OS page cache; not counted
    load_before = os.getloadavg()[0]
    with beside(args.beside):
        runs = [one_run(args.config) for _ in range(args.repeat)]
        cli_times = [cli_run(args.config) for _ in range(args.repeat)] if args.cli else []
    print(describe(args.beside) + f" (at the start: {load_before:.1f})")

    def med(key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in runs)

    rows = [
        ("wall (config → JSON report)", "wall"),
        ("OLD start-up (launch → ready)", "old.ready"),
        ("NEW start-up (launch → ready)", "new.ready"),
        ("slower start-up", "slowest_startup"),
        ("OLD scratch DB migrate", "old.migrate"),
        ("NEW scratch DB migrate", "new.migrate"),
        ("NEW warm-up", "new.warmup"),
        ("NEW scrapes (one pause between)", "new.scrape"),
        ("NEW probes", "new.probe"),
        ("migrations inspection", "migrations"),
        ("teardown", "teardown"),
        ("evaluate + report", "evaluate+report"),
        ("overhead (wall − slower start-up)", "overhead"),
        ("CPU time of this process", "cpu"),
    ]
    print(f"demo check, {args.config.name}, median of {args.repeat} runs")
    for title, key in rows:
        print(f"  {title:<36} {med(key):7.3f} s")
    over = [r["overhead"] for r in runs]
    print(f"  {'overhead min / max':<36} {min(over):7.3f} / {max(over):.3f} s")
    print(f"  {'OLD/NEW overlap (Σ capture / wall)':<36} {med('overlap'):7.2f} ×")
    verdict = "no-go" if med("verdict_no_go") else "go"
    ok = med("overhead") <= 0.3 and med("overlap") > 1.5
    print(
        f"  verdict {verdict}; target overhead ≤ 0.300 s and overlap > 1.5×: "
        + ("met" if ok else "MISSED")
    )
    if cli_times:
        wall = statistics.median(t for t, _ in cli_times)
        print(f"  CLI child process wall (exit {cli_times[0][1]}): {wall:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
