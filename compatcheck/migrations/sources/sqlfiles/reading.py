"""What each step of a SQL-file history does, read without running it: the one place that turns
a folder's sections into the core's :class:`~compatcheck.migrations.steps.Code`.

One :class:`~compatcheck.migrations.sqlstatic.Reader` reads the whole history in the tool's
order, so a type change or a table rebuild is judged against the table the earlier steps left
(a widening is no type change; a SQLite rebuild is a table changing columns). A dollar-quoted
function body is blanked out first: its statements are the function's, not the migration's.

What the reader could not read or judge, and what the tool fills in when it runs (a Flyway
placeholder, goose ``ENVSUB``) is in ``Code.unknown``: the core's checks name each statement
(``migrations/statement-unread``) and judge no leftover from a partial reading. That is the
only path such a statement takes; the source's own notes are about files, not statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from compatcheck.migrations.sources.sqlfiles.formats import Migration, Section
from compatcheck.migrations.sources.sqlfiles.splitting import blank_bodies
from compatcheck.migrations.sql import shorten
from compatcheck.migrations.steps import Code, Unknown

if TYPE_CHECKING:
    from compatcheck.migrations.sqlstatic import Reader


def _statements(section: Section) -> list[tuple[str, int]]:
    return [(blank_bodies(s.text), s.line) for s in section.statements]


def _unread(section: Section, code: Code) -> Code:
    """``code`` with the section's read-as-written notes among its unknowns: each note joins
    the statement it is in (one entry per statement, reasons joined)."""
    if not section.unread:
        return code
    by_line = {u.line: u for u in code.unknown}
    for note in section.unread:
        stmt = next((s for s in reversed(section.statements) if s.line <= note.line), None)
        line = stmt.line if stmt is not None else note.line
        text = shorten(" ".join(stmt.text.split())) if stmt is not None else ""
        known = by_line.get(line)
        reason = note.text if known is None else f"{note.text}; {known.reason}"
        by_line[line] = Unknown(line, known.statement if known else text, reason)
    return replace(code, unknown=tuple(by_line[k] for k in sorted(by_line)))


def _finish(section: Section, code: Code) -> Code:
    """The tool's facts about the section on top of what its statements do. Empty is "no
    statement": a down of ``SELECT 1`` is a down that undoes nothing, not a missing one."""
    first = section.statements[0].line if section.statements else section.line
    code = replace(code, empty=not section.statements, line=first, path=section.path)
    code = _unread(section, code)
    if section.refused is not None:
        code = replace(code, empty=False, raises=True, line=section.line)
    if section.no_transaction:
        code = replace(code, non_transactional=section.no_transaction)
    return code


def _opaque(section: Section) -> Code:
    """A direction compatcheck cannot read at all (a goose Go migration): not empty (something
    is there), not raising, no op; the source names it as a file (never as statements)."""
    return Code(empty=False, raises=False, ops=(), line=section.line)


def read_step(reader: Reader, m: Migration) -> tuple[Code, Code | None]:
    """The up and down of ``m``, read after every step before it (the reader's state)."""
    if m.up.not_executable is not None:
        return _opaque(m.up), None if m.down is None else _opaque(m.down)
    down = m.down if m.down is not None and m.down.not_executable is None else None
    up_code, down_code = reader.step(_statements(m.up), _statements(down) if down else None)
    up_code = _finish(m.up, up_code)
    if m.down is None:
        return up_code, None
    if down is None or down_code is None:
        return up_code, _opaque(m.down)
    return up_code, _finish(down, down_code)


def read_history(migrations: Sequence[Migration], dialect: str) -> list[tuple[Code, Code | None]]:
    """Every step's up and down, in the tool's order, through one reader."""
    # Local import: sqlglot is read only when a SQL history is (a check of an Alembic project
    # starts its services without it).
    from compatcheck.migrations.sqlstatic import Reader

    reader = Reader(dialect)
    return [read_step(reader, m) for m in migrations]
