"""Run SQL migrations on the scratch database as their tool would: one connection, no process.

Per section (one direction of one migration) the tool's transaction: golang-migrate runs a file
as one query (PostgreSQL makes that one implicit transaction, its sqlite3 driver wraps it in
``BEGIN``/``COMMIT``, its MySQL driver uses none); goose, dbmate and Flyway run each migration in
a transaction unless the file opts out (``NO TRANSACTION``, ``transaction:false``,
``executeInTransaction=false``). Honest about MariaDB: every DDL statement commits on its own
there, so a failing migration is left half-applied whatever the tool says; the error says so.

Statements are sent one at a time on the raw driver connection (split by :mod:`.splitting`),
so a failure names ``file:line``; the version table is kept by :mod:`.books`.

Trap: the SQLAlchemy connection is shared with the round trip's seeding and inspection. The
runner commits what SQLAlchemy began, switches the driver to autocommit so that its own
``BEGIN``/``COMMIT`` are the only transaction boundaries, and switches it back afterwards.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from compatcheck.interrupts import Cancelled
from compatcheck.migrations.roundtrip import Failed
from compatcheck.migrations.section import OnlineOnly
from compatcheck.migrations.sources.sqlfiles.books import BOOKS, FlywayBook
from compatcheck.migrations.sources.sqlfiles.formats import (
    FLYWAY,
    GOLANG_MIGRATE,
    Folder,
    Migration,
    Section,
)

#: Statements PostgreSQL refuses inside a transaction block (Flyway runs them outside one).
_NON_TX = re.compile(r"\bCONCURRENTLY\b|^\s*VACUUM\b|^\s*(CREATE|DROP)\s+DATABASE\b", re.I)


class StepError(Exception):
    """A section that failed: ``str()`` is one line naming ``file:line``."""


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


class SqlRunner:
    """Implements :class:`~compatcheck.migrations.roundtrip.Runner` for the four SQL tools."""

    def __init__(
        self,
        framework: str,
        folder: Folder,
        conn: Connection,
        dialect: str,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.framework = framework
        self.folder = folder
        self.conn = conn
        self.dialect = dialect
        self.cancelled = cancelled
        self.migrations = {m.version: m for m in folder.migrations}
        self.order = [m.version for m in folder.migrations]
        self.book = BOOKS[framework](dialect, conn.engine.url.username or "")
        self._applied: list[str] | None = None

    @property
    def version_tables(self) -> Collection[str]:
        return (self.book.table,)

    def close(self) -> None:
        """Nothing to stop: everything ran on the caller's connection."""

    def load_ahead(self) -> None:
        """Nothing: SQL files have no code to import."""

    def release(self) -> None:
        """Nothing: the runner has no connection of its own."""

    def app_url(self) -> str:
        """The scratch database's URL as compatcheck reaches it (the files run here)."""
        return str(self.conn.engine.url.render_as_string(hide_password=False))

    # -- the raw connection ------------------------------------------------------------------

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A driver cursor in autocommit mode (see the module's Trap)."""
        if self.conn.in_transaction():
            self.conn.commit()
        raw: Any = self.conn.connection.dbapi_connection
        if self.dialect == "sqlite":
            before, raw.isolation_level = raw.isolation_level, None
        elif self.dialect == "postgresql":
            before, raw.autocommit = raw.autocommit, True
            # Commits need not wait for the WAL's fsync: the runner only runs on throwaway
            # databases (scratch, or the one --use-existing-empty-database names), and a crash loses
            # the last commits at worst, never consistency. Half of a 50-step round trip's time.
            raw.execute("SET synchronous_commit TO off")
        else:
            before = raw.get_autocommit()
            raw.autocommit(True)
        cur = raw.cursor()
        try:
            yield cur
        finally:
            cur.close()
            if self.dialect == "sqlite":
                raw.isolation_level = before
            elif self.dialect == "postgresql":
                raw.autocommit = before
            else:
                raw.autocommit(before)

    def _transactional(self, section: Section) -> bool:
        """Whether the tool runs this section in one transaction; :class:`StepError` when it
        refuses to run it at all."""
        if section.no_transaction:
            return False
        if self.framework == GOLANG_MIGRATE:
            # Its MySQL driver sends the file without a transaction; on PostgreSQL the file is
            # one query, an implicit transaction only when it holds several statements (a lone
            # `CREATE INDEX CONCURRENTLY` file works there).
            if self.dialect == "postgresql":
                return len(section.statements) != 1
            return self.dialect == "sqlite"  # its sqlite3 driver wraps the file
        if self.framework == FLYWAY and self.dialect == "postgresql":
            outside = [bool(_NON_TX.search(st.text)) for st in section.statements]
            if any(outside) and not all(outside):
                raise StepError(
                    f"{section.path.name}: Flyway refuses it: detected both transactional and "
                    "non-transactional statements within the same migration"
                )
            return not any(outside)
        return True

    def applied(self, cur: Any) -> list[str]:
        if self._applied is None:
            self.book.ensure(cur)
            self._applied = self.book.applied(cur, self.order)
        return self._applied

    # -- one section ---------------------------------------------------------------------------

    def _run(self, cur: Any, m: Migration, side: str, target: str | None) -> None:
        """Run one direction of ``m`` with its bookkeeping; :class:`StepError` when it fails."""
        section = m.up if side == "up" else m.down
        if section is not None and section.not_executable is not None:
            raise StepError(section.not_executable)
        if section is not None and section.refused is not None:
            raise StepError(section.refused)
        if section is None and side == "down" and self.framework == FLYWAY:
            raise StepError(
                f"Flyway cannot undo version {m.version}: no U{m.version}__*.sql undo script"
            )
        tx = section is None or self._transactional(section)
        self.book.before(cur, m, side, target)
        t0 = time.perf_counter()
        try:
            if tx:
                cur.execute("BEGIN")
            if section is not None:
                self._statements(cur, section)
            self.book.inside(cur, m, side, int((time.perf_counter() - t0) * 1000))
            if tx:
                cur.execute("COMMIT")
        except BaseException:
            if tx:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
            raise
        self.book.after(cur, m, side, target)

    def _statements(self, cur: Any, section: Section) -> None:
        for done, st in enumerate(section.statements):
            try:
                cur.execute(st.text)
            except Exception as exc:
                raise StepError(self._where(section, st.line, exc, done)) from exc

    def _where(self, section: Section, line: int, exc: Exception, done: int) -> str:
        error = f"{section.path.name}:{line}: {_one_line(exc)}"
        if self.dialect == "mysql" and done:
            error += (
                f" (MariaDB committed the {done} statement(s) before it: DDL is not "
                "transactional there, the migration is half-applied)"
            )
        return error

    # -- the Runner protocol ---------------------------------------------------------------------

    def upgrade(self, target: str) -> Failed | None:
        """Apply the migrations after the database's version up to ``target``, then (Flyway)
        the repeatable scripts not yet run."""
        return self._walk(lambda cur, applied: self._up_steps(cur, applied, target))

    def _up_steps(self, cur: Any, applied: list[str], target: str) -> Iterator[str | None]:
        stop = (
            self.order.index(target.split(",")[0])
            if target not in ("head", "heads")
            else len(self.order) - 1
        )
        for version in self.order[: stop + 1]:
            if version in applied:
                continue
            yield version
            self._run(cur, self.migrations[version], "up", version)
            applied.append(version)
        yield None
        self._repeatables(cur)

    def _walk(self, steps: Callable[[Any, list[str]], Iterator[str | None]]) -> Failed | None:
        """Run ``steps`` on one cursor with the applied versions. Each version it yields is
        about to run (after a cancel check): a failure from then on names it; None names no
        version (the repeatable scripts). Upgrade and downgrade share the failure handling."""
        current: str | None = None
        try:
            with self._cursor() as cur:
                for current in steps(cur, self.applied(cur)):
                    if current is not None and self.cancelled():
                        raise Cancelled(f"stopped before `{current}`: the run is closing")
        except StepError as exc:
            return Failed(current, str(exc), exc)
        except Cancelled:
            raise
        except Exception as exc:
            return Failed(current, _one_line(exc), exc)
        return None

    def _repeatables(self, cur: Any) -> None:
        if not isinstance(self.book, FlywayBook):
            return
        for section in self.folder.repeatables:
            if self.book.repeatable_done(cur, section.path):
                continue
            cur.execute("BEGIN")
            try:
                self._statements(cur, section)
                desc = section.path.name.removeprefix("R__").removesuffix(".sql")
                self.book.record(cur, None, desc.replace("_", " "), "SQL", section.path, 0)
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise

    def downgrade(self, path: Sequence[str]) -> Failed | None:
        """Undo ``path``, newest first; each must be the newest applied migration."""
        return self._walk(lambda cur, applied: self._down_steps(cur, applied, path))

    def _down_steps(
        self, cur: Any, applied: list[str], path: Sequence[str]
    ) -> Iterator[str | None]:
        for version in path:
            yield version
            if not applied or applied[-1] != version:
                raise StepError(f"version {version} is not the newest applied one")
            index = self.order.index(version)
            target = self.order[index - 1] if index else None
            self._run(cur, self.migrations[version], "down", target)
            applied.pop()

    def offline_sql(self, path: Sequence[str], new: str) -> tuple[str, tuple[OnlineOnly, ...]]:
        """The downgrade as the SQL the files hold, in the order it runs (nothing needs a
        database: the files are the SQL)."""
        parts: list[str] = []
        online: list[OnlineOnly] = []
        for version in path:
            m = self.migrations[version]
            section = m.down
            if section is None:
                parts.append(f"-- {version}: no down ({m.path.name})")
                continue
            if section.not_executable is not None:
                online.append(OnlineOnly(version, section.not_executable))
                continue
            parts.append(f"-- {version}: {section.path.name}")
            parts += [f"{st.text};" for st in section.statements]
        return "\n".join(parts) + ("\n" if parts else ""), tuple(online)
