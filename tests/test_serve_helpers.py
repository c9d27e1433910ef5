"""Real servers on loopback for the hook's tests: a static file server (the snapshot store over
HTTP), a metrics endpoint that answers when told to (a slow release), and the hook itself as a
child process (``python -m compatcheck.serve``) that announces its port on stderr."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.httpserve import serve_http as serve_http  # where the serve tests import it

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO / "fixtures" / "snapshots"
METRICS = REPO / "fixtures" / "metrics"
TOKEN = "test-token-5f0c2d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(service: str, old: str, new: str, **extra: Any) -> dict[str, Any]:
    return {"service": service, "old": {"version": old}, "new": {"version": new}, **extra}


def cannot_tell(client: Any, old: str, new: str, error: str) -> dict[str, Any]:
    """Check shop OLD → NEW where the answer must be "cannot tell yet": 503, not a GO, and the
    error word for word; the answer for the caller's further checks."""
    resp = client.post("/v1/check", json=body("shop", old, new), headers=AUTH)
    assert resp.status_code == 503
    data: dict[str, Any] = resp.json()
    assert data["error"] == error
    assert data["go"] is False
    return data


def static_handler(root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def metrics_handler(
    exposition: Path,
    release: threading.Event | None = None,
    delay: float = 0.0,
    arrived: threading.Event | None = None,
) -> type[http.server.BaseHTTPRequestHandler]:
    """A ``/metrics`` endpoint serving ``exposition``, after ``release`` is set or ``delay``;
    ``arrived`` is set as a request comes in (a test waits on it instead of sleeping)."""
    data = exposition.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if arrived is not None:
                arrived.set()
            if release is not None:
                release.wait(30)
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class HookProcess:
    """``python -m compatcheck.serve`` in its own process group, on a free port."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        full_env = {**os.environ, "COMPATCHECK_TOKEN": TOKEN, **(env or {})}
        self._log_fh = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "compatcheck.serve", "--port", "0", *args],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
            start_new_session=True,
        )
        self.url = self._wait_listening()

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            for line in text.splitlines():
                if "listening on " in line:
                    url = line.split("listening on ", 1)[1].split()[0]
                    self._wait_healthy(url, deadline)
                    return url
            if self.proc.poll() is not None:
                raise RuntimeError(f"hook exited {self.proc.returncode}: {text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hook did not start: {self.log.read_text(errors='replace')}")

    @staticmethod
    def _wait_healthy(url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20) -> int:
        self.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(5)
        self._log_fh.close()
        return code


@contextmanager
def hook_process(
    args: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[HookProcess]:
    hook = HookProcess(args, log, env)
    try:
        yield hook
    finally:
        hook.stop()


def trickle_head(port: int, stop: threading.Event, closed: list[float], pause: float) -> None:
    """A slow client ("slowloris"): sends a request head one byte per ``pause`` seconds until
    ``stop``; when the server closes the connection, notes the time in ``closed``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = b"POST /v1/check HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10_000
    try:
        for i in range(len(head)):
            if stop.wait(pause):
                return
            sock.sendall(head[i : i + 1])
    except OSError:
        closed.append(time.monotonic())
    finally:
        sock.close()


def hook_clients() -> Iterator[Any]:
    """A ``make_client`` fixture's body: Starlette TestClients of the hook app for settings
    overriding the fixture store and token; ``raise_server_exceptions=False`` answers a server
    error as the hook would (500) instead of raising it. Closed when the test ends."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from compatcheck.serve import ServeSettings, create_app

    clients: list[TestClient] = []

    def make(*, raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
        settings = ServeSettings(**{"snapshot_dir": str(SNAPSHOTS), "token": TOKEN, **overrides})
        client = TestClient(create_app(settings), raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
