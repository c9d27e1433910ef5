"""The code-only rollback plan, tried for real: OLD's code on a database at NEW's head.

With migrations configured and OLD launched from a command, :class:`Trial` runs beside the two
captures: a scratch database at NEW's head (with SQLite, a copy of NEW's scratch database taken
right after NEW's scripts migrated it; on a server, a database of its own migrated with NEW's
scripts), OLD started on it, the readiness wait and the same warm-up as OLD's own capture. Once
OLD's capture is done too, :meth:`Trial.judge` compares the two runs
(:func:`compatcheck.migrations.plans.judge_trial`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compatcheck.capture.target import Answer, TargetCapture, warmup_summary
from compatcheck.config import CommandTarget, Config
from compatcheck.errors import UnavailableError
from compatcheck.progress import Progress
from compatcheck.targets import Workspace

if TYPE_CHECKING:
    # Trap: compatcheck.migrations imports SQLAlchemy and Alembic (~0.3 s); only a run with
    # migrations configured reaches the code below that needs it.
    from compatcheck.migrations.plans import CodeOnlyTrial
    from compatcheck.migrations.scratch import ScratchDatabase
    from compatcheck.migrations.section import TrialSetup
    from compatcheck.migrations.sources.alembic.project import AlembicProject


@dataclass
class _TrialRun:
    """What the code-only trial saw, before it is judged against OLD's own run."""

    answers: list[Answer] = field(default_factory=list)
    #: Set when the trial could not be carried out at all (not a verdict on the schema).
    not_run: str | None = None
    startup_error: str | None = None
    startup_log: str = ""
    exit_code: int | None = None
    log_tail: str = ""
    setup: TrialSetup | None = None

    def prepared(self, **changes: Any) -> None:
        """Record how the trial's database was prepared (:class:`TrialSetup` fields)."""
        # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
        from compatcheck.migrations.section import TrialSetup

        self.setup = replace(self.setup or TrialSetup(), **changes)


