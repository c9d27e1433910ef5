"""The SQL-file sources: golang-migrate, goose, dbmate and Flyway folders as core steps.

A folder is read by its tool's rules (:mod:`.formats`), split by the target database's rules
(:mod:`.splitting`), read statically by one reader per history (:func:`.reading.read_history`),
and run
on a scratch database by :class:`.runner.SqlRunner` with the tool's transaction semantics and
version table. The history is linear: each step follows the one before it in the tool's order.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path

from sqlalchemy.engine import Connection

from compatcheck.checks.availability import UNAVAILABLE
from compatcheck.checks.migrations import DIRTY_VERSION, REPEATABLE_NOT_UNDONE
from compatcheck.errors import InputError
from compatcheck.migrations.graph import History
from compatcheck.migrations.roundtrip import Runner
from compatcheck.migrations.scratch import Scratch
from compatcheck.migrations.sources.sqlfiles.formats import (
    DBMATE,
    FLYWAY,
    FRAMEWORKS,
    GOLANG_MIGRATE,
    GOOSE,
    READERS,
    Folder,
    Note,
)
from compatcheck.migrations.sources.sqlfiles.reading import read_history
from compatcheck.migrations.steps import Step, Wording
from compatcheck.model import Finding

__all__ = ["FRAMEWORKS", "SqlFilesSource", "detect"]

WORDING = {
    GOLANG_MIGRATE: Wording("Migration", "`.up.sql`", "`.down.sql`", "`migrate up`"),
    GOOSE: Wording("Migration", "`-- +goose Up` section", "`-- +goose Down` section", "`goose up`"),
    DBMATE: Wording("Migration", "`-- migrate:up` block", "`-- migrate:down` block", "`dbmate up`"),
    FLYWAY: Wording("Migration", "`V` script", "`U` (undo) script", "`flyway migrate`"),
}


class LinearOrder:
    """A history where every step follows the previous one (all four tools)."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)

    def downgrade_order(self, new: str) -> Sequence[str]:
        return list(reversed(self.ids[: self.ids.index(new) + 1]))

    def plain_downgrade(self, new: str, old: str | None) -> Collection[str] | None:
        return None  # the tool undoes exactly the steps above OLD

    def find(self, ref: str) -> str | None:
        """``001`` → ``1``, ``V1_2``/``1_2`` → ``1.2``; ``0`` is before the first step."""
        want = ref.removeprefix("V").replace("_", ".")
        try:
            number = tuple(int(p) for p in want.split("."))
        except ValueError:
            number = None
        for sid in self.ids:
            if number is not None and tuple(int(p) for p in sid.split(".")) == number:
                return sid
        if number is not None and not any(number):
            return None
        from compatcheck.migrations.graph import UnknownRevision

        raise UnknownRevision(ref)


class SqlFilesSource:
    """One folder of SQL migrations of one of the four tools, for one database dialect."""

    def __init__(self, framework: str, location: Path, dialect: str = "sqlite") -> None:
        if framework not in READERS:
            raise InputError(f"unknown SQL migrations framework `{framework}`")
        if not location.is_dir():
            raise InputError(f"migrations folder {location}: no such directory")
        self.framework = framework
        self.location = location
        #: ``auto`` (nothing runs and no --dialect): what the files are written for, guessed.
        self.dialect = guess_dialect(location) if dialect == AUTO else dialect
        self.not_executable: str | None = None
        self.folder: Folder = READERS[framework](location, dialect)
        if not self.folder.migrations:
            raise InputError(f"migrations folder {location}: no {framework} migration files in it")

    def history(self) -> History:
        """The steps in the tool's order, read by one reader (:func:`.reading.read_history`):
        statements not read are each step's ``Code.unknown``, named by the core's checks."""
        steps: dict[str, Step] = {}
        previous: tuple[str, ...] = ()
        codes = read_history(self.folder.migrations, self.dialect)
        for m, (up, down) in zip(self.folder.migrations, codes, strict=True):
            steps[m.version] = Step(m.version, m.path, previous, up, down)
            previous = (m.version,)
        ids = [m.version for m in self.folder.migrations]
        return History(
            self.location, steps, self.heads(), LinearOrder(ids), WORDING[self.framework]
        )

    def heads(self) -> tuple[str, ...]:
        """``history().heads`` from the file names alone: the history is linear, its head the
        tool's last step. Reading every statement to learn it (:meth:`history`) would parse the
        whole history once more for each release a check only needs the head of."""
        return (self.folder.migrations[-1].version,)

    def notes(self, revisions: Sequence[str]) -> list[Finding]:
        """What is about files rather than statements, for the steps on the path and the
        folder's other files: a file the tool refuses or compatcheck cannot run (a goose Go
        migration), a file that is no step, as ``check/unavailable`` naming ``file:line``; and
        Flyway's repeatable scripts, which no downgrade undoes (``repeatable-not-undone``).
        Statements read only in part are the steps' ``Code.unknown`` (the core names them)."""
        on_path = set(revisions)
        notes: list[tuple[str, Note]] = [
            (m.version, n) for m in self.folder.migrations if m.version in on_path for n in m.notes
        ]
        notes += [("migrations", n) for n in self.folder.notes]
        out: list[Finding] = []
        for subject, n in notes:
            # A refusal's own text may name the file already: say it once.
            text = n.text.removeprefix(f"{n.path.name}:{n.line}: ").removeprefix(f"{n.path.name}: ")
            message = f"{n.path.name}:{n.line}: {text}."
            evidence = {"file": n.path.name, "path": str(n.path), "line": n.line, "note": n.text}
            out.append(Finding(UNAVAILABLE, subject, message, evidence))
        if on_path:
            out += [_repeatable(r.path) for r in self.folder.repeatables]
        return out

    def live_findings(self, url: str) -> list[Finding]:
        """golang-migrate: a dirty version on the live database (a migration failed part-way
        there; ``migrate`` refuses to run until it is forced) is ``migrations/dirty-version``."""
        if self.framework != GOLANG_MIGRATE:
            return []
        from compatcheck.migrations import live

        rows = live.live_rows(url, "schema_migrations", ("version", "dirty"))
        out = []
        for version, dirty in rows or ():
            if dirty:
                message = (
                    f"The live database's golang-migrate version {version} is dirty: a migration "
                    "failed part-way there, and `migrate` refuses to run (up or down) until the "
                    "schema is repaired and the version forced."
                )
                evidence = {"table": "schema_migrations", "version": version, "dirty": True}
                out.append(Finding(DIRTY_VERSION, str(version), message, evidence))
        return out

    def runner(self, scratch: Scratch, conn: Connection) -> Runner:
        from compatcheck.migrations.sources.sqlfiles.runner import SqlRunner

        return SqlRunner(self.framework, self.folder, conn, scratch.dialect, scratch.cancelled)


