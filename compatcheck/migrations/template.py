"""Fresh scratch databases after the first round trip, as copies of that one at OLD.

The walk past a broken downgrade and the rerun without seeded rows each need a new database at
OLD (or above it). Building one means the starting schema (``--base-command``: the application's
own process, its imports, its ``create_all``) and OLD's revisions again, per database: most of
the time of an inspection that walks (Keystone: nine broken downgrades). So the round trip takes
one copy of its database right after the upgrade to OLD, before any row is seeded (the
*template*), and every later fresh database is a copy of it:

- SQLite: SQLite's backup API into a file of the run's temp folder (the helper's connection is
  idle between requests: it commits after each phase);
- PostgreSQL: ``CREATE DATABASE ... TEMPLATE``, which wants no other session on the source, so
  the runner's and compatcheck's connections are closed for it (they reopen at their next use);
  when another session is there (an ``env.py`` keeping a pool of its own) no template is taken,
  rather than wait PostgreSQL's five seconds for it to leave;
- MariaDB has nothing faster than building again: fresh databases are built as before.

Every copy is a scratch database like the others (made and registered for dropping by
:func:`~compatcheck.migrations.scratch.scratch_database`, pause points ``template-database:*``
and ``copy-database:*``). A copy skips ``--base-command``, and an ``env.py`` that reads its
database from a file that command writes (Mailman's) would migrate another one: so each copy is
first checked by an upgrade to OLD (no step runs; the runner checks the database that migrated
is the one it handed over and that it records OLD); when that fails, copies are given up and the
database is built from nothing, as the first was.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from compatcheck.errors import UnavailableError
from compatcheck.interrupts import pause_point
from compatcheck.migrations.roundtrip import Runner
from compatcheck.migrations.scratch import (
    Scratch,
    create_server_database,
    engine_for,
    one_line,
    scratch_database,
    sqlite_path,
)
from compatcheck.migrations.sources import Source
from compatcheck.targets import Workspace


@dataclass(frozen=True)
class Fresh:
    """A fresh scratch database, compatcheck's connection and a runner on it; ``at_old``: a copy
    of the template (starting schema made, OLD's revisions applied), else empty."""

    scratch: Scratch
    conn: Connection
    runner: Runner
    at_old: bool


@dataclass
class FreshDatabases:
    """Where the walk and the rerun get their databases: copies of the template once
    :meth:`snapshot` took one, else databases built from nothing."""

    db_url: str | None
    workspace: Workspace | None
    old: str | None
    say: Callable[[str], None]
    #: What :func:`scratch_database` copies (a file path or a database name), or None.
    template: str | None = None

    def snapshot(self, scratch: Scratch, conn: Connection, runner: Runner) -> None:
        """The round trip's moment at OLD: take the template (nothing to check a copy with when
        OLD had no migrations)."""
        if self.old is None or not scratch.owned or scratch.workspace is None:
            return
        try:
            self.template = _take(self.db_url, scratch, conn, runner)
            if self.template is not None:
                self.say("a copy of the database at OLD taken: later fresh databases start there")
        except (UnavailableError, sa.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
            self.say(f"no copy of the database at OLD ({one_line(exc)}): fresh ones are built")
        pause_point("template:taken")

    @contextlib.contextmanager
    def open(self, source: Source) -> Iterator[Fresh]:
        """A fresh database: a copy of the template checked at OLD, or an empty one."""
        copy = self.template
        with (
            scratch_database(self.db_url, workspace=self.workspace, copy_of=copy) as scratch,
            scratch.engine.connect() as conn,
        ):
            runner = source.runner(scratch, conn)
            try:
                if copy is None or self._usable(runner):
                    yield Fresh(scratch, conn, runner, at_old=copy is not None)
                    return
            finally:
                runner.close()
        with self.open(source) as fresh:  # the copy was refused: self.template is None now
            yield fresh

    def _usable(self, runner: Runner) -> bool:
        assert self.old is not None
        failed = runner.upgrade(self.old)
        if failed is None:
            return True
        self.template = None
        self.say(f"a copy of the database at OLD did not check out ({failed.error}): fresh ones")
        return False


def _take(db_url: str | None, scratch: Scratch, conn: Connection, runner: Runner) -> str | None:
    """Copy ``scratch`` as it is now; what :func:`scratch_database` copies from, or None."""
    assert scratch.workspace is not None
    if conn.in_transaction():
        conn.commit()
    if scratch.dialect == "sqlite":
        path = sqlite_path(scratch.workspace, f"template-{secrets.token_hex(3)}")
        target = sqlite3.connect(path)
        try:
            conn.connection.dbapi_connection.backup(target)  # type: ignore[union-attr]
        finally:
            target.close()
        return str(path)
    if scratch.dialect != "postgresql" or db_url is None:
        return None
    name = str(scratch.url.database)
    runner.release()
    conn.invalidate()  # reconnects at its next use
    if _other_sessions(db_url, name):
        return None
    _url, copy = create_server_database(
        db_url, scratch.workspace, lambda _m: None, template=name, moment="template-database"
    )
    return copy


def _other_sessions(db_url: str, name: str) -> int:
    """Sessions on the database ``name`` (``CREATE DATABASE ... TEMPLATE`` waits 5 s for them
    to leave, then fails)."""
    engine = engine_for(make_url(db_url))
    try:
        with engine.connect() as admin:
            query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :n")
            return int(admin.execute(query, {"n": name}).scalar_one())
    finally:
        engine.dispose()
