"""Static reading of SQL migrations: statements in, :class:`~.steps.Code` out, for any framework.

Every statement is parsed by sqlglot for the target dialect (PostgreSQL, MySQL/MariaDB, SQLite)
and its syntax tree turned into :class:`~.steps.Op` values. What the parser does not accept, or
accepts only as an opaque command, and what it reads but this module cannot judge, is listed in
``Code.unknown`` with its line and a one-line reason: the checks call such a direction unknown
rather than guess what it does. Statements known to leave tables, columns, indexes, constraints
and enum types alone (views, functions, grants, ``BEGIN``...) yield nothing and are no unknowns.

A :class:`Reader` remembers the tables the statements it read created (columns with their
types, nullability and defaults, and indexes), so that a later ``ALTER COLUMN ... TYPE`` is
judged against the type it had (a widening is no ``type-changed``), and a table rebuilt under
its own name (SQLite's ``CREATE new; INSERT ... SELECT; DROP old; RENAME new TO old``, or a swap
by renames) is read as that table changing columns, not as a dropped and a renamed table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from compatcheck.migrations import steps as s
from compatcheck.migrations.sql import shorten, split_sql
from compatcheck.migrations.sqlalter import ALTER_ACTIONS, by_words, command
from compatcheck.migrations.sqlshape import (
    Column,
    Copy,
    Table,
    Where,
    columns_of,
    copy_of,
    index_ops,
    name_of,
    rebuild_ops,
    table_of,
)
from compatcheck.migrations.steps import Code, Op, Unknown
from compatcheck.migrations.typechange import widens

#: Our dialect names → sqlglot's.
DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}
#: No known engine (Alembic's ``op.execute`` strings): each dialect is tried in turn.
ANY = "any"


class _NoFallbackWarning(logging.Filter):
    """sqlglot logs a warning for every statement it keeps as an opaque command; we report
    those ourselves (as unknowns, with the line), so the warning would only repeat it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_NoFallbackWarning())

#: Statement types that change no table, column, index, constraint or enum type.
NEUTRAL_STATEMENTS: tuple[type[exp.Expr], ...] = (
    exp.Select,
    exp.Union,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Pragma,
    exp.Set,
    exp.Use,
    exp.Comment,
    exp.Grant,
    exp.Revoke,
    exp.Analyze,
    exp.Describe,
    exp.Show,
)
#: ``CREATE``/``DROP``/``ALTER`` of these kinds touch no table data or shape we model.
NEUTRAL_KINDS = frozenset(
    {
        "VIEW",
        "MATERIALIZED VIEW",
        "FUNCTION",
        "PROCEDURE",
        "TRIGGER",
        "SEQUENCE",
        "SCHEMA",
        "DATABASE",
        "EXTENSION",
        "RULE",
        "ROLE",
        "USER",
    }
)


def parse_sql(sql: str, line: int = 0) -> Iterator[Op]:
    """Ops of raw SQL whose engine is not known (Alembic's ``op.execute`` strings): split with
    :func:`~.sql.split_sql`, each statement read as the first dialect that parses it."""
    yield from analyse([(stmt, line) for stmt in split_sql(sql)], ANY).ops


def analyse(statements: Sequence[tuple[str, int]], dialect: str) -> Code:
    """What running ``statements`` (text, line in its file) in order does, read without running
    them: ops, and the statements not read or not judged (``Code.unknown``).

    ``dialect`` is ``postgresql``, ``mysql`` (MariaDB too), ``sqlite`` or :data:`ANY`. Nothing
    is known about tables created before; :class:`Reader` reads a whole history.
    """
    return Reader(dialect).read(statements)


