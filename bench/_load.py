"""The "loaded" condition of the benchmarks: CPU-bound processes running beside the measurement.

The targets must hold on a 2-core machine with a test suite or another job running beside it;
``--beside N`` makes that condition reproducible instead of whatever the machine happens to run.
CPU time (user + system) is printed beside wall time everywhere: on a shared machine the wall
time is mostly waiting for a core, the CPU time is what compatcheck itself costs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def beside(n: int) -> Iterator[None]:
    """``n`` CPU-bound processes running for as long as the block does."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(n, 0))]
    try:
        yield
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def describe(n: int) -> str:
    """One line: the machine's cores and load, and what ran beside."""
    import os

    extra = f", {n} CPU-bound process(es) started beside" if n else ""
    return f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}{extra}"
