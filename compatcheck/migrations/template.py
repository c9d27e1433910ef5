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
  when another session is there (an ``env.py`` keeping a pool of its own) no template is taken
  (progress says so), rather than wait PostgreSQL's five seconds for it to leave;
- MariaDB has no copy of its own: each table's ``SHOW CREATE TABLE`` and rows, then its
  triggers (:func:`mysql_copy`); a database holding a view, routine, event or sequence is not
  copied, and fresh databases are built as before.

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
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from compatcheck.errors import UnavailableError
from compatcheck.interrupts import pause_point
from compatcheck.migrations.roundtrip import Runner, RunnerUnavailable
from compatcheck.migrations.scratch import (
    Scratch,
    create_server_database,
    engine_for,
    mask,
    new_sqlite,
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
    #: The template: a SQLite file's path or a server database's name; None: none taken.
    template: str | None = None

    def snapshot(self, scratch: Scratch, conn: Connection, runner: Runner) -> None:
        """The round trip's moment at OLD: take the template (nothing to check a copy with when
        OLD had no migrations)."""
        if self.old is None or not scratch.owned or scratch.workspace is None:
            return
        try:
            self.template = _take(self.db_url, scratch, conn, runner)
            self.say("a copy of the database at OLD taken: later fresh databases start there")
        except _FAILURES as exc:
            self.say(f"no copy of the database at OLD ({one_line(exc)}): fresh ones are built")
        pause_point("template:taken")

    @contextlib.contextmanager
    def open(self, source: Source) -> Iterator[Fresh]:
        """A fresh database: a copy of the template checked at OLD, or an empty one."""
        if self.template is not None:
            with contextlib.ExitStack() as stack:
                copy = self._copy_at_old(stack, source, self.template)
                if copy is not None:
                    yield copy
                    return
        with (
            scratch_database(self.db_url, workspace=self.workspace) as scratch,
            scratch.engine.connect() as conn,
        ):
            runner = source.runner(scratch, conn)
            try:
                yield Fresh(scratch, conn, runner, at_old=False)
            finally:
                runner.close()

    def _copy_at_old(
        self, stack: contextlib.ExitStack, source: Source, template: str
    ) -> Fresh | None:
        """A copy of the template whose ``env.py`` run migrates it and finds OLD there; None
        (and no more copies) otherwise."""
        assert self.old is not None
        make = partial(_copy, self.db_url, template, self.say)
        try:
            scratch = stack.enter_context(
                scratch_database(self.db_url, workspace=self.workspace, make=make)
            )
        except _FAILURES as exc:
            self._give_up(f"it could not be copied: {one_line(exc)}")
            return None
        conn = stack.enter_context(scratch.engine.connect())
        runner = source.runner(scratch, conn)
        stack.callback(runner.close)
        failed = runner.upgrade(self.old)
        if failed is not None:
            self._give_up(f"a copy did not check out: {failed.error}")
            return None
        return Fresh(scratch, conn, runner, at_old=True)

    def _give_up(self, why: str) -> None:
        self.template = None
        self.say(f"no more copies of the database at OLD ({why}): fresh ones are built")


#: What stops a fresh database from being made or served (no right or room on the server, the
#: framework's runner not starting there, the connection lost): the caller keeps what it had.
#: (:class:`~compatcheck.migrations.scratch.ScratchUnavailable` is an ``UnavailableError``.)
FRESH_FAILURES = (RunnerUnavailable, UnavailableError, sa.exc.SQLAlchemyError)

#: What makes a copy fail (and the database be built instead).
_FAILURES = (UnavailableError, sa.exc.SQLAlchemyError, sqlite3.Error, OSError)


def _take(db_url: str | None, scratch: Scratch, conn: Connection, runner: Runner) -> str:
    """Copy ``scratch`` as it is now; the template (see :attr:`FreshDatabases.template`)."""
    ws = scratch.workspace
    assert ws is not None
    if conn.in_transaction():
        conn.commit()
    if scratch.dialect == "sqlite":
        path = sqlite_path(ws, f"template-{secrets.token_hex(3)}")
        target = sqlite3.connect(path)
        try:
            conn.connection.dbapi_connection.backup(target)  # type: ignore[union-attr]
        finally:
            target.close()
        return str(path)
    assert db_url is not None
    name = str(scratch.url.database)
    if scratch.dialect == "mysql":
        url, copy = create_server_database(db_url, ws, _quiet, moment="template-database")
        mysql_copy(url, name)
        return copy
    runner.release()
    conn.invalidate()  # reconnects at its next use
    others = _other_sessions(db_url, name)
    if others:
        raise UnavailableError(
            f"{others} session(s) other than compatcheck's are on it (env.py's own connections?)"
        )
    _url, copy = create_server_database(
        db_url, ws, _quiet, template=name, moment="template-database"
    )
    return copy


def _quiet(_message: str) -> None:
    """The template is not a database the user needs to hear about (the copies are)."""


def _copy(db_url: str | None, template: str, say: Callable[[str], None], ws: Workspace) -> Scratch:
    """A new scratch database holding what the template holds."""
    if db_url is None:
        return new_sqlite(ws, say, Path(template))
    server = make_url(db_url)
    mysql = server.get_backend_name() != "postgresql"
    url, _name = create_server_database(
        server, ws, say, template=None if mysql else template, moment="copy-database"
    )
    scratch = Scratch(url, engine_for(url), mask(url), "mysql" if mysql else "postgresql", True)
    if mysql:
        try:
            mysql_copy(url, template)
        finally:
            scratch.engine.dispose()
    return scratch


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


def mysql_copy(target: URL, source: str) -> None:
    """Fill the empty database ``target`` names with the tables of ``source`` (same server):
    each table's own ``SHOW CREATE TABLE`` (indexes, foreign keys, ``AUTO_INCREMENT``
    counters), then its rows (generated columns left to compute themselves), foreign key checks
    off meanwhile, then its triggers (after the rows, which must not fire them), each made
    again from its own ``SHOW CREATE TRIGGER`` under its own ``sql_mode``, in the order they
    fire. A database holding anything else (a view, a routine, an event, a sequence), or a
    trigger whose text names the source database, is not copied
    (:class:`~compatcheck.errors.UnavailableError`): its text names the source database."""
    engine = engine_for(target)
    try:
        with engine.connect() as conn:
            found = inventory_of(conn, source)
            others = sorted(f"{k} {n}" for k, n, _c in found if k not in ("BASE TABLE", "trigger"))
            if others:
                raise UnavailableError(f"MariaDB: {', '.join(others[:3])} cannot be copied")
            has_triggers = any(kind == "trigger" for kind, _n, _c in found)
            triggers = _triggers(conn, source) if has_triggers else []
            quote = conn.dialect.identifier_preparer.quote_identifier
            raw: Any = conn.connection.dbapi_connection
            cur = raw.cursor()
            try:
                # The raw cursor: no parameters, so no `%` in a statement is read as one.
                cur.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
                tables = [(t, cols) for kind, t, cols in found if kind == "BASE TABLE"]
                for table, _cols in tables:
                    cur.execute(f"SHOW CREATE TABLE {quote(source)}.{quote(table)}")
                    cur.execute(cur.fetchone()[1])
                for table, cols in tables:
                    names = ", ".join(quote(c) for c in cols)
                    cur.execute(
                        f"INSERT INTO {quote(table)} ({names}) "
                        f"SELECT {names} FROM {quote(source)}.{quote(table)}"
                    )
                for mode, statement in triggers:
                    cur.execute(f"SET SESSION sql_mode = '{mode}'")
                    cur.execute(statement)
                raw.commit()
            finally:
                cur.close()
    finally:
        engine.dispose()


#: ``DEFINER=user@host`` in a ``CREATE TRIGGER``: dropped, so that the copy is made by the user
#: compatcheck connects as (naming another definer needs a privilege it may not have).
_DEFINER = re.compile(
    r"^\s*CREATE\s+DEFINER\s*=\s*(?:`[^`]*`|'[^']*'|[^@\s]+)@(?:`[^`]*`|'[^']*'|\S+)\s+", re.I
)


def _triggers(conn: Connection, source: str) -> list[tuple[str, str]]:
    """(sql_mode, CREATE TRIGGER without its definer) of each trigger of ``source``, in the order
    they were made to fire (table, timing, event, action order)."""
    query = (
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = :s "
        "ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER"
    )
    names = [str(n) for (n,) in conn.execute(sa.text(query), {"s": source})]
    quote = conn.dialect.identifier_preparer.quote_identifier
    out = []
    for name in names:
        row = conn.exec_driver_sql(f"SHOW CREATE TRIGGER {quote(source)}.{quote(name)}").one()
        mode, statement = str(row[1]), str(row[2])
        if source in statement or not re.fullmatch(r"[A-Z_,]*", mode):
            raise UnavailableError(f"MariaDB: trigger {name} cannot be copied")
        out.append((mode, _DEFINER.sub("CREATE ", statement, count=1)))
    if conn.in_transaction():
        conn.commit()
    return out


def inventory_of(conn: Connection, schema: str) -> list[tuple[str, str, list[str]]]:
    """(kind, name, stored columns) of each table and view of ``schema``, and (kind, name,
    []) of each trigger, routine and event."""
    columns: dict[str, list[str]] = {}
    query = (
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :s "
        "AND (GENERATION_EXPRESSION IS NULL OR GENERATION_EXPRESSION = '') "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION"
    )
    for table, column in conn.execute(sa.text(query), {"s": schema}):
        columns.setdefault(str(table), []).append(str(column))
    kinds = (
        "SELECT TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = :s "
        "UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = :s "
        "UNION ALL SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = :s "
        "UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = :s"
    )
    rows = conn.execute(sa.text(kinds), {"s": schema}).all()
    if conn.in_transaction():
        conn.commit()
    return [(str(k), str(n), columns.get(str(n), [])) for k, n in sorted(rows)]
