"""Benchmark: the snapshot gate and the CLI's start-up, whole process, as an operator waits.

``compatcheck diff OLD.snapshot.json NEW.snapshot.json`` is the instant rollback gate (a systemd
``ExecStartPre``, a CI step during an incident). This measures, in fresh processes:

* the gate on two stored 300-family snapshots (the contract of a 35 MB exposition, one family
  renamed between them), against a baseline process that only reads both files with
  ``json.load`` (the floor of any tool that reads them), printed as a ratio;
* ``compatcheck --help`` against ``python -c pass`` (the interpreter's own start-up).

Targets: the gate ≤ 0.25 s, ``--help`` ≤ 0.15 s (medians). Min/median/max over ``--runs``.

Run: ``python bench/gate.py [--runs 9] [--size-mb 35]``. It is a benchmark, not a test: it prints
and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from parse import generate_exposition  # noqa: E402


def _times(argv: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, cwd=ROOT, check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.decode()}")
    return out


def _row(label: str, times: list[float]) -> str:
    return f"{label:<44}{min(times):>8.3f}{statistics.median(times):>9.3f}{max(times):>9.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--size-mb", type=float, default=35.0)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="compatcheck-bench-") as tmp:
        text = generate_exposition(args.size_mb)
        old_prom, new_prom = Path(tmp, "old.prom"), Path(tmp, "new.prom")
        old_prom.write_text(text)
        new_prom.write_text(text.replace("http_server_requests_0_total", "http_requests_0_total"))
        old, new = Path(tmp, "old.snapshot.json"), Path(tmp, "new.snapshot.json")
        for prom, snap in ((old_prom, old), (new_prom, new)):
            subprocess.run(
                [py, "-m", "compatcheck", "snapshot", str(prom), "-o", str(snap), "-q"],
                check=True,
                cwd=ROOT,
            )
        size = (old.stat().st_size + new.stat().st_size) / 2 / 1e6
        print(f"snapshots: 300 families each, {size:.2f} MB each (from {args.size_mb:g} MB)")
        print(f"{args.runs} runs, seconds{'':<27}{'min':>8}{'median':>9}{'max':>9}")
        read = f"import json; json.load(open({str(old)!r})); json.load(open({str(new)!r}))"
        base = _times([py, "-c", read], args.runs)
        gate = _times([py, "-m", "compatcheck", "diff", str(old), str(new)], args.runs, (0, 1))
        bare = _times([py, "-c", "pass"], args.runs)
        helped = _times([py, "-m", "compatcheck", "--help"], args.runs)
    print(_row("baseline: python reads both with json.load", base))
    print(_row("compatcheck diff OLD.json NEW.json", gate))
    print(_row("baseline: python -c pass", bare))
    print(_row("compatcheck --help", helped))
    g, h = statistics.median(gate), statistics.median(helped)
    print(
        f"gate: {g:.3f} s median, {g / statistics.median(base):.1f}x the json.load baseline; "
        f"target ≤ 0.25 s: {'met' if g <= 0.25 else 'MISSED'}"
    )
    print(
        f"--help: {h:.3f} s median, {h / statistics.median(bare):.1f}x bare python; "
        f"target ≤ 0.15 s: {'met' if h <= 0.15 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
