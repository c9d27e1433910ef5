"""Reliability with real child processes: every failure ends in a clear finding or error, and
nothing is left behind — no process (checked in /proc by a unique marker argument) and no temp
file (checked through TMPDIR)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from compatcheck.capture import run_check
from compatcheck.capture.run import CheckResult
from compatcheck.checks.readiness import check_readiness
from compatcheck.config import load_config

from .interruption import spawn

FAULTY = Path(__file__).resolve().parent.parent / "fixtures" / "services" / "faulty" / "faulty.py"

#: The default run keeps the cases that end within a second or two; those that wait out a
#: timeout or a grace period by design run with ``-m slow``.
SLOW = pytest.mark.slow


def _target(mode: str, marker: str) -> str:
    argv = ["{python}", str(FAULTY), "--mode", mode, "--port", "{port}", "--marker", marker]
    quoted = ", ".join(f'"{a}"' for a in argv)
    return f"{{label: {mode}, command: [{quoted}]}}"


def write_config(tmp_path: Path, old: str, new: str, marker: str) -> Path:
    cfg = tmp_path / "compatcheck.yaml"
    cfg.write_text(
        f"old: {_target(old, marker)}\n"
        f"new: {_target(new, marker)}\n"
        "readiness: {timeout: 3s, interval: 50ms}\n"
        "metrics: {timeout: 1.5s, scrapes: 1, max_bytes: 1048576}\n"
        "grace: 500ms\n",
        encoding="utf-8",
    )
    return cfg


def processes_with(marker: str) -> list[int]:
    """Pids whose command line carries the marker (psutil-free /proc scan)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # A zombie still awaiting its parent's wait() is not "left running".
        if marker.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(entry))
    return found


@pytest.fixture
def marker() -> str:
    return f"cc-test-{uuid.uuid4().hex[:10]}"


def _keys(findings: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(f.kind, f.subject) for f in findings}


def _assert_clean(marker: str, tmp: Path) -> None:
    assert processes_with(marker) == []
    assert list(tmp.iterdir()) == []


@pytest.fixture
def check(tmp_path: Path, isolated_tmp: Path, marker: str) -> Callable[..., CheckResult]:
    """Run a check of two faulty targets in the given modes, within ``within`` seconds when given,
    and insist that nothing is left behind once it returns."""

    def run(old: str, new: str, within: float | None = None) -> CheckResult:
        start = time.monotonic()
        result = run_check(load_config(write_config(tmp_path, old, new, marker)))
        if within is not None:
            assert time.monotonic() - start < within
        _assert_clean(marker, isolated_tmp)
        return result

    return run


def _assert_unavailable(result: CheckResult, subject: str, says: str) -> None:
    """The run's only finding: the check could not run for ``subject``, saying why."""
    assert _keys(result.findings) == {("check/unavailable", subject)}
    assert says in result.findings[0].message


def test_healthy_pair_gives_no_capture_findings(check):
    result = check("ok", "ok")
    assert result.findings == []
    assert result.old.build == {"version": "0.0.1"}


def test_target_that_exits_at_once(check):
    result = check("exit", "ok")
    _assert_unavailable(result, "old", "exited with code 3")
    ev = result.findings[0].evidence
    assert ev["exit_code"] == 3
    assert "cannot read configuration file /etc/faulty.conf" in ev["log_tail"]
    assert _keys(check_readiness(result.new, result.old)) == {("readiness/not-ready", "/readyz")}


@SLOW  # waits out the readiness timeout
def test_target_never_ready(check):
    result = check("never-ready", "ok", within=8)
    _assert_unavailable(result, "old", "`/readyz` not ready within 3 s (last answer HTTP 503")
    assert result.old.readiness is not None
    assert result.old.readiness["/readyz"].ready is False
    assert result.old.metrics is None
    assert _keys(check_readiness(result.new, result.old)) == {("readiness/not-ready", "/readyz")}


@SLOW  # waits out the scrape timeout
def test_metrics_that_hang(check):
    result = check("ok", "metrics-hang", within=6)
    _assert_unavailable(result, "new:/metrics", "timed out")
    assert result.new.metrics is None


def test_metrics_answering_500(check):
    _assert_unavailable(check("metrics-500", "ok"), "old:/metrics", "HTTP 500")


def test_endless_metrics_body_hits_the_size_cap(check):
    _assert_unavailable(check("endless", "ok", within=6), "old:/metrics", "body larger than 1 MiB")


@SLOW  # waits out the grace period
def test_target_ignoring_sigterm_is_killed_with_its_group(check):
    result = check("ignore-sigterm", "ok")
    assert result.findings == []
    assert result.timings["teardown"] >= 0.5  # waited the grace period, then SIGKILL


def _command(cfg: Path) -> list[str]:
    """The real console entry point, as a person or a CI job runs it."""
    return [sys.executable, "-m", "compatcheck", "check", "-c", str(cfg), "--format", "json"]


@pytest.mark.parametrize(
    ("sig", "code"), [pytest.param(signal.SIGINT, 130, marks=SLOW), (signal.SIGTERM, 143)]
)
def test_interrupt_mid_run_tears_everything_down(tmp_path, isolated_tmp, marker, sig, code):
    cfg = write_config(tmp_path, "slow-ready", "slow-ready", marker)
    cfg.write_text(cfg.read_text().replace("timeout: 3s", "timeout: 60s"))
    env = dict(os.environ, TMPDIR=str(isolated_tmp))
    proc = spawn(
        _command(cfg), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True
    )
    try:
        assert proc.stderr is not None
        started = 0
        deadline = time.monotonic() + 20
        while started < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            started += "started `" in line
        assert started == 2, "both targets should have been launched"
        assert len(processes_with(marker)) == 2
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _assert_clean(marker, isolated_tmp)
