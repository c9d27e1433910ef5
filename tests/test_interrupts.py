"""Nothing left behind, whatever the timing: SIGINT and SIGTERM at chosen moments, SIGKILL.

Each case runs the real CLI in a child process stopped at a named moment
(``COMPATCHECK_PAUSE_AT``: right before the drop is recorded, between recording it and
``CREATE DATABASE``, right after CREATE, after the critical section, in the middle of the round
trip), signals it there, and then looks for what this test run's compatcheck left: scratch
databases (by the run tag and the child's pid in their names), temp entries (each child has its
own TMPDIR) and processes (by the owner mark in their environment). Cases run a few at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from compatcheck import leftovers
from compatcheck.interrupts import (
    PAUSE_ENV,
    PAUSE_SECONDS_ENV,
    Terminated,
    deferred,
    raise_terminated,
)
from compatcheck.targets import Workspace

from .conftest import REPO, owned_processes, scratch_databases
from .interruption import Outcome, interrupt, spawn

CLEAN = REPO / "fixtures" / "alembic" / "clean_reversible"
DEMO = REPO / "fixtures" / "demo"
FAULTY = REPO / "fixtures" / "services" / "faulty" / "faulty.py"

CREATE_POINTS = [
    "create-database:before",
    "create-database:registered",
    "create-database:created",
    "create-database:after",
]
EXIT = {
    signal.SIGINT: (130, "compatcheck: interrupted"),
    signal.SIGTERM: (143, "compatcheck: terminated"),
}


def left_by(outcomes: list[Outcome], servers: list[str]) -> list[str]:
    """What the interrupted runs left: their databases (their pid is in the names), their temp
    entries, any process of this test run."""
    pids = {o.pid for o in outcomes}
    found = [
        f"{url.split('://')[0]}: {name}"
        for url in servers
        for name in scratch_databases(url)
        if (owner := leftovers.parse(name)) is not None and owner.pid in pids
    ]
    found += [f"temp: {p}" for o in outcomes for p in o.tmp.iterdir()]
    found += [f"process: {pid}" for pid in owned_processes()]
    return found


def run_cases(cases: list[tuple[list[str], str, int]], tmp: Path, servers: list[str]) -> None:
    """Interrupt every case (four at a time), then: nothing is left, and each exited as its
    signal says, with its one line."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(interrupt, argv, point, sig, tmp / f"case{i}")
            for i, (argv, point, sig) in enumerate(cases)
        ]
        outcomes = [f.result() for f in futures]
    assert left_by(outcomes, servers) == []
    for (_argv, point, sig), outcome in zip(cases, outcomes, strict=True):
        code, line = EXIT[sig]
        assert (outcome.code, line in outcome.stderr) == (code, True), (point, outcome.stderr)
        assert "Traceback" not in outcome.stderr, outcome.stderr


def _matrix(points: list[str], argv: dict[str, list[str]]) -> list[tuple[list[str], str, int]]:
    """Every point on every server; at each point SIGINT on one server and SIGTERM on the
    other, the other way round at the next point."""
    sigs = (signal.SIGINT, signal.SIGTERM)
    return [
        (args, point, sigs[(i + j) % 2])
        for i, point in enumerate(points)
        for j, args in enumerate(argv.values())
    ]


# --- standalone `compatcheck migrations --db-url` ------------------------------------------


