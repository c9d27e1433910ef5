"""Each tool's own version table, kept exactly as the tool keeps it.

Why exactly: the table is part of the database a rollback leaves behind (a dirty golang-migrate
version blocks every later ``migrate`` run; a goose row left for an undone version makes goose
believe it is applied), and the round trip must leave the scratch database as the real tool
would. The table itself is the tool's bookkeeping: :attr:`Book.table` is kept out of the schema
comparison.

- golang-migrate: ``schema_migrations(version, dirty)``, one row: the current version, ``dirty``
  while a migration runs (set before, cleared after, each in its own transaction), so a failed
  migration leaves ``dirty = true``; a down to nothing leaves the table empty.
- goose: ``goose_db_version``, a row ``(0, true)`` when the table is made, a row per applied
  version, that row deleted by ``down``; both in the migration's transaction.
- dbmate: ``schema_migrations(version)``, one row per applied version, in the migration's
  transaction.
- Flyway: ``flyway_schema_history``, a row per run (``SQL`` for a migration, ``UNDO_SQL`` for an
  undo), with Flyway's CRC32 checksum of the script.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compatcheck.migrations.sources.sqlfiles.formats import (
    DBMATE,
    FLYWAY,
    GOLANG_MIGRATE,
    GOOSE,
    Migration,
)

Execute = Callable[[str], Any]


def _has_table(cur: Any, dialect: str, table: str) -> bool:
    if dialect == "sqlite":
        cur.execute(f"SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
    elif dialect == "postgresql":
        cur.execute(f"SELECT to_regclass('{table}')::text")
        row = cur.fetchone()
        return bool(row and row[0])
    else:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
        )
    return cur.fetchone() is not None


def _true(dialect: str) -> str:
    return "1" if dialect == "sqlite" else "true"


class Book:
    """One tool's version table on one dialect."""

    framework = ""
    table = ""

    def __init__(self, dialect: str, user: str = "") -> None:
        self.dialect = dialect
        self.user = user

    def ensure(self, cur: Any) -> None:
        """Create the table as the tool does on its first run (nothing when it exists)."""
        if not _has_table(cur, self.dialect, self.table):
            self.create(cur)

    def create(self, cur: Any) -> None:
        """Create the missing table (a tool whose DDL says ``IF NOT EXISTS`` overrides
        :meth:`ensure` instead)."""
        raise NotImplementedError

    def applied(self, cur: Any, order: list[str]) -> list[str]:
        """The versions the table says are applied, in the tool's order."""
        raise NotImplementedError

    def before(self, cur: Any, m: Migration, side: str, target: str | None) -> None:
        """Bookkeeping before the section runs, outside its transaction (golang-migrate)."""

    def inside(self, cur: Any, m: Migration, side: str, millis: int) -> None:
        """Bookkeeping in the section's transaction (goose, dbmate, Flyway)."""

    def after(self, cur: Any, m: Migration, side: str, target: str | None) -> None:
        """Bookkeeping once the section succeeded, outside its transaction (golang-migrate)."""


