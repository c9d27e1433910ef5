"""Ctrl-C and SIGTERM during a round trip still drop the scratch database and temp files.

A real child process runs ``inspect_migrations`` on a migration that sleeps; the test interrupts
it while the migration runs and then looks for leftovers on disk and on the servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import scratch_databases, spawn

SLOW = Path(__file__).resolve().parent.parent / "fixtures" / "alembic" / "_slow"

CHILD = """
import sys
from compatcheck.migrations import inspect_migrations
url = sys.argv[2] if len(sys.argv) > 2 else None
try:
    inspect_migrations(sys.argv[1], "0001_users", "0002_slow", db_url=url,
                       progress=lambda m: print(m, flush=True))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def interrupt(tmp: Path, sig: int, url: str | None) -> tuple[int, str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    argv = [sys.executable, "-c", CHILD, str(SLOW), *([url] if url else [])]
    proc = spawn(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("upgrading to NEW's head"):
                break
            assert time.monotonic() < deadline, "child never reached the slow migration"
        time.sleep(0.5)  # inside the migration's sleep now
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        lines.append(out)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_sqlite_scratch(tmp_path: Path, sig: int) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code, out = interrupt(tmp, sig, None)
    assert code == 130, out
    assert "interrupted" in out
    assert "finished" not in out
    assert list(tmp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.postgres
def test_interrupt_drops_postgres_scratch(tmp_path: Path, postgres_url: str) -> None:
    code, out = interrupt(tmp_path, signal.SIGINT, postgres_url)
    assert code == 130, out
    assert "scratch database: compatcheck_" in out
    assert scratch_databases(postgres_url) == []


@pytest.mark.slow
@pytest.mark.mysql
def test_interrupt_drops_mysql_scratch(tmp_path: Path, mysql_url: str) -> None:
    code, out = interrupt(tmp_path, signal.SIGINT, mysql_url)
    assert code == 130, out
    assert "scratch database: compatcheck_" in out
    assert scratch_databases(mysql_url) == []


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGINT, 130, "compatcheck: interrupted"),
    (signal.SIGTERM, 143, "compatcheck: terminated"),
])  # fmt: skip
def test_cli_exit_code_is_the_signal_as_for_check(
    tmp_path: Path, sig: int, code: int, said: str
) -> None:
    """`compatcheck migrations` exits 128 + signal like `compatcheck check` does: a supervisor
    that stopped it with SIGTERM sees 143, not a Ctrl-C."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    argv = [sys.executable, "-m", "compatcheck", "migrations", "--script-location", str(SLOW),
            "--old", "0001_users", "--new", "0002_slow", "--format", "json"]  # fmt: skip
    proc = spawn(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        for line in proc.stderr:
            if "upgrading to NEW's head" in line:
                break
            assert time.monotonic() < deadline, "never reached the slow migration"
        time.sleep(0.5)
        proc.send_signal(sig)
        rest = proc.stderr.read()
        assert proc.wait(timeout=30) == code, rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rest.strip().splitlines() == [said]
    assert list(tmp_path.iterdir()) == []