def _migrations_argv(url: str) -> list[str]:
    return ["migrations", "--script-location", str(CLEAN), "--old", "0001_users",
            "--new", "0002_name_index", "--db-url", url, "--format", "json"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mysql
def test_migrations_interrupted_anywhere_leaves_nothing(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    """The drop is recorded before CREATE DATABASE, and the two happen with signals held: an
    interrupt right after CREATE (before today's fix: the drop was recorded only then) leaves
    nothing, on either server, by SIGINT or SIGTERM."""
    argv = {url: _migrations_argv(url) for url in (postgres_url, mysql_url)}
    cases = _matrix([*CREATE_POINTS, "roundtrip:seeded"], argv)
    run_cases(cases, tmp_path, list(argv))


SQL = REPO / "fixtures" / "realworld" / "sql"
#: sematic 0.41.0's dbmate window whose downgrade fails: the walk after it needs fresh databases.
SEMATIC = [
    "--script-location",
    str(SQL / "sematic" / "0.41.0" / "migrations"),
    "--framework",
    "dbmate",
    "--old",
    "20220921212247",
    "--new",
    "20221017233940",
]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mysql
def test_sql_file_migrations_interrupted_anywhere_leaves_nothing(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    """The same on real published SQL folders: sematic 0.41.0's dbmate migrations on PostgreSQL
    (the window whose downgrade fails, so the walk after it makes further scratch databases) and
    cfssl 1.6.5's goose migrations on MariaDB (from empty): the SQL-file runner's statements, its
    version table and the walk leave nothing behind either."""
    sematic = SEMATIC
    cfssl = ["--script-location", str(SQL / "cfssl" / "1.6.5" / "mysql"), "--framework", "goose",
             "--old", "0", "--new", "2"]  # fmt: skip
    argv = {
        postgres_url: ["migrations", *sematic, "--db-url", postgres_url, "--format", "json"],
        mysql_url: ["migrations", *cfssl, "--db-url", mysql_url, "--format", "json"],
    }
    cases = _matrix([*CREATE_POINTS, "roundtrip:seeded"], argv)
    run_cases(cases, tmp_path, list(argv))


@pytest.mark.slow
@pytest.mark.postgres
def test_copies_of_the_database_at_old_interrupted_anywhere_leave_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """The walk's fresh databases are copies of the round trip's at OLD: the template (``CREATE
    DATABASE ... TEMPLATE`` of the scratch database) and each copy of it are made as every
    scratch database is (drop recorded first, signals held around CREATE); an interrupt at each
    of their moments, SIGINT or SIGTERM, leaves neither (an application's project whose two
    downgrades fail, run in its own interpreter: the walk after the first takes a copy). On
    SQLite the template is a file of the run's temp folder: interrupted right after it is
    written, nothing is left either."""
    app = REPO / "fixtures" / "alembic_projects" / "ini_app"
    python = tmp_path / "app-python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={app / "app"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    argv = ["migrations", "--config", str(app / "alembic.ini"), "-x", "tenant=t1", "--python",
            str(python), "--base-sql", str(app / "base.sql"), "--old", "a1", "--new", "c3",
            "--db-url", postgres_url, "--format", "json"]  # fmt: skip
    moments = [
        f"{what}:{when}"
        for what in ("template-database", "copy-database")
        for when in ("before", "registered", "created", "after")
    ]
    sigs = (signal.SIGINT, signal.SIGTERM)
    cases = [(argv, point, sigs[i % 2]) for i, point in enumerate([*moments, "template:taken"])]
    failing = REPO / "fixtures" / "alembic" / "failing_downgrade"
    on_sqlite = ["migrations", "--script-location", str(failing), "--old", "0001_users",
                 "--new", "0002_phone", "--format", "json"]  # fmt: skip
    cases += [(on_sqlite, "template:taken", sig) for sig in sigs]
    run_cases(cases, tmp_path, [postgres_url])


# --- `compatcheck check` with scratch databases on a server ---------------------------------


def _check_config(tmp: Path, server: str) -> Path:
    """The demo on a server: per-target databases, the code-only trial's and the inspection's."""
    text = (DEMO / "compatcheck.yaml").read_text(encoding="utf-8")
    text = text.replace("cwd: ../", f"cwd: {DEMO.parent}/")
    text = text.replace("database: sqlite", f'database: "{server}"')
    text = text.replace("consumers: [../consumers/shop/]\n", "") + "grace: 1s\n"
    cfg = tmp / f"check-{server.split('+')[0]}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text, encoding="utf-8")
    return cfg


def _inspection_config(tmp: Path, server: str) -> Path:
    """Recorded expositions and each release's migrations: only the inspection does work."""
    shop = REPO / "fixtures" / "services" / "shop"
    exposition = REPO / "fixtures" / "expositions" / "node_app.prom"
    cfg = tmp / f"inspect-{server.split('+')[0]}.yaml"
    cfg.write_text(
        f"old: {{label: v1, exposition: {exposition}, migrations: {shop}/v1/migrations}}\n"
        f"new: {{label: v2, exposition: {exposition}, migrations: {shop}/v2/migrations}}\n"
        f'migrations: {{script_location: migrations, database: "{server}"}}\n',
        encoding="utf-8",
    )
    return cfg


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mysql
def test_check_interrupted_while_workers_create_databases_leaves_nothing(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    """Workers create the per-target databases while the main thread takes the signal and
    closes the workspace: closing waits for a CREATE in flight and then drops it, and a worker
    that comes later is refused (before the fix: it created after the close, and nobody
    dropped)."""
    argv = {
        url: ["check", "-c", str(_check_config(tmp_path, url)), "--format", "json"]
        for url in (postgres_url, mysql_url)
    }
    run_cases(_matrix(CREATE_POINTS, argv), tmp_path, list(argv))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mysql
def test_check_interrupted_during_the_migrations_inspection_leaves_nothing(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    """The inspection is mid round trip in its worker when the main thread is interrupted.
    Before the fix the worker owned its drop and the main thread judged it finished by
    ``Thread.is_alive()``, which an interrupted ``join()`` falsifies: the process exited, the
    worker died, the database stayed."""
    argv = {
        url: ["check", "-c", str(_inspection_config(tmp_path, url)), "--format", "json"]
        for url in (postgres_url, mysql_url)
    }
    run_cases(_matrix(["roundtrip:seeded", "create-database:created"], argv), tmp_path, list(argv))


# --- SIGKILL: the next run (or `compatcheck cleanup`) removes what a dead run left ----------


def _killed_mid_round_trip(url: str, tmp: Path) -> int:
    """A `migrations` run SIGKILLed in the middle of its round trip; its pid. Seeded means past
    OLD: it leaves two scratch databases, the round trip's and its copy at OLD (the template
    the walk and the rerun start from)."""
    outcome = interrupt(_migrations_argv(url), "roundtrip:seeded", signal.SIGKILL, tmp, pause=30)
    assert outcome.code == -signal.SIGKILL
    return outcome.pid


@pytest.mark.slow
@pytest.mark.postgres
def test_cleanup_removes_what_a_killed_run_left_and_keeps_a_live_runs(
    tmp_path: Path, postgres_url: str
) -> None:
    def theirs(pid: int) -> list[str]:
        return [n for n in scratch_databases(postgres_url) if leftovers.parse(n).pid == pid]  # type: ignore[union-attr]

    # A live run paused in its round trip: its database and temp folder are not touched.
    env = {**os.environ, "TMPDIR": str(tmp_path / "live"), PAUSE_ENV: "roundtrip:seeded",
           PAUSE_SECONDS_ENV: "30"}  # fmt: skip
    (tmp_path / "live").mkdir()
    live = spawn([sys.executable, "-m", "compatcheck", *_migrations_argv(postgres_url)],
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert live.stderr is not None
        for line in live.stderr:
            if line.startswith("compatcheck: paused at"):
                break
        dead = _killed_mid_round_trip(postgres_url, tmp_path / "dead")
        dead_dbs = theirs(dead)
        assert len(dead_dbs) == 2  # the round trip's database and its copy at OLD
        [workspace] = (tmp_path / "dead").iterdir()
        listed = subprocess.run(
            [sys.executable, "-m", "compatcheck", "cleanup", "--dry-run", "--db-url", postgres_url],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "TMPDIR": str(tmp_path / "dead")},
        )  # fmt: skip
        for dead_db in dead_dbs:
            assert f"would remove scratch database {dead_db} on {postgres_url}" in listed.stdout
        assert theirs(dead) == dead_dbs and workspace.exists()  # a dry run removes nothing
        done = subprocess.run(
            [sys.executable, "-m", "compatcheck", "cleanup", "--db-url", postgres_url],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "TMPDIR": str(tmp_path / "dead")},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        for dead_db in dead_dbs:
            assert f"removed scratch database {dead_db} on {postgres_url}" in lines
        assert f"removed temp folder {workspace}" in lines
        assert lines[-1].startswith("compatcheck cleanup: removed ")
        assert "belong to runs still going" in lines[-1]
        assert theirs(dead) == []
        assert list((tmp_path / "dead").iterdir()) == []
        assert len(theirs(live.pid)) == 2
        assert len(list((tmp_path / "live").iterdir())) == 1
    finally:
        live.send_signal(signal.SIGINT)
        assert live.wait(timeout=60) == 130
    assert theirs(live.pid) == []
    assert list((tmp_path / "live").iterdir()) == []


@pytest.mark.slow
@pytest.mark.mysql
def test_next_run_removes_a_killed_runs_leftovers_and_says_so(
    tmp_path: Path, mysql_url: str
) -> None:
    _killed_mid_round_trip(mysql_url, tmp_path)
    assert len(scratch_databases(mysql_url)) == 2
    assert len(list(tmp_path.iterdir())) == 1
    done = subprocess.run(
        [sys.executable, "-m", "compatcheck", *_migrations_argv(mysql_url), "-q"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "compatcheck: removed what dead runs left: 2 scratch databases, 1 temp folder "
        "(`compatcheck cleanup --dry-run` lists such leftovers)"
    ]
    assert scratch_databases(mysql_url) == []
    assert list(tmp_path.iterdir()) == []


def _faulty_config(tmp: Path, marker: str) -> Path:
    argv = ["{python}", str(FAULTY), "--mode", "ignore-sigterm", "--port", "{port}",
            "--marker", marker]  # fmt: skip
    target = "{label: %s, command: [" + ", ".join(f'"{a}"' for a in argv) + "]}"
    cfg = tmp / "compatcheck.yaml"
    cfg.write_text(f"old: {target % 'a'}\nnew: {target % 'b'}\n"
                   "readiness: {timeout: 60s}\nwarmup: []\n", encoding="utf-8")  # fmt: skip
    return cfg


def _with_marker(marker: str) -> list[int]:
    out = []
    for pid in owned_processes():
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


@pytest.mark.slow
def test_children_die_with_compatcheck_and_cleanup_stops_the_grandchildren(
    tmp_path: Path,
) -> None:
    """SIGKILL: the targets (direct children) die at once by PR_SET_PDEATHSIG; their
    grandchildren (which it does not reach, and which ignore SIGTERM) are found by their owner
    mark and stopped by `compatcheck cleanup`."""
    marker = f"cc-kill-{os.getpid()}-{time.monotonic_ns()}"
    proc = spawn([sys.executable, "-m", "compatcheck", "check", "-c",
                  str(_faulty_config(tmp_path, marker))],
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                 env={**os.environ, "TMPDIR": str(tmp_path)})  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while len(_with_marker(marker)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_with_marker(marker)) == 4  # two targets, each with a grandchild
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while len(_with_marker(marker)) > 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    survivors = _with_marker(marker)
    assert len(survivors) == 2  # the grandchildren
    assert all(b"time.sleep(600)" in Path(f"/proc/{p}/cmdline").read_bytes() for p in survivors)
    done = subprocess.run(
        [sys.executable, "-m", "compatcheck", "cleanup", "-q"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("compatcheck cleanup: removed 2 processes, 1 temp folder")
    deadline = time.monotonic() + 5
    while _with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _with_marker(marker) == []
    assert list(tmp_path.iterdir()) == [tmp_path / "compatcheck.yaml"]


def test_children_get_default_signals_even_when_compatcheck_ignores_sigint(
    isolated_tmp: Path,
) -> None:
    """A run started in the background has SIGINT ignored; its children must not inherit that
    (nor may they ignore SIGTERM)."""
    from compatcheck.config import CommandTarget

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Workspace(grace=1.0) as ws:
            target = CommandTarget(role="old", label="x", command=("sleep", "30"))
            running = ws.launch(target)
            status = Path(f"/proc/{running.process.pid}/status").read_text()
    finally:
        signal.signal(signal.SIGINT, previous)
    ignored = int(next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16)
    assert ignored & (1 << (signal.SIGINT - 1)) == 0
    assert ignored & (1 << (signal.SIGTERM - 1)) == 0
    assert list(isolated_tmp.iterdir()) == []


def test_cleanup_says_which_server_it_could_not_reach(
    capsys: pytest.CaptureFixture[str], isolated_tmp: Path
) -> None:
    from compatcheck.cli import main

    code = main(["cleanup", "-q", "--db-url", "postgresql+psycopg://u:pw@127.0.0.1:1/postgres"])
    out, err = capsys.readouterr()
    assert code == 3
    assert out == "compatcheck cleanup: removed nothing\n"
    assert err.startswith("compatcheck: cleanup: postgresql+psycopg://u:***@127.0.0.1:1/postgres: ")
    assert "pw" not in out + err


def test_a_held_signal_is_delivered_when_the_critical_section_ends_even_by_an_error() -> None:
    # Python's own SIGINT handler, also when pytest runs in the background with SIGINT ignored
    # (deferred() leaves an ignored signal ignored, and then there is nothing to deliver).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now: it held the signal
            raise ValueError("CREATE DATABASE failed")
    finally:
        signal.signal(signal.SIGINT, previous_int)
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        with pytest.raises(Terminated), deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            entered_after = True
        assert entered_after
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the owner mark -------------------------------------------------------------------------


def test_owner_marks_tell_dead_runs_from_live_ones() -> None:
    me = leftovers.me()
    name = leftovers.database_name()
    assert leftovers.parse(name) == me and len(name) <= 63
    assert not leftovers.is_stale(me)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert leftovers.is_stale(leftovers.Owner(me.space, gone.pid, me.start))
    # Our pid with another start time: the pid was reused, the owner is gone.
    assert leftovers.is_stale(leftovers.Owner(me.space, me.pid, me.start + 1))
    # Another machine's or container's pids are never judged.
    assert not leftovers.is_stale(leftovers.Owner("0" * 8, gone.pid, 1))
    assert leftovers.parse("compatcheck_0a1b2c3d4e5f") is None  # unmarked: never removed


def test_a_tagged_run_sweeps_only_leftovers_with_its_own_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CI jobs sharing a machine each set their own ``COMPATCHECK_RUN_TAG``: neither acts on
    the other's leftovers, even dead ones (the other job's cleanup is its own to report)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    space, start = leftovers.pid_space(), 1
    mine = tmp_path / f"compatcheck-aaa_{space}_{gone.pid}_{start}-x1"
    theirs = tmp_path / f"compatcheck-bbb_{space}_{gone.pid}_{start}-x2"
    untagged = tmp_path / f"compatcheck-{space}_{gone.pid}_{start}-x3"
    for folder in (mine, theirs, untagged):
        folder.mkdir()
    monkeypatch.setenv(leftovers.TAG_ENV, "aaa")
    result = leftovers.Sweep(tag=leftovers.run_tag())
    leftovers.sweep_temp(result, folder=str(tmp_path))
    assert result.removed == [f"temp folder {mine}"]
    assert theirs.exists() and untagged.exists()
    # Untagged (a person's run, `compatcheck cleanup`): every dead run's leftovers.
    result = leftovers.Sweep()
    leftovers.sweep_temp(result, folder=str(tmp_path))
    assert sorted(result.removed) == sorted([f"temp folder {theirs}", f"temp folder {untagged}"])
