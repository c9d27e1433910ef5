"""What keeps a check's own time short, each checked on real processes and files: launches side by
side, teardown woken by the exits themselves, scratch SQLite without fsync (and only there)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from types import SimpleNamespace

from sqlalchemy.engine import make_url

import compatcheck.targets as targets
from compatcheck.config import CommandTarget
from compatcheck.migrations import scratch
from compatcheck.migrations.scratch import engine_for
from compatcheck.targets import Workspace, stop_groups

SLEEPER = CommandTarget(role="old", label="sleeper", command=("sleep", "30"))


def _synchronous(url: str) -> int:
    engine = engine_for(make_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
    finally:
        engine.dispose()


def test_release_scratch_sqlite_skips_fsync_and_nothing_else_does(tmp_path, isolated_tmp):
    """A release's scratch file is migrated without fsync (0 = OFF); a file compatcheck did not
    make keeps SQLite's default (2 = FULL); a closed run's paths are forgotten."""
    theirs = f"sqlite:///{tmp_path / 'theirs.sqlite'}"
    with Workspace() as ws:
        ours = ws.scratch_database("new").url
        assert _synchronous(ours) == 0
        assert _synchronous(theirs) == 2
    assert make_url(ours).database not in scratch._THROWAWAY


def test_a_launch_does_not_wait_for_another_launch_in_flight():
    """OLD's, NEW's and the trial's forks run side by side: the second job runs while the first
    still holds its spawner thread (one thread would make it wait, and the first time out)."""
    first_running, second_ran = threading.Event(), threading.Event()
    results: list[object] = []

    def first() -> str:
        first_running.set()
        return "first" if second_ran.wait(10) else "timed out"

    def second() -> str:
        second_ran.set()
        return "second"

    holder = threading.Thread(target=lambda: results.append(targets._SPAWNER.run(first)))
    holder.start()
    assert first_running.wait(10)
    assert targets._SPAWNER.run(second) == "second"
    holder.join(10)
    assert results == ["first"]


def test_close_during_a_launch_in_flight_stops_that_process(isolated_tmp, monkeypatch):
    """Popen runs outside the workspace lock; a close that begins meanwhile waits for the
    process to be recorded and stops it with the others: nothing is left running."""
    in_popen, go = threading.Event(), threading.Event()
    real_popen = subprocess.Popen

    def slow_popen(*args, **kwargs):  # type: ignore[no-untyped-def]
        in_popen.set()
        assert go.wait(10)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(targets.subprocess, "Popen", slow_popen)
    ws = Workspace(grace=1.0, handle_signals=False).__enter__()
    launched: list[targets.RunningTarget] = []
    launcher = threading.Thread(target=lambda: launched.append(ws.launch(SLEEPER)))
    launcher.start()
    assert in_popen.wait(10)
    closer = threading.Thread(target=ws.close)
    closer.start()
    assert ws._closing.wait(10)
    go.set()
    launcher.join(10)
    closer.join(20)
    assert not closer.is_alive()
    assert launched and launched[0].process.returncode is not None  # stopped, and reaped
    assert list(isolated_tmp.iterdir()) == []


def test_a_launch_that_outlasts_closes_wait_stops_its_own_process(isolated_tmp, monkeypatch):
    """close() waits for a launch in flight only so long (LAUNCH_WAIT); a process started after
    it gave up is not left running: the launch stops it and says the run is shutting down."""
    in_popen, go = threading.Event(), threading.Event()
    real_popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def slow_popen(*args, **kwargs):  # type: ignore[no-untyped-def]
        in_popen.set()
        assert go.wait(10)
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(targets.subprocess, "Popen", slow_popen)
    monkeypatch.setattr(targets, "LAUNCH_WAIT", 0.1)
    ws = Workspace(grace=1.0, handle_signals=False).__enter__()
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            ws.launch(SLEEPER)
        except BaseException as exc:
            errors.append(exc)

    launcher = threading.Thread(target=launch)
    launcher.start()
    assert in_popen.wait(10)
    ws.close()  # gives up on the launch after 0.1 s
    go.set()
    launcher.join(20)
    assert started and started[0].returncode is not None  # stopped, and reaped
    assert [str(e) for e in errors] == ["cannot start a process: the run is shutting down"]


def test_teardown_wakes_on_the_exit_not_on_a_poll_interval(isolated_tmp, monkeypatch):
    """A release that dies at once on SIGTERM is seen gone through its pidfd: stopping it sleeps
    not even one 20 ms poll interval."""
    slept: list[float] = []
    clock = SimpleNamespace(monotonic=time.monotonic, sleep=slept.append)
    monkeypatch.setattr(targets, "time", clock)  # what compatcheck.targets sleeps, nobody else
    with Workspace(grace=5.0) as ws:
        running = ws.launch(SLEEPER)
    assert running.process.returncode is not None
    assert slept == []


def test_a_leader_that_ignores_sigterm_still_gets_the_grace_then_sigkill() -> None:
    """The pidfd wait ends at the deadline when the leader does not exit; SIGKILL follows."""
    proc = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; echo trapped; exec sleep 30"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "trapped\n"
    started = time.monotonic()
    stop_groups([proc], grace=0.3)
    assert time.monotonic() - started >= 0.3
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