class MigrateBook(Book):
    framework = GOLANG_MIGRATE
    table = "schema_migrations"

    def ensure(self, cur: Any) -> None:
        if self.dialect == "sqlite":
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (version uint64,dirty bool)")
            cur.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON {self.table} (version)"
            )
        else:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(version bigint not null primary key, dirty boolean not null)"
            )

    def applied(self, cur: Any, order: list[str]) -> list[str]:
        cur.execute(f"SELECT version, dirty FROM {self.table} LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return []
        return [v for v in order if int(v) <= int(row[0])]

    def _set(self, cur: Any, target: str | None, dirty: bool) -> None:
        """golang-migrate's ``SetVersion``: the one row, in a transaction of its own."""
        cur.execute("BEGIN")
        cur.execute(f"DELETE FROM {self.table}")
        version = -1 if target is None else int(target)
        if version >= 0 or dirty:
            flag = _true(self.dialect) if dirty else ("0" if self.dialect == "sqlite" else "false")
            cur.execute(f"INSERT INTO {self.table} (version, dirty) VALUES ({version}, {flag})")
        cur.execute("COMMIT")

    def before(self, cur: Any, m: Migration, side: str, target: str | None) -> None:
        self._set(cur, target, True)

    def after(self, cur: Any, m: Migration, side: str, target: str | None) -> None:
        self._set(cur, target, False)


class GooseBook(Book):
    framework = GOOSE
    table = "goose_db_version"

    def create(self, cur: Any) -> None:
        ddl = {
            "postgresql": "id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, version_id "
            "bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now()",
            "mysql": "id serial NOT NULL, version_id bigint NOT NULL, is_applied boolean NOT NULL, "
            "tstamp timestamp NOT NULL DEFAULT now(), PRIMARY KEY(id)",
            "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, "
            "is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now'))",
        }[self.dialect]
        cur.execute("BEGIN")
        cur.execute(f"CREATE TABLE {self.table} ({ddl})")
        cur.execute(
            f"INSERT INTO {self.table} (version_id, is_applied) VALUES (0, {_true(self.dialect)})"
        )
        cur.execute("COMMIT")

    def applied(self, cur: Any, order: list[str]) -> list[str]:
        cur.execute(f"SELECT version_id FROM {self.table} WHERE version_id > 0")
        got = {int(r[0]) for r in cur.fetchall()}
        return [v for v in order if int(v) in got]

    def inside(self, cur: Any, m: Migration, side: str, millis: int) -> None:
        if side == "up":
            cur.execute(
                f"INSERT INTO {self.table} (version_id, is_applied) "
                f"VALUES ({int(m.version)}, {_true(self.dialect)})"
            )
        else:
            cur.execute(f"DELETE FROM {self.table} WHERE version_id = {int(m.version)}")


class DbmateBook(Book):
    framework = DBMATE
    table = "schema_migrations"

    def ensure(self, cur: Any) -> None:
        if self.dialect == "postgresql":
            cur.execute(
                f"create table if not exists public.{self.table} (version varchar primary key)"
            )
        else:
            cur.execute(
                f"create table if not exists {self.table} (version varchar(128) primary key)"
            )

    def applied(self, cur: Any, order: list[str]) -> list[str]:
        cur.execute(f"SELECT version FROM {self.table}")
        got = {str(r[0]) for r in cur.fetchall()}
        return [v for v in order if v in got]

    def inside(self, cur: Any, m: Migration, side: str, millis: int) -> None:
        if side == "up":
            cur.execute(f"insert into {self.table} (version) values ('{m.version}')")
        else:
            cur.execute(f"delete from {self.table} where version = '{m.version}'")


def flyway_checksum(path: Path) -> int:
    """Flyway's checksum: CRC32 over the script's lines without line ends, as a signed int."""
    crc = 0
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class FlywayBook(Book):
    framework = FLYWAY
    table = "flyway_schema_history"

    def create(self, cur: Any) -> None:
        now = (
            "CURRENT_TIMESTAMP"
            if self.dialect != "sqlite"
            else "(strftime('%Y-%m-%d %H:%M:%f','now'))"
        )
        cur.execute(
            f"CREATE TABLE {self.table} (installed_rank INT NOT NULL, version VARCHAR(50), "
            "description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) "
            "NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP "
            f"NOT NULL DEFAULT {now}, execution_time INT NOT NULL, success BOOLEAN NOT NULL, "
            f"CONSTRAINT {self.table}_pk PRIMARY KEY (installed_rank))"
        )
        cur.execute(f"CREATE INDEX {self.table}_s_idx ON {self.table} (success)")

    def _rows(self, cur: Any) -> list[tuple[Any, ...]]:
        cur.execute(
            f"SELECT version, type, script, checksum FROM {self.table} ORDER BY installed_rank"
        )
        return [tuple(r) for r in cur.fetchall()]

    def applied(self, cur: Any, order: list[str]) -> list[str]:
        done: set[str] = set()
        for version, kind, _script, _sum in self._rows(cur):
            if version is None:
                continue
            if kind == "UNDO_SQL":
                done.discard(str(version))
            else:
                done.add(str(version))
        return [v for v in order if v in done]

    def repeatable_done(self, cur: Any, path: Path) -> bool:
        """A repeatable script with this checksum ran already (Flyway runs it again on change)."""
        rows = [r for r in self._rows(cur) if r[0] is None and r[2] == path.name]
        return bool(rows) and rows[-1][3] == flyway_checksum(path)

    def record(
        self, cur: Any, version: str | None, description: str, kind: str, path: Path, millis: int
    ) -> None:
        cur.execute(f"SELECT COALESCE(MAX(installed_rank), 0) + 1 FROM {self.table}")
        rank = int(cur.fetchone()[0])
        ver = "NULL" if version is None else f"'{version}'"
        desc = description.replace("'", "''")
        user = self.user.replace("'", "''")
        cur.execute(
            f"INSERT INTO {self.table} (installed_rank, version, description, type, script, "
            "checksum, installed_by, execution_time, success) VALUES "
            f"({rank}, {ver}, '{desc}', '{kind}', '{path.name}', {flyway_checksum(path)}, "
            f"'{user}', {millis}, {_true(self.dialect)})"
        )

    def inside(self, cur: Any, m: Migration, side: str, millis: int) -> None:
        path = m.path if side == "up" else (m.down.path if m.down else m.path)
        self.record(
            cur, m.version, m.description, "SQL" if side == "up" else "UNDO_SQL", path, millis
        )


BOOKS: dict[str, type[Book]] = {
    GOLANG_MIGRATE: MigrateBook,
    GOOSE: GooseBook,
    DBMATE: DbmateBook,
    FLYWAY: FlywayBook,
}
