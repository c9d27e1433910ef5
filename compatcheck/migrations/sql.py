"""Raw SQL: split into statements (the one splitter) and read as :class:`~.steps.Op` values.

Every place that splits SQL text calls :func:`split_sql`: the static reading of ``op.execute``
strings and the seed file the round trip runs. Statements are recognised by a table of
patterns, each with a small builder, and ``ALTER TABLE`` actions by a second table; what no
pattern recognises yields nothing (it is not guessed at).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from compatcheck.migrations import steps as s
from compatcheck.migrations.steps import Op, identifier

#: Statements longer than this are cut in evidence.
SOURCE_LIMIT = 200


def split_sql(sql: str) -> list[str]:
    """Split on ``;`` outside quotes, dropping ``--`` comments; whitespace collapsed."""
    out: list[str] = []
    buf: list[str] = []
    quote = ""
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [" ".join(stmt.split()) for stmt in out if stmt.strip()]


def shorten(text: str, limit: int = SOURCE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks the cut), for evidence."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Where:
    """The statement a match came from, for every op built from it."""

    table: str | None
    source: str
    line: int

    def on(self, table: str | None) -> _Where:
        return _Where(table, self.source, self.line)

    def op(
        self,
        kind: str,
        *,
        column: str | None = None,
        name: str | None = None,
        nullable: bool | None = None,
        server_default: bool = False,
    ) -> Op:
        return Op(
            kind,
            table=self.table,
            column=column,
            name=name,
            nullable=nullable,
            server_default=server_default,
            source=self.source,
            line=self.line,
        )


_ID = r'((?:[`"\[]?[\w$]+[`"\]]?\.)?[`"\[]?[\w$]+[`"\]]?)'
_Builder = Callable[[re.Match[str], _Where], Iterator[Op]]


# --- ALTER TABLE actions ----------------------------------------------------------------------


def _rename_to(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.RENAME_TABLE, name=identifier(m.group(1)))


def _rename_column(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.RENAME_COLUMN, column=identifier(m.group(1)), name=identifier(m.group(2)))


def _drop_constraint(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.DROP_CONSTRAINT, name=identifier(m.group(1)))


def _drop_index(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.DROP_INDEX, name=identifier(m.group(1)))


def _drop_column(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.DROP_COLUMN, column=identifier(m.group(1)))


def _add_constraint(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.CREATE_CONSTRAINT, name=identifier(m.group(1)))


def _add_column(m: re.Match[str], w: _Where) -> Iterator[Op]:
    # `ADD PRIMARY KEY (...)`, `ADD UNIQUE ...`: a constraint without a name, not a column.
    if m.group(1).upper() in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "INDEX"):
        return
    spec = m.group(2)
    yield w.op(
        s.ADD_COLUMN,
        column=identifier(m.group(1)),
        nullable=not re.search(r"\bNOT\s+NULL\b", spec, re.I),
        server_default=bool(re.search(r"\bDEFAULT\b", spec, re.I)),
    )


def _alter_type(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.op(s.ALTER_TYPE, column=identifier(m.group(1) or m.group(2) or m.group(3)))


#: ``ALTER TABLE t <action>, <action>``: the first pattern an action matches decides.
ALTER_ACTIONS: tuple[tuple[re.Pattern[str], _Builder], ...] = (
    (re.compile(rf"^RENAME\s+TO\s+{_ID}", re.I), _rename_to),
    (re.compile(rf"^RENAME\s+(?:COLUMN\s+)?{_ID}\s+TO\s+{_ID}", re.I), _rename_column),
    (re.compile(rf"^DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?{_ID}", re.I), _drop_constraint),
    (re.compile(rf"^(?:DROP\s+(?:INDEX|KEY))\s+{_ID}", re.I), _drop_index),
    (re.compile(rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_ID}", re.I), _drop_column),
    (re.compile(rf"^ADD\s+CONSTRAINT\s+{_ID}", re.I), _add_constraint),
    (
        re.compile(rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{_ID}\s*(.*)$", re.I),
        _add_column,
    ),
    (
        re.compile(
            rf"^(?:ALTER\s+(?:COLUMN\s+)?{_ID}\s+(?:SET\s+DATA\s+)?TYPE\b|MODIFY\s+"
            rf"(?:COLUMN\s+)?{_ID}|CHANGE\s+(?:COLUMN\s+)?{_ID})",
            re.I,
        ),
        _alter_type,
    ),
)


def _alter_actions(m: re.Match[str], w: _Where) -> Iterator[Op]:
    where = w.on(identifier(m.group(1)))
    for action in re.split(r",(?![^()]*\))", m.group(2)):
        a = action.strip()
        for pattern, build in ALTER_ACTIONS:
            found = pattern.match(a)
            if found:
                yield from build(found, where)
                break


# --- statements -------------------------------------------------------------------------------


def _update(m: re.Match[str], w: _Where) -> Iterator[Op]:
    on = w.on(identifier(m.group(1)))
    sets = re.split(r"\bWHERE\b|\bFROM\b|\bRETURNING\b", m.group(2), flags=re.I)[0]
    cols = re.findall(rf"(?:^|,)\s*{_ID}\s*=", sets)
    for col in cols or [None]:
        yield on.op(s.UPDATE_ROWS, column=identifier(col))


def _on_table(kind: str) -> _Builder:
    def build(m: re.Match[str], w: _Where) -> Iterator[Op]:
        yield w.on(identifier(m.group(1))).op(kind)

    return build


def _named(kind: str) -> _Builder:
    def build(m: re.Match[str], w: _Where) -> Iterator[Op]:
        yield w.op(kind, name=identifier(m.group(1)))

    return build


def _truncate(m: re.Match[str], w: _Where) -> Iterator[Op]:
    """``TRUNCATE a, b``: every table listed loses its rows."""
    yield w.on(identifier(m.group(1))).op(s.DELETE_ROWS)
    for extra in re.findall(rf",\s*{_ID}", m.string[m.end() :]):
        yield w.on(identifier(extra)).op(s.DELETE_ROWS)


def _rename_table(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.on(identifier(m.group(1))).op(s.RENAME_TABLE, name=identifier(m.group(2)))


def _create_index(m: re.Match[str], w: _Where) -> Iterator[Op]:
    yield w.on(identifier(m.group(2))).op(s.CREATE_INDEX, name=identifier(m.group(1)))


#: One statement: the first pattern it matches decides what it does.
STATEMENTS: tuple[tuple[re.Pattern[str], _Builder], ...] = (
    (
        re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_ID}\s+(.*)$", re.I | re.S),
        _alter_actions,
    ),
    (
        re.compile(rf"^UPDATE\s+(?:ONLY\s+)?{_ID}\s+(?:AS\s+\w+\s+)?SET\s+(.*)$", re.I | re.S),
        _update,
    ),
    (re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_ID}", re.I), _on_table(s.DROP_TABLE)),
    (
        re.compile(rf"^DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?{_ID}", re.I),
        _named(s.DROP_INDEX),
    ),
    (re.compile(rf"^DROP\s+TYPE\s+(?:IF\s+EXISTS\s+)?{_ID}", re.I), _named(s.DROP_ENUM)),
    (re.compile(rf"^CREATE\s+TYPE\s+{_ID}\s+AS\s+ENUM", re.I), _named(s.CREATE_ENUM)),
    (
        re.compile(
            rf"^CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_ID}", re.I
        ),
        _on_table(s.CREATE_TABLE),
    ),
    (
        re.compile(
            rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
            rf"{_ID}\s+ON\s+(?:ONLY\s+)?{_ID}",
            re.I,
        ),
        _create_index,
    ),
    (re.compile(rf"^DELETE\s+FROM\s+{_ID}", re.I), _on_table(s.DELETE_ROWS)),
    (re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?{_ID}", re.I), _truncate),
    (re.compile(rf"^RENAME\s+TABLE\s+{_ID}\s+TO\s+{_ID}", re.I), _rename_table),
)
_NON_TX = re.compile(
    r"\bCONCURRENTLY\b|^\s*VACUUM\b|\bALTER\s+TYPE\b.*\bADD\s+VALUE\b", re.I | re.S
)


def parse_sql(sql: str, line: int = 0) -> Iterator[Op]:
    """Ops of raw SQL: DROP, ALTER ... RENAME/DROP/ADD, DELETE, TRUNCATE, UPDATE, CREATE."""
    for stmt in split_sql(sql):
        where = _Where(None, shorten(stmt), line)
        if _NON_TX.search(stmt):
            yield where.op(s.NON_TRANSACTIONAL)
        for pattern, build in STATEMENTS:
            m = pattern.match(stmt)
            if m:
                yield from build(m, where)
                break
