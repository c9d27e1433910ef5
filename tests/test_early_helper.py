"""``compatcheck migrations --python``: the helper started before the heavy imports.

The CLI starts the application's interpreter running the Alembic helper right after parsing its
arguments (:mod:`compatcheck.apphelper`), so that its start overlaps compatcheck's own imports;
the helper pool takes that child instead of starting one. These tests hold it to that (one child
for the whole run, started before SQLAlchemy or Alembic is imported) and to the guarantee every
child has: whatever ends the command (Ctrl-C or SIGTERM right after the spawn, a usage error
found later, a pool of another project, a run that never asks it anything), the child is stopped.

The in-process cases run ``main()`` in pytest's own process: a child still running after it
returned was not stopped by anything but compatcheck's own cleanup (``PR_SET_PDEATHSIG`` only
fires when the process exits), which is what they check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck import apphelper, leftovers
from compatcheck.apphelper import AlembicProject, early_helper
from compatcheck.cli import main
from compatcheck.interrupts import PAUSE_ENV, PAUSE_SECONDS_ENV
from compatcheck.migrations.sources.alembic.remote import HelperPool

from .interruption import interrupt

APP = Path(__file__).parent.parent / "fixtures" / "alembic_projects" / "ini_app"
EXPECTED = yaml.safe_load((APP / "expected.yaml").read_text())
INI = APP / "alembic.ini"
POINTS = ["early-helper:started", "early-helper:after"]


def argv_for(python: str, tmp: Path, *more: str) -> list[str]:
    return ["migrations", "--config", str(INI), "-x", "tenant=t1", "--python", python,
            "--base-sql", str(APP / "base.sql"), "--old", "a1", "--new", "c3",
            "--format", "json", "-o", str(tmp / "report.json"), "-q", *more]  # fmt: skip


class Spawned(list[subprocess.Popen[Any]]):
    """The helper children started, in order, and each one's environment at its start."""

    def __init__(self) -> None:
        super().__init__()
        self.environ: dict[int, bytes] = {}


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    """Every helper child started from here on (the real spawn, recorded)."""
    started = Spawned()
    real = apphelper.spawn

    def recording(argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
        process = real(argv, **popen)  # returns once the child runs the interpreter
        started.environ[process.pid] = Path(f"/proc/{process.pid}/environ").read_bytes()
        started.append(process)
        return process

    monkeypatch.setattr(apphelper, "spawn", recording)
    return started


def mine() -> list[int]:
    """Live children this process started (by the owner mark in their environment)."""
    return [pid for pid, owner in leftovers.marked_processes() if owner.pid == os.getpid()]


def assert_stopped(processes: list[subprocess.Popen[Any]]) -> None:
    """Each one reaped by compatcheck (this process lives on: no death signal reached it)."""
    assert [p.returncode is not None for p in processes] == [True] * len(processes)
    assert mine() == []


def test_one_helper_started_before_the_heavy_imports_runs_the_whole_round_trip(
    tmp_path: Path, app_python: str
) -> None:
    """In a fresh interpreter: the run's one helper child is started while neither SQLAlchemy
    nor Alembic is imported yet, and it answers everything (the locations, the round trip and
    the walk's fresh database: both broken downgrades are named)."""
    script = (
        "import json, sys\n"
        "import compatcheck.targets as targets\n"
        "real, seen = targets.spawn, []\n"
        "def recording(argv, **popen):\n"
        "    seen.append([m in sys.modules for m in ('sqlalchemy', 'alembic')])\n"
        "    return real(argv, **popen)\n"
        "targets.spawn = recording\n"
        "from compatcheck.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(json.dumps({'code': code, 'seen': seen}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *argv_for(app_python, tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(done.stdout) == {"code": 0, "seen": [[False, False]]}, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    kinds = {(f["kind"], f["subject"]) for f in report["findings"]}
    assert {tuple(k) for k in EXPECTED["roundtrip"]} <= kinds


@pytest.mark.parametrize("point", POINTS)
def test_sigterm_right_after_the_early_spawn_stops_the_helper(
    tmp_path: Path,
    app_python: str,
    spawned: Spawned,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    """SIGTERM as soon as the child exists: inside the held-signals block (delivered when it
    ends) or after it, before any pool took the child; exit 143 and the child is stopped."""
    monkeypatch.setenv(PAUSE_ENV, point)
    monkeypatch.setenv(PAUSE_SECONDS_ENV, "1")

    def signal_once_spawned() -> None:
        deadline = time.monotonic() + 30
        while not spawned and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=signal_once_spawned, daemon=True)
    sender.start()
    code = main(argv_for(app_python, tmp_path))
    sender.join()
    assert (code, len(spawned)) == (143, 1)
    assert_stopped(spawned)
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_cli_interrupted_right_after_the_early_spawn_exits_with_the_signal(
    tmp_path: Path, app_python: str, point: str, sig: int
) -> None:
    """The real command in its own process, Ctrl-C or SIGTERM at each moment: 128 + the signal,
    one line, no traceback, no child of its left."""
    out = interrupt(argv_for(app_python, tmp_path), point, sig, tmp_path / "tmp")
    code, word = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}[sig]
    assert out.code == code
    assert out.stderr.strip().splitlines() == [
        f"compatcheck: paused at {point} (pid {out.pid})",
        f"compatcheck: {word}",
    ]
    assert [pid for pid, owner in leftovers.marked_processes() if owner.pid == out.pid] == []
    assert list(out.tmp.iterdir()) == []


def test_a_usage_error_after_the_early_spawn_stops_the_helper(
    tmp_path: Path, app_python: str, spawned: Spawned
) -> None:
    """A flag refused only after the helper started (here: a starting schema with --static):
    exit 2, and the child started for it is gone."""
    code = main(argv_for(app_python, tmp_path, "--static"))
    assert (code, len(spawned)) == (2, 1)
    assert_stopped(spawned)


def test_a_url_from_the_environment_never_reaches_the_early_helper(
    tmp_path: Path, app_python: str, spawned: Spawned, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--live-db-url env:VAR`` takes the variable out of compatcheck's environment before any
    migration code could read it; the helper, started before everything else, never had it."""
    monkeypatch.setenv("CC_EARLY_LIVE_URL", f"sqlite:///{tmp_path / 'live.db'}")
    main(argv_for(app_python, tmp_path, "--live-db-url", "env:CC_EARLY_LIVE_URL"))
    assert "CC_EARLY_LIVE_URL" not in os.environ
    assert [b"CC_EARLY_LIVE_URL=" in env for env in spawned.environ.values()] == [False]
    assert_stopped(spawned)


def test_static_with_an_ini_asks_the_early_helper_and_stops_it(
    tmp_path: Path, app_python: str, spawned: Spawned
) -> None:
    """``--static`` still needs Alembic to read the ini (in the application's interpreter): the
    early helper answers that, and is the only child."""
    argv = argv_for(app_python, tmp_path)
    argv[argv.index("--base-sql") : argv.index("--old")] = ["--static"]
    assert main(argv) == 0
    assert len(spawned) == 1
    assert_stopped(spawned)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["migrations"]["downgrade_path"] == EXPECTED["path"]


def test_nothing_is_started_early_when_nothing_will_be_asked(
    tmp_path: Path, app_python: str, spawned: Spawned
) -> None:
    """``--static`` on a bare script location: no ini to read, no round trip, no child."""
    bare = APP.parent.parent / "alembic" / "clean_reversible"
    argv = ["migrations", "--script-location", str(bare), "--python", app_python, "--static",
            "--old", "0001_users", "--new", "0002_name_index", "--format", "json", "-o",
            str(tmp_path / "report.json"), "-q"]  # fmt: skip
    assert main(argv) == 0
    assert spawned == []


def test_a_pool_of_another_project_stops_the_early_helper(
    app_python: str, spawned: Spawned
) -> None:
    """The early child was given its project at its start: a pool of another section (or
    interpreter) cannot use it, so it is stopped at once, and the pool starts its own."""
    started = AlembicProject(config_file=INI, x=("tenant=t1",), python=app_python)
    other = AlembicProject(config_file=INI, x=("tenant=t2",), python=app_python)
    with early_helper(started):
        pool = HelperPool(other)
        assert (pool.idle, len(spawned)) == (None, 1)
        assert_stopped(spawned)
        try:
            assert "ok" in pool.locations()
        finally:
            pool.close()
    assert len(spawned) == 2
    assert_stopped(spawned)


def test_a_claimed_helper_nobody_stopped_is_stopped_when_the_block_ends(
    app_python: str, spawned: Spawned
) -> None:
    """The pool takes the child and its pending ``locations`` reply; a pool never closed (a
    path that forgot it) does not outlive the command: the block stops the child anyway."""
    project = AlembicProject(config_file=INI, x=("tenant=t1",), python=app_python)
    with early_helper(project):
        pool = HelperPool(project)
        assert pool.idle is not None and pool.idle.process is spawned[0]
        assert pool.locations()["ok"]["script_location"] == str(APP / "scripts")
        assert spawned[0].poll() is None
    assert len(spawned) == 1
    assert_stopped(spawned)
