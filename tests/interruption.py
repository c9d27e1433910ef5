"""Running the CLI in a child process and interrupting it at a named moment (pause points)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compatcheck.interrupts import PAUSE_ENV, PAUSE_SECONDS_ENV, default_signals_in_child


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a child with the default SIGINT/SIGTERM dispositions.

    Trap: pytest run in the background (``cmd &``, CI, nohup) has SIGINT ignored, every child
    inherits that, and a Python started so never raises KeyboardInterrupt: the signal tests
    would test nothing.
    """
    return subprocess.Popen(argv, preexec_fn=default_signals_in_child(), **kwargs)


def start_cli(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m compatcheck ARGV`` in a session of its own, stderr piped, default signals."""
    return spawn(
        [sys.executable, "-m", "compatcheck", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


@dataclass
class Outcome:
    """A run of the CLI stopped by a signal: its pid, exit code, stderr and own TMPDIR."""

    pid: int
    code: int | None
    stderr: str
    tmp: Path


def interrupt(argv: list[str], point: str, sig: int, tmp: Path, pause: float = 0.5) -> Outcome:
    """Run ``compatcheck ARGV`` until it pauses at ``point``, send ``sig``, wait for the end."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), PAUSE_ENV: point, PAUSE_SECONDS_ENV: str(pause)}
    proc = start_cli(argv, env)
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(f"compatcheck: paused at {point} "):
                proc.send_signal(sig)
                break
        else:
            pytest.fail(f"never paused at {point}: {''.join(seen)}")
        seen.append(proc.stderr.read())
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Outcome(proc.pid, proc.returncode, "".join(seen), tmp)