class Reader:
    """Reads the statements of a history in the order they run, remembering the tables they
    create, so that type changes and rebuilds are judged against what the table was."""

    def __init__(self, dialect: str) -> None:
        if dialect != ANY and dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r} (one of {', '.join(DIALECTS)})")
        self.dialect = dialect
        #: sqlglot's name of the dialect (PostgreSQL's for :data:`ANY`, to split words).
        self.sqlglot_dialect = DIALECTS.get(dialect, "postgres")
        self.tables: dict[str, Table] = {}

    def read(self, statements: Sequence[tuple[str, int]]) -> Code:
        """One direction of a step; the tables afterwards are what it left."""
        reading = Reading(self)
        for text, line in statements:
            reading.statement(text, line)
        return reading.code()

    def step(
        self, up: Sequence[tuple[str, int]], down: Sequence[tuple[str, int]] | None
    ) -> tuple[Code, Code | None]:
        """A step's up (kept: the next step builds on it) and its down, read against the
        tables the up left (and then forgotten: the next step's up does not follow it)."""
        up_code = self.read(up)
        if down is None:
            return up_code, None
        kept = {name: table.copy() for name, table in self.tables.items()}
        down_code = self.read(down)
        self.tables = kept
        return up_code, down_code

    def parse(self, text: str) -> list[exp.Expr]:
        """The statement's syntax trees (several when ``text`` holds several statements).

        With :data:`ANY`, the first dialect that reads more than an opaque command wins.
        """
        names = [DIALECTS[self.dialect]] if self.dialect != ANY else list(DIALECTS.values())
        fallback: list[exp.Expr] | None = None
        error: Exception | None = None
        for name in names:
            try:
                trees = [t for t in sqlglot.parse(text, read=name) if t is not None]
            except (ParseError, TokenError) as exc:
                error = error or exc
                continue
            if not any(t.find(exp.Command) for t in trees):
                return trees
            fallback = fallback if fallback is not None else trees
        if fallback is not None:
            return fallback
        assert error is not None
        raise error


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Reading:
    """One direction being read: its ops so far, its unknowns, and what it did to tables."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.ops: list[Op | None] = []
        self.unknown: list[Unknown] = []
        self.does_something = False
        #: The statement being read (handlers that must look at its words).
        self.text = ""
        self.first_line = 0
        #: Tables this direction dropped or renamed away: old shape and the op that did it.
        self.gone: dict[str, tuple[Table, int, str | None]] = {}
        #: Tables this direction created: the index of their CREATE op.
        self.created: dict[str, int] = {}
        #: ``INSERT INTO target ... SELECT ... FROM source``: per target, every copy into it.
        self.copies: dict[str, list[Copy]] = {}
        #: A rebuilt table's old name kept as a backup → (rebuilt table, index of its rename).
        self.backups: dict[str, int] = {}
        #: Columns this direction added: filling them overwrites nothing.
        self.added: set[tuple[str | None, str | None]] = set()
        #: Tables rebuilt here → their indexes before (re-created ones are not new).
        self.rebuilt: dict[str, tuple[str, Table, Where]] = {}

    @property
    def tables(self) -> dict[str, Table]:
        return self.reader.tables

    def add(self, op: Op) -> int:
        self.ops.append(op)
        if op.op == s.ADD_COLUMN:
            self.added.add((op.table, op.column))
        return len(self.ops) - 1

    def not_judged(self, where: Where, reason: str) -> None:
        self.unknown.append(Unknown(where.line, where.source, reason))

    def statement(self, text: str, line: int) -> None:
        self.text = text
        where = Where(shorten(_one_line(text)), line)
        self.first_line = self.first_line or line
        try:
            trees = self.reader.parse(text)
        except (ParseError, TokenError) as exc:
            self.does_something = True
            reason = _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            by_words(self, text, where, f"not parsed as {self.reader.dialect} SQL: {reason}")
            return
        for tree in trees:
            if not _inert(tree):
                self.does_something = True
            handler = STATEMENT_HANDLERS.get(type(tree))
            if handler is not None:
                handler(self, tree, where)
            elif isinstance(tree, exp.Condition | exp.Alias):
                # Only an expression (``CHECKPOINT`` a column, ``LISTEN chan`` an alias): a
                # statement the parser does not know, judged by its words like a command.
                words = text if len(trees) == 1 else tree.sql(self.reader.sqlglot_dialect)
                by_words(self, words, where, "statement the SQL parser does not read")
            elif not isinstance(tree, NEUTRAL_STATEMENTS):
                self.not_judged(where, f"{type(tree).__name__} statement not judged")

    def code(self) -> Code:
        for table, (_, old, where) in self.rebuilt.items():
            index_ops(self.ops, table, old, where)
        ops = tuple(o for o in self.ops if o is not None)
        return Code(
            empty=not self.does_something,
            raises=False,
            ops=ops,
            line=self.first_line,
            unknown=tuple(self.unknown),
        )

    # --- tables -----------------------------------------------------------------------------

    def create_table(self, name: str, table: Table, where: Where, *, guarded: bool) -> None:
        if name in self.gone and self.tables.get(name) is None:
            self.rebuild(name, table, None, where)
            return
        refs = table.references
        self.created[name] = self.add(
            where.op(s.CREATE_TABLE, table=name, references=refs, guarded=guarded)
        )
        self.tables[name] = table

    def drop_table(self, name: str, where: Where, *, guarded: bool) -> None:
        if name in self.backups:  # the old copy of a table rebuilt here: part of the rebuild
            self.ops[self.backups.pop(name)] = None
            self.tables.pop(name, None)
            return
        index = self.add(where.op(s.DROP_TABLE, table=name, guarded=guarded))
        old = self.tables.pop(name, None)
        if old is not None:
            self.gone[name] = (old, index, None)

    def rename_table(self, old_name: str, new_name: str, where: Where) -> None:
        if new_name in self.gone and new_name not in self.tables:
            moved = self.tables.pop(old_name, None)
            if moved is not None:
                existed = old_name not in self.created
                helper_ops: list[Op] = []
                if not existed:  # a helper table of this rebuild: it was never anywhere else
                    self.ops[self.created.pop(old_name)] = None
                    helper_ops = self._take_ops(old_name, new_name)
                self.rebuild(new_name, moved, old_name, where, existed=existed)
                for op in helper_ops:  # what was done to the helper is done to the new table
                    self.add(op)
                return
        index = self.add(where.op(s.RENAME_TABLE, table=old_name, name=new_name))
        table = self.tables.pop(old_name, None)
        if table is not None:
            self.tables[new_name] = table
            self.gone[old_name] = (table, index, new_name)

    def _take_ops(self, helper: str, name: str) -> list[Op]:
        """The ops on a rebuild's helper table, taken out to follow the rebuild as ops on
        ``name``; filling a column the old table did not have overwrites nothing."""
        old = self.gone[name][0]
        taken: list[Op] = []
        for i, op in enumerate(self.ops):
            if op is None or op.table != helper:
                continue
            self.ops[i] = None
            if not (op.op == s.UPDATE_ROWS and op.column and op.column not in old.columns):
                taken.append(replace(op, table=name))
        return taken

    def rebuild(
        self, name: str, new: Table, source: str | None, where: Where, *, existed: bool = False
    ) -> None:
        """``name`` was dropped or renamed away and now a table arrives under its name: from
        ``source`` (renamed; ``existed`` when that table was there before this direction) or
        from a ``CREATE TABLE`` (``source`` None)."""
        old, index, backup = self.gone.pop(name)
        if backup is None:
            self.ops[index] = None  # DROP TABLE name: the table lives on in its new shape
        else:
            self.backups[backup] = index
        replaced = source if existed else None
        self.add(where.op(s.REBUILD_TABLE, table=name, name=replaced, references=new.references))
        copies = [c for c in self.copies.get(source or name, []) if c.source in (name, backup)]
        if not old.complete:
            self.not_judged(where, f"rebuild of {name}: its columns before are not known")
        for op in rebuild_ops(name, old, new, copies, where) if old.complete else ():
            self.add(op)
        self.tables[name] = new
        self.rebuilt[name] = (name, old, where)

    def column(self, table: str | None, name: str | None) -> Column | None:
        known = self.tables.get(table or "")
        return known.columns.get(name or "") if known else None

    def type_change(self, table: str | None, name: str | None, new: Column, where: Where) -> None:
        """A column's type set to ``new``'s: a widening, a type change, or nothing."""
        old = self.column(table, name)
        if old is not None and old.text == new.text:
            return
        kind = s.WIDEN_TYPE if old is not None and widens(old.type, new.type) else s.ALTER_TYPE
        self.add(where.op(kind, table=table, column=name))


def _inert(tree: exp.Expr) -> bool:
    """True for what does nothing at all: transaction control, ``SELECT 'literal'``."""
    if isinstance(tree, exp.Transaction | exp.Commit | exp.Rollback):
        return True
    if isinstance(tree, exp.Select):
        return tree.find(exp.Func, exp.Table) is None
    return False


# --- statements ---------------------------------------------------------------------------------

Handler = Callable[[Reading, exp.Expr, Where], None]


def _kind(tree: exp.Expr) -> str:
    return str(tree.args.get("kind") or "").upper()


def _create(r: Reading, tree: exp.Expr, where: Where) -> None:
    kind, target = _kind(tree), tree.this
    guarded = bool(tree.args.get("exists"))
    if kind == "TABLE":
        properties = tree.args.get("properties")
        if properties and properties.find(exp.TemporaryProperty):
            return  # gone at the end of the session: nothing a downgrade must undo
        name = name_of(target)
        if name:
            table = table_of(target, tree.args.get("expression"))
            r.create_table(name, table, where, guarded=guarded)
    elif kind == "INDEX" and isinstance(target, exp.Index):
        on, index = name_of(target.args.get("table")), name_of(target.this)
        params = target.args.get("params")
        columns = columns_of(params.args.get("columns") or []) if params else ()
        if tree.args.get("concurrently"):
            r.add(where.op(s.NON_TRANSACTIONAL, table=on, name=index))
        r.add(where.op(s.CREATE_INDEX, table=on, name=index, columns=columns, guarded=guarded))
        if on in r.tables and index:
            r.tables[on].indexes.add(index)
    elif kind == "TYPE":
        value = tree.args.get("expression")
        if isinstance(value, exp.DataType) and value.this == exp.DataType.Type.ENUM:
            r.add(where.op(s.CREATE_ENUM, name=name_of(target), guarded=guarded))
    elif kind not in NEUTRAL_KINDS:
        r.not_judged(where, f"CREATE {kind or '?'} not judged")


def _drop(r: Reading, tree: exp.Expr, where: Where) -> None:
    kind = _kind(tree)
    guarded = bool(tree.args.get("exists"))
    targets = tree.args.get("tables") or tree.expressions or [tree.this]
    names = [name_of(t) for t in targets if t is not None]
    if kind == "TABLE":
        for name in names:
            if name:
                r.drop_table(name, where, guarded=guarded)
    elif kind == "INDEX":
        on = tree.args.get("cluster")
        table = name_of(on.this) if isinstance(on, exp.OnProperty) else None
        if tree.args.get("concurrently"):
            r.add(where.op(s.NON_TRANSACTIONAL, table=table, name=names[0] if names else None))
        for name in names:
            r.add(where.op(s.DROP_INDEX, table=table, name=name, guarded=guarded))
            for known in r.tables.values():
                known.indexes.discard(name or "")
    elif kind == "TYPE":
        for name in names:
            r.add(where.op(s.DROP_ENUM, name=name, guarded=guarded))
    elif kind == "SCHEMA" and tree.args.get("cascade"):
        r.not_judged(where, "DROP SCHEMA ... CASCADE drops whatever the schema holds: not judged")
    elif kind not in NEUTRAL_KINDS:
        r.not_judged(where, f"DROP {kind or '?'} not judged")


def _alter(r: Reading, tree: exp.Expr, where: Where) -> None:
    kind = _kind(tree)
    if kind != "TABLE":
        if kind not in NEUTRAL_KINDS:
            r.not_judged(where, f"ALTER {kind or '?'} not judged")
        return
    table = name_of(tree.this)
    for action in tree.args.get("actions") or ():
        handler = ALTER_ACTIONS.get(type(action))
        if isinstance(action, exp.Command):
            r.not_judged(where, f"ALTER TABLE action `{action.sql()}` the SQL parser does not read")
        elif handler is None:
            r.not_judged(where, f"ALTER TABLE action {type(action).__name__} not judged")
        else:
            handler(r, table, action, where)


def _delete(r: Reading, tree: exp.Expr, where: Where) -> None:
    r.add(where.op(s.DELETE_ROWS, table=name_of(tree.this)))


def _truncate(r: Reading, tree: exp.Expr, where: Where) -> None:
    for table in tree.expressions:
        r.add(where.op(s.DELETE_ROWS, table=name_of(table)))


def _update(r: Reading, tree: exp.Expr, where: Where) -> None:
    table = name_of(tree.this)
    columns = [
        name_of(e.this) for e in tree.expressions if isinstance(e, exp.EQ) and e.this is not None
    ]
    if columns and all((table, c) in r.added for c in columns):
        return  # fills columns this direction added: nothing is overwritten
    for column in columns or [None]:
        if (table, column) not in r.added:
            r.add(where.op(s.UPDATE_ROWS, table=table, column=column))


def _insert(r: Reading, tree: exp.Expr, where: Where) -> None:
    """An ``INSERT ... SELECT``: remembered, a rebuild reads which columns it carried over."""
    found = copy_of(tree, r.tables)
    if found is not None:
        target, carried = found
        r.copies.setdefault(target, []).append(carried)


STATEMENT_HANDLERS: dict[type[exp.Expr], Handler] = {
    exp.Create: _create,
    exp.Drop: _drop,
    exp.Alter: _alter,
    exp.Delete: _delete,
    exp.TruncateTable: _truncate,
    exp.Update: _update,
    exp.Insert: _insert,
    exp.Command: command,
}
