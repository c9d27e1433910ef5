"""The console entry point as the tests run it: ``python -m compatcheck`` in a child process.

One place for it, so every test runs the real command the same way (its own process, stdout and
stderr captured, a timeout so a hang fails instead of stalling the suite).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(
    *args: str, cwd: Path | None = REPO, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``compatcheck ARGS`` run to its end in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "compatcheck", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def run_all(*argvs: Sequence[str], cwd: Path = REPO) -> list[subprocess.CompletedProcess[str]]:
    """Several independent runs of the console entry point at once, in order: a run that starts
    releases mostly waits on them, so two cost about one run's time on two cores."""
    procs = [
        (list(argv), subprocess.Popen(
            [sys.executable, "-m", "compatcheck", *argv], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))
        for argv in argvs
    ]  # fmt: skip
    out = []
    try:
        for argv, proc in procs:
            stdout, stderr = proc.communicate(timeout=180)
            out.append(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr))
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a refused run prints on stderr (never a traceback), after checking its exit
    code."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def run_here(*args: str) -> subprocess.CompletedProcess[str]:
    """``compatcheck ARGS`` through :func:`compatcheck.cli.main` in this process, its output
    captured: for refusals that end before anything starts, where a child process would only
    spend a second importing SQLAlchemy and Alembic again. The same one line and exit code."""
    import contextlib
    import io

    from compatcheck.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["compatcheck", *args], code, out.getvalue(), err.getvalue())
