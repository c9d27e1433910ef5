"""Benchmark: the snapshot gate and the CLI's start-up, whole process, as an operator waits.

``compatcheck diff OLD.snapshot.json NEW.snapshot.json`` is the instant rollback gate (a systemd
``ExecStartPre``, a CI step during an incident). This measures, in fresh processes:

* the gate on two stored 300-family snapshots (the contract of a 35 MB exposition, one family
  renamed between them), against a baseline process that only reads both files with
  ``json.load`` (the floor of any tool that reads them), printed as a ratio;
* ``compatcheck --help`` against ``python -c pass`` (the interpreter's own start-up).

Targets: the gate ≤ 0.25 s, ``--help`` ≤ 0.15 s (medians). Min/median/max wall time over
``--runs``, and the median CPU time (user + system, from ``wait4``): on a shared machine the wall
time is mostly waiting for a core, the CPU time is what compatcheck itself costs.

compatcheck runs as installed: its modules byte-compiled first (``pip install`` compiles them),
``PYTHONDONTWRITEBYTECODE`` dropped from the children's environment. One more row runs the gate
without any bytecode, so that the difference is visible, not hidden: the bytecode prefix is an
empty folder, so every module that is not frozen (compatcheck, its dependencies and the standard
library's) is compiled from source on each start. That is the worst case: a source checkout under
``PYTHONDONTWRITEBYTECODE=1`` lacks only compatcheck's own bytecode and costs much less.

The snapshot schema's compiled validator is kept in the user's cache after a first run; one more
row runs the gate with that cache emptied before each run (a first run after an install or a
schema change, and every run where the cache cannot be written).

``--beside N`` runs N CPU-bound processes for the whole measurement: the "loaded" figures (a
test suite or another job on a 2-core machine) next to the quiet ones.

Run: ``python bench/gate.py [--runs 9] [--size-mb 35] [--beside 1]``. It is a benchmark, not a
test: it prints and exits 0.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import beside, describe  # noqa: E402
from parse import generate_exposition  # noqa: E402

#: The environment compatcheck runs in when installed: bytecode written and read.
_INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: No bytecode read or written, for any module (the standard library's and the dependencies' too):
#: Python looks for it under an empty prefix and writes none there.
_NO_BYTECODE = {
    **_INSTALLED,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir(), "compatcheck-bench-no-bytecode")),
}


def _times(
    argv: list[str],
    runs: int,
    ok: tuple[int, ...] = (0,),
    env: dict[str, str] | None = None,
) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of ``runs`` fresh processes."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=_INSTALLED if env is None else env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = proc.communicate()
        wall.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the children reaped so far
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {err.decode()}")
    return wall, cpu


def _row(label: str, times: tuple[list[float], list[float]]) -> str:
    wall, cpu = times
    return (
        f"{label:<44}{min(wall):>8.3f}{statistics.median(wall):>9.3f}{max(wall):>9.3f}"
        f"{statistics.median(cpu):>9.3f}"
    )


def _measure(
    commands: dict[str, tuple[list[str], dict[str, str]]], runs: int, ok: dict[str, tuple[int, ...]]
) -> dict[str, Any]:
    """Each command ``runs`` times, in turns (a change of load hits them all alike); a command's
    exit status outside ``ok[key]`` (default: 0) stops the benchmark."""
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in commands}
    for _ in range(runs):
        for key, (argv, env) in commands.items():
            wall, cpu = _times(argv, 1, ok.get(key, (0,)), env)
            out[key][0].extend(wall)
            out[key][1].extend(cpu)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--size-mb", type=float, default=35.0)
    ap.add_argument("--beside", type=int, default=0, help="CPU-bound processes running beside")
    args = ap.parse_args()
    py = sys.executable
    compileall.compile_dir(ROOT / "compatcheck", quiet=1)  # as `pip install` leaves it
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
        read = f"import json; json.load(open({str(old)!r})); json.load(open({str(new)!r}))"
        gate = [py, "-m", "compatcheck", "diff", str(old), str(new)]
        cold_cache = Path(tmp, "cache")
        first = ["sh", "-c", f'rm -rf "{cold_cache}" && exec "$@"', "first", *gate]
        commands = {
            "base": ([py, "-c", read], _INSTALLED),
            "gate": (gate, _INSTALLED),
            "first": (first, {**_INSTALLED, "XDG_CACHE_HOME": str(cold_cache)}),
            "bare": ([py, "-c", "pass"], _INSTALLED),
            "help": ([py, "-m", "compatcheck", "--help"], _INSTALLED),
            "source": (gate, _NO_BYTECODE),
        }
        with beside(args.beside):
            # Only the gate's verdict may be NO-GO (exit 1); a failing baseline or --help is a bug.
            got = _measure(commands, args.runs, {"gate": (0, 1), "first": (0, 1), "source": (0, 1)})
    print(f"snapshots: 300 families each, {size:.2f} MB each (from {args.size_mb:g} MB)")
    print(describe(args.beside))
    print(f"{args.runs} runs, seconds{'':<27}{'min':>8}{'median':>9}{'max':>9}{'cpu med':>9}")
    print(_row("baseline: python reads both with json.load", got["base"]))
    print(_row("compatcheck diff OLD.json NEW.json", got["gate"]))
    print(_row("  the same, cache emptied first (+ sh, rm)", got["first"]))
    print(_row("  the same without any bytecode (stdlib too)", got["source"]))
    print(_row("baseline: python -c pass", got["bare"]))
    print(_row("compatcheck --help", got["help"]))
    g, h = statistics.median(got["gate"][0]), statistics.median(got["help"][0])
    gc, hc = statistics.median(got["gate"][1]), statistics.median(got["help"][1])
    print(
        f"gate: {g:.3f} s median ({gc:.3f} s CPU), {g / statistics.median(got['base'][0]):.1f}x "
        f"the json.load baseline; target ≤ 0.25 s: {'met' if g <= 0.25 else 'MISSED'}"
    )
    print(
        f"--help: {h:.3f} s median ({hc:.3f} s CPU), "
        f"{h / statistics.median(got['bare'][0]):.1f}x bare python; "
        f"target ≤ 0.15 s: {'met' if h <= 0.15 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
