"""One signal strategy: every command exits 130 on Ctrl-C and 143 on SIGTERM, with one line.

Each run is stopped while its main thread is blocked on a release (or a database server) that
accepted the connection and never answers: the worst moment, a read with no end in sight. Before
the CLI turned SIGTERM into an interrupt for every command, `snapshot URL`, `diff URL` and
`cleanup` died by the signal's default action (no cleanup, no line, status -15).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compatcheck.interrupts import EXITS, Terminated, exit_status, raise_terminated
from compatcheck.targets import Workspace

from .interruption import start_cli

GOOD = Path(__file__).resolve().parent.parent / "fixtures" / "expositions" / "node_app.prom"


class Silent:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def _stop_when_blocked(argv: list[str], server: Silent, sig: int, tmp: Path) -> tuple[int, str]:
    """Run ``compatcheck ARGV``; once it connected to ``server``, send ``sig``; its exit."""
    proc = start_cli(argv, {**os.environ, "TMPDIR": str(tmp)})
    try:
        assert server.accepted.wait(30), "never connected"
        time.sleep(0.2)  # from connect() to the blocking read
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


COMMANDS = {
    "snapshot URL": lambda port: ["snapshot", f"http://127.0.0.1:{port}", "-o", "s.json", "-q"],
    "diff URL": lambda port: ["diff", f"http://127.0.0.1:{port}/metrics", str(GOOD)],
    "cleanup": lambda port: ["cleanup", "--db-url", f"postgresql+psycopg://u@127.0.0.1:{port}/db"],
}


#: The default run stops one command with each signal; the rest of the matrix (seconds each:
#: a child process per case) runs with ``-m slow``.
DEFAULT_CASES = {("diff URL", signal.SIGINT), ("snapshot URL", signal.SIGTERM)}


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        pytest.param(
            command,
            sig,
            id=f"{command}-{sig.name}",
            marks=() if (command, sig) in DEFAULT_CASES else pytest.mark.slow,
        )
        for command in sorted(COMMANDS)
        for sig in (signal.SIGINT, signal.SIGTERM)
    ],
)
def test_every_command_exits_by_the_one_table(
    command: str, sig: int, silent: Silent, tmp_path: Path
) -> None:
    code, err = _stop_when_blocked(COMMANDS[command](silent.port), silent, sig, tmp_path)
    want_code, word = EXITS[sig]
    assert (code, err.splitlines()) == (want_code, [f"compatcheck: {word}"]), err
    assert list(tmp_path.iterdir()) == []


def test_the_table_is_the_shells() -> None:
    assert {s: c for s, (c, _w) in EXITS.items()} == {signal.SIGINT: 130, signal.SIGTERM: 143}
    assert exit_status(KeyboardInterrupt()) == (130, "compatcheck: interrupted")
    assert exit_status(Terminated()) == (143, "compatcheck: terminated")


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_a_signal_ends_the_main_threads_wait_for_its_workers_at_once(
    sig: int, raised: type[BaseException], isolated_tmp: Path
) -> None:
    """``run_jobs`` blocks on its workers' events with no timeout: the signal must still end the
    wait at once (the handler raises in the main thread), and closing the workspace must release
    a worker that is pausing between two polls."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    paused: list[bool] = []
    started = threading.Event()
    try:
        with pytest.raises(raised), Workspace(grace=1.0) as ws:
            assert signal.getsignal(signal.SIGTERM) is raise_terminated

            def job() -> None:
                started.set()
                paused.append(ws.pause(60))

            timer = threading.Timer(0.3, os.kill, (os.getpid(), sig))
            timer.start()
            begun = time.monotonic()
            try:
                ws.run_jobs({"poller": job})
            finally:
                took = time.monotonic() - begun
        assert started.is_set() and took < 5
        assert paused == [True]  # close() ended the worker's pause, it did not sleep 60 s
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) is not raise_terminated
    assert list(isolated_tmp.iterdir()) == []