class Trial:
    """The code-only plan, for real: OLD's code on a scratch database migrated to NEW's head.

    Same launch, readiness wait and warm-up as OLD's own capture (it *is* a
    :class:`~compatcheck.capture.target.TargetCapture` of OLD, on another database, with its own
    port, process group and log), then the process is stopped at once: it has nothing to scrape.
    Runs beside the captures; the scratch database is migrated once OLD's and NEW's are (one
    Alembic run at a time), and ``db_done`` tells the migrations inspection it may start.
    """

    def __init__(
        self,
        config: Config,
        ws: Workspace,
        progress: Progress,
        wait_for: Mapping[str, threading.Event],
        db_done: threading.Event,
    ) -> None:
        self.config = config
        self.ws = ws
        self.wait_for = wait_for
        self.db_done = db_done
        self.capture = TargetCapture(config, config.old, ws, progress, db_done)
        self.capture.who = f"old {config.old.label} on NEW's schema"
        self.copied: ScratchDatabase | None = None
        self._seen: _TrialRun | None = None

    def copy_new_database(self, url: str) -> None:
        """Take a copy of NEW's scratch SQLite right after NEW's scripts migrated it to NEW's head.

        Called in NEW's capture thread before NEW starts (so NEW has written nothing yet). It
        gives the trial its database at NEW's head in milliseconds instead of a second Alembic
        run, which would also have to queue for the process-wide Alembic lock. Any failure just
        leaves the trial to migrate its own database.
        """
        # Local import: SQLAlchemy is heavy, and only a run with migrations gets here.
        from sqlalchemy.engine import make_url

        from compatcheck.migrations.scratch import throwaway_sqlite

        source = make_url(url).database
        try:
            dest = self.ws.scratch_database("code-only-copy", "sqlite")
            target = make_url(dest.url).database
            if not source or not target:
                return
            with (
                contextlib.closing(sqlite3.connect(source)) as src,
                contextlib.closing(sqlite3.connect(target)) as dst,
            ):
                throwaway_sqlite(dst)  # NEW waits for this copy: no fsync of scratch data
                src.backup(dst)
        except (UnavailableError, sqlite3.Error, OSError):
            return
        self.copied = dest

    def run(self) -> None:
        """Carry the trial out (a worker job); ``db_done`` is set on every path."""
        start = time.monotonic()
        try:
            out = self._run()
        finally:
            self.db_done.set()
        out.prepared(seconds=round(time.monotonic() - start, 3))
        self._seen = out

    @property
    def seconds(self) -> float:
        """How long the trial took (0 when it did not run)."""
        setup = self._seen.setup if self._seen else None
        return (setup.seconds or 0.0) if setup else 0.0

    def judge(self, baseline: list[Answer] | None) -> CodeOnlyTrial:
        """The verdict: this run against OLD's run on its own database (``baseline``: OLD's
        warm-up, None when OLD never got that far)."""
        # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
        from compatcheck.migrations.plans import CodeOnlyTrial, judge_trial
        from compatcheck.migrations.section import TrialSetup

        run = self._seen or _TrialRun(not_run="not run")
        setup = run.setup or TrialSetup()
        if run.not_run is not None:
            return CodeOnlyTrial(verified=False, note=run.not_run, setup=setup)
        return judge_trial(
            None if baseline is None else [a.exchange() for a in baseline],
            [a.exchange() for a in run.answers],
            startup_error=run.startup_error,
            startup_log=run.startup_log,
            exit_code=run.exit_code,
            log_tail=run.log_tail,
            setup=setup,
        )

    def _run(self) -> _TrialRun:
        # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
        from compatcheck.migrations.releases import framework_of
        from compatcheck.migrations.sources.alembic.project import release_project

        new_loc = release_project(self.config, self.config.new)
        out = _TrialRun()
        mig = self.config.migrations
        # Only an Alembic folder needs an env.py; a SQL folder is run by its source's runner.
        alembic = new_loc is not None and (
            framework_of(new_loc, mig.framework if mig else "auto") == "alembic"
        )
        if new_loc is None or (
            alembic and isinstance(new_loc, Path) and not (new_loc / "env.py").is_file()
        ):
            out.not_run = f"NEW's migrations ({new_loc}) have no env.py to migrate a database with"
            return out
        # NEW's scratch database first: with SQLite, NEW's capture hands over a copy of it.
        # (A worker blocks here: every capture sets its event on every path, in a finally.)
        for role in ("new", "old"):
            ev = self.wait_for[role]
            ev.wait()
            if self.copied is not None:
                break
        t0 = time.monotonic()
        db = self._database(out, new_loc)
        if db is None:
            return out
        out.prepared(prepare_seconds=round(time.monotonic() - t0, 3))
        self._try(out, db)
        return out

    def _database(self, out: _TrialRun, new_loc: Path | AlembicProject) -> ScratchDatabase | None:
        """The scratch database at NEW's head (None, with ``out.not_run`` said, when none)."""
        if self.copied is not None:
            db = self.copied
            out.prepared(database=db.kind, prepared="copy of NEW's migrated database")
            self.db_done.set()
            return db
        mig = self.config.migrations
        database = mig.database if mig else "sqlite"
        try:
            db = self.ws.scratch_database("code-only", database)
            out.prepared(database=db.kind, prepared="migrated with NEW's scripts")
            if db.kind == "server":
                # The name only (``compatcheck_<random>``): the URL may hold credentials.
                out.prepared(database_name=db.shown.rsplit("/", 1)[-1].split("?")[0])
            self.capture.say(f"migrating a scratch database ({db.kind}) to NEW's head")
            # Local import: compatcheck.migrations is heavy (see the TYPE_CHECKING note).
            from compatcheck.migrations.releases import migrate_release

            migrate_release(new_loc, db.url, mig.framework if mig else "auto")
        except UnavailableError as exc:
            out.not_run = f"no scratch database at NEW's head: {exc}"
            return None
        finally:
            self.db_done.set()
        return db

    def _try(self, out: _TrialRun, db: ScratchDatabase) -> None:
        """Start OLD on ``db``, wait for it, send the warm-up, stop it."""
        cap = self.capture
        old = self.config.old
        assert isinstance(old, CommandTarget)  # unrunnable() said so before the trial began
        try:
            cap.running = self.ws.launch(old, database_url=db.url, name="code-only")
        except UnavailableError as exc:
            out.not_run = str(exc)
            return
        running = cap.running
        cap.say(f"started OLD's code on NEW's schema (pid {running.process.pid})")
        try:
            with cap.session() as client:
                reason = cap.wait_ready(client, running.base_url, running.started).reason
                out.prepared(ready_seconds=round(time.monotonic() - running.started, 3))
                if reason is not None:
                    out.startup_error = reason
                    out.startup_log = running.log_tail(lines=40)
                    cap.say(f"never ready: {reason}")
                else:
                    out.answers = cap.warmup(client, running.base_url, with_log=True)
                    out.exit_code = running.exit_code()
                    cap.say(warmup_summary(out.answers))
            out.log_tail = running.log_tail()
        finally:
            self.ws.stop(running)


def unrunnable(config: Config) -> str | None:
    """Why the code-only plan cannot be tried for real with this config (None: it can)."""
    old = config.old
    if not isinstance(old, CommandTarget):
        return f"OLD is a `{old.kind}` target: compatcheck has no command to start it with"
    if not old.uses_database:
        return "OLD's command and env take no `{database_url}`: it cannot be pointed elsewhere"
    return None