#: The dialect a source is given when nothing says it (``--static`` without --dialect/--db-url).
AUTO = "auto"
_POSTGRES = re.compile(
    r"\$[A-Za-z_]*\$|::[a-z]|\b(?:serial|bigserial|jsonb|bytea|plpgsql|concurrently)\b", re.I
)
_MYSQL = re.compile(r"`\w+`|\bengine\s*=|\bauto_increment\b|^\s*delimiter\s", re.I | re.M)


def guess_dialect(folder: Path) -> str:
    """What the ``.sql`` files of ``folder`` are written for, when nobody said: PostgreSQL when
    they hold its marks (dollar quotes, ``::`` casts, ``SERIAL``/``JSONB``/``BYTEA``), MySQL for
    backquotes, ``ENGINE=``, ``AUTO_INCREMENT``, ``DELIMITER``; SQLite when neither or both (the
    default reading). A PostgreSQL folder read by SQLite's rules loses multi-clause ``ALTER``s."""
    pg = my = False
    for path in sorted(folder.glob("*.sql")):
        text = path.read_text(encoding="utf-8", errors="replace")
        pg = pg or bool(_POSTGRES.search(text))
        my = my or bool(_MYSQL.search(text))
    return "postgresql" if pg and not my else "mysql" if my and not pg else "sqlite"


def _repeatable(path: Path) -> Finding:
    """A Flyway ``R__`` script: re-run after the versioned ones whenever it changes, never
    undone. A finding about the rollback (what it defines stays as its last run left it), not
    an inability to check."""
    message = (
        f"Flyway never undoes the repeatable script `{path.name}`: after a downgrade, what it "
        "defines (views, functions, grants...) stays as its last run left it — NEW's version "
        "if the script changed since OLD."
    )
    return Finding(
        REPEATABLE_NOT_UNDONE, path.name, message, {"file": path.name, "path": str(path)}
    )


def _looks(folder: Path) -> set[str]:
    """The frameworks whose files are in ``folder`` (by names, then by markers inside)."""
    from compatcheck.migrations.sources.sqlfiles import formats as f

    found: set[str] = set()
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(f._MIGRATE_NAME.match(n) for n in names):
        found.add(GOLANG_MIGRATE)
    if any(f._FLYWAY_NAME.match(n) for n in names):
        found.add(FLYWAY)
    for n in names:
        if n.endswith(".sql") and re.match(r"^\d+_", n) and not f._MIGRATE_NAME.match(n):
            head = (folder / n).read_text(encoding="utf-8", errors="replace")
            if re.search(r"^--\s*\+goose\s+up", head, re.I | re.M):
                found.add(GOOSE)
            if re.search(r"^--\s*migrate:up", head, re.M):
                found.add(DBMATE)
        elif n.endswith(".go") and re.match(r"^\d+_", n):
            found.add(GOOSE)
    alembic = (folder / "env.py").is_file() or (folder / "alembic.ini").is_file()
    if alembic or (any(n.endswith(".py") for n in names) and not found):
        found.add("alembic")
    return found


def detect(folder: Path) -> str:
    """The one framework whose files ``folder`` holds; :class:`InputError` when none or
    several (name them, and say ``--framework`` decides)."""
    if not folder.is_dir():
        raise InputError(f"migrations folder {folder}: no such directory")
    found = _looks(folder)
    if not found:
        raise InputError(
            f"migrations folder {folder}: no migration files of a known framework (alembic, "
            f"{', '.join(FRAMEWORKS)}); name it with --framework"
        )
    if len(found) > 1:
        raise InputError(
            f"migrations folder {folder}: holds files of several frameworks "
            f"({', '.join(sorted(found))}); name one with --framework"
        )
    return found.pop()
