"""Bad input on the command line: one clear line on stderr naming the input, the right exit code,
never a traceback. Runs the real console entry point in a child process."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run
from tests.httpserve import serve_http

REPO = Path(__file__).resolve().parent.parent
GOOD = REPO / "fixtures" / "metrics" / "compatible" / "new.prom"


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.prom"
    assert_one_line(run("diff", str(missing), str(GOOD)), 2, str(missing), "no such file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert_one_line(run("diff", str(tmp_path), str(GOOD)), 2, str(tmp_path), "is a directory")


def test_binary_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.prom"
    bad.write_bytes(bytes(range(256)) * 4)
    proc = run("diff", str(bad), str(GOOD), "--format", "json")
    assert_one_line(proc, 3, "could not evaluate", str(bad))


def test_invalid_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.prom"
    bad.write_bytes(b'# HELP x_total caf\xe9\n# TYPE x_total counter\nx_total{a="\xe9"} 1\n')
    proc = run("diff", str(bad), str(GOOD), "--format", "json")
    assert_one_line(proc, 3, str(bad), "line 1")


def test_truncated_openmetrics(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.prom"
    bad.write_text("# TYPE a_seconds counter\n# UNIT a_seconds seconds\na_seconds_total 1\n")
    proc = run("diff", str(GOOD), str(bad), "--format", "json")
    assert_one_line(proc, 3, str(bad), "EOF")


def test_broken_policy_yaml(tmp_path: Path) -> None:
    pol = tmp_path / "policy.yaml"
    pol.write_text("severity: [unclosed\n")
    assert_one_line(run("diff", str(GOOD), str(GOOD), "--policy", str(pol)), 2, str(pol), "YAML")


def test_unknown_format() -> None:
    assert_one_line(run("diff", str(GOOD), str(GOOD), "--format", "xml"), 2, "--format", "xml")


def test_unknown_kind_in_policy(tmp_path: Path) -> None:
    pol = tmp_path / "policy.yaml"
    pol.write_text("severity:\n  metrics/gone: error\n")
    assert_one_line(run("diff", str(GOOD), str(GOOD), "--policy", str(pol)), 2, f"{pol}:2")


class _Endless(http.server.BaseHTTPRequestHandler):
    """Answers /metrics with a body that never ends (a 3 GB response, in effect)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        line = b'big_total{a="' + b"x" * 200 + b'"} 1\n'
        try:
            for _ in range(20_000_000):
                self.wfile.write(line * 100)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless_url() -> Iterator[str]:
    with serve_http(_Endless) as url:
        yield f"{url}/metrics"


def test_endless_response_hits_size_cap(endless_url: str) -> None:
    proc = run("diff", endless_url, str(GOOD), "--format", "json")
    assert_one_line(proc, 3, "could not evaluate", "larger than 64 MiB")


def test_unreachable_url() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = run("diff", f"http://127.0.0.1:{port}/metrics", str(GOOD), "--format", "json")
    assert_one_line(proc, 3, "could not evaluate", f"127.0.0.1:{port}", "refused")


def test_library_log_records_stay_off_stderr() -> None:
    """Libraries log WARNING records that compatcheck already handles (psycopg logs `error
    ignored terminating <psycopg.Pipeline ...>` when a batched insert fails; the seeder expects
    that and reports it). Without a handler Python prints them to stderr; they must not appear
    next to compatcheck's one line."""
    code = (
        "import logging, sys\n"
        "from compatcheck import cli\n"
        "def noisy(args, out):\n"
        "    logging.getLogger('psycopg').warning('error ignored terminating pipeline')\n"
        "    return 0\n"
        "cli.COMMANDS['rules'] = noisy\n"
        "sys.exit(cli.main(['rules']))\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    env = {**os.environ, "COMPATCHECK_DEBUG": "1"}
    debug = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert debug.stderr == "psycopg: error ignored terminating pipeline\n"
