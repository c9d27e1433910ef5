"""Real services for the tests: start one on a free loopback port, and stop it for sure.

A service prints ``listening on HOST:PORT`` (or ``http://HOST:PORT``) when it is ready to
accept connections, having bound port 0 itself, so no port is guessed and none is raced for. It
runs in its own process group, killed on the way out whatever happened.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

_LISTENING = re.compile(r"listening on (?:http://)?([\w.\[\]:-]+:\d+)")
#: Prometheus's default Accept header (text 0.0.4 is only its fallback).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
TEXT_ACCEPT = "text/plain;version=0.0.4"


@contextmanager
def serving(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run ``argv`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"{argv[0]}: no `listening on` within {timeout:g} s") from None
            if line is None:
                raise RuntimeError(f"{argv[0]} exited ({proc.wait()}): {''.join(seen)[-2000:]}")
            seen.append(line)
            m = _LISTENING.search(line)
            if m:
                yield f"http://{m.group(1)}"
                return
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def fetch(url: str, accept: str) -> tuple[str, bytes]:
    """One GET with the given Accept header: (Content-Type, body)."""
    resp = httpx.get(url, headers={"Accept": accept}, timeout=10.0)
    resp.raise_for_status()
    return resp.headers.get("content-type", ""), resp.content
