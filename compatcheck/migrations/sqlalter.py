"""``ALTER TABLE`` actions and statements sqlglot keeps as opaque commands, for the SQL reader.

Each action of a parsed ``ALTER TABLE`` has a handler that turns it into ops and keeps the
reader's knowledge of the table up to date. A statement sqlglot does not parse into a tree
(an ``exp.Command``) is judged by its first words: MySQL's ``RENAME TABLE`` is read, a few
known to leave our objects alone (extensions, rules, storage settings) yield nothing, and all
else is unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import TokenError

from compatcheck.migrations import steps as s
from compatcheck.migrations.sqlshape import (
    Column,
    Where,
    column_of,
    columns_of,
    name_of,
    references_of,
    signature,
)
from compatcheck.migrations.steps import identifier

if TYPE_CHECKING:
    from compatcheck.migrations.sqlstatic import Reading

ActionHandler = Callable[["Reading", str | None, exp.Expr, Where], None]


def _add_column(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    assert isinstance(action, exp.ColumnDef)
    name, column, refs = column_of(action)
    r.add(
        where.column_op(
            s.ADD_COLUMN,
            table,
            name,
            column,
            generated=column.generated,
            references=refs,
            guarded=bool(action.args.get("exists")),
        )
    )
    known = r.tables.get(table or "")
    if known is not None:
        known.columns[name] = column


def _drop(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    kind = str(action.args.get("kind") or "").upper()
    guarded = bool(action.args.get("exists"))
    names = [name_of(t) for t in action.args.get("tables") or action.expressions or [action.this]]
    known = r.tables.get(table or "")
    for name in names:
        if kind in ("COLUMN", ""):
            r.add(where.op(s.DROP_COLUMN, table=table, column=name, guarded=guarded))
            if known is not None:
                known.columns.pop(name or "", None)
        elif kind in ("INDEX", "KEY"):
            r.add(where.op(s.DROP_INDEX, table=table, name=name, guarded=guarded))
            if known is not None:
                known.indexes.discard(name or "")
        elif kind in ("CONSTRAINT", "FOREIGN KEY", "CHECK"):
            r.add(where.op(s.DROP_CONSTRAINT, table=table, name=name, guarded=guarded))
        else:
            r.not_judged(where, f"ALTER TABLE ... DROP {kind} not judged")


def _drop_primary_key(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    r.add(where.op(s.DROP_CONSTRAINT, table=table))


def _rename_table(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    for words in _words(r.text, r.reader.sqlglot_dialect):
        rest = words[words.index("RENAME") + 1 :] if "RENAME" in words else []
        if len(rest) >= 3 and rest[0] not in ("TO", "AS", "COLUMN") and rest[1] == "TO":
            # ``RENAME a TO b``: PostgreSQL and SQLite rename column a (COLUMN is optional);
            # sqlglot reads "rename the table to a" and drops ``TO b``.
            if r.reader.dialect == "mysql":
                r.not_judged(where, "RENAME a TO b is no MySQL syntax")
            else:
                _column_renamed(r, table, identifier(rest[0]), identifier(rest[2]), where)
            return
    new = name_of(action.this)
    if table and new:
        r.rename_table(table, new, where)


def _rename_column(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    _column_renamed(r, table, name_of(action.this), name_of(action.args.get("to")), where)


def _column_renamed(
    r: Reading, table: str | None, old: str | None, new: str | None, where: Where
) -> None:
    """Column ``old`` of ``table`` is ``new`` now (an ``ALTER TABLE`` action, PostgreSQL's
    ``RENAME a TO b``, MySQL's ``CHANGE old new ...``)."""
    r.add(where.op(s.RENAME_COLUMN, table=table, column=old, name=new))
    known = r.tables.get(table or "")
    if known is not None and old in known.columns and new:
        known.columns = {(new if k == old else k): v for k, v in known.columns.items()}


def _alter_column(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    """``ALTER COLUMN c TYPE t`` / ``SET``/``DROP NOT NULL`` / ``SET``/``DROP DEFAULT``."""
    name = name_of(action.this)
    known = r.tables.get(table or "")
    old = known.columns.get(name or "") if known else None
    current = old or Column(None, "", False, False)
    dtype = action.args.get("dtype")
    if dtype is not None:
        sig, text = signature(dtype)
        current = replace(current, type=sig, text=text)
        r.type_change(table, name, current, where)
        using = action.args.get("using")
        if isinstance(using, exp.Expr) and using.find(exp.Column) is None:
            # ``USING NULL`` (or any constant): every value is replaced, none converted.
            r.add(where.op(s.CLEAR_VALUES, table=table, column=name))
    allow_null = action.args.get("allow_null")
    if allow_null is not None:
        nullable = bool(allow_null) and bool(action.args.get("drop"))
        current = replace(current, not_null=not nullable)
        r.add(where.column_op(s.ALTER_NULLABLE, table, name, current))
    elif action.args.get("default") is not None:
        current = replace(current, default=True)
    elif action.args.get("drop"):
        current = replace(current, default=False)
    if known is not None and name:
        known.columns[name] = current


def _modify_column(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    """MySQL's ``MODIFY c <definition>`` and ``CHANGE old new <definition>``: the column is
    redefined whole (an attribute not repeated is reset)."""
    coldef = action.this
    assert isinstance(coldef, exp.ColumnDef)
    name, column, _ = column_of(coldef)
    old_name = name_of(action.args.get("rename_from")) or name
    known = r.tables.get(table or "")
    if old_name != name:
        _column_renamed(r, table, old_name, name or None, where)
    r.type_change(table, name, column, where)
    old = known.columns.get(name) if known else None
    if column.not_null and (old is None or not old.not_null):
        r.add(where.column_op(s.ALTER_NULLABLE, table, name, column))
    if known is not None:
        known.columns[name] = column


def _add_constraint(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    """``ADD CONSTRAINT n ...`` (a constraint), MySQL's ``ADD [UNIQUE] INDEX|KEY n (...)``
    (an index), or an unnamed ``ADD PRIMARY KEY``/``FOREIGN KEY``."""
    known = r.tables.get(table or "")
    for item in action.expressions:
        if isinstance(item, exp.IndexColumnConstraint) or (
            isinstance(item, exp.UniqueColumnConstraint) and isinstance(item.this, exp.Schema)
        ):
            target = item.this if isinstance(item.this, exp.Schema) else None
            index = name_of(target.this) if target is not None else name_of(item.this)
            listed = columns_of(target) if target is not None else columns_of(item)
            r.add(where.op(s.CREATE_INDEX, table=table, name=index, columns=listed))
            if known is not None and index:
                known.indexes.add(index)
            continue
        name = name_of(item.this) if isinstance(item, exp.Constraint) else None
        columns: tuple[str, ...] = ()
        for part in item.expressions if isinstance(item, exp.Constraint) else [item]:
            if isinstance(part, exp.ForeignKey | exp.PrimaryKey | exp.UniqueColumnConstraint):
                columns = columns or columns_of(part.this if part.this else part)
        refs = references_of(item)
        r.add(
            where.op(s.CREATE_CONSTRAINT, table=table, name=name, columns=columns, references=refs)
        )


def _neutral(r: Reading, table: str | None, action: exp.Expr, where: Where) -> None:
    """Changes no column, data or name (``SET``/``DROP`` a comment, options)."""


ALTER_ACTIONS: dict[type[exp.Expr], ActionHandler] = {
    exp.ColumnDef: _add_column,
    exp.Drop: _drop,
    exp.DropPrimaryKey: _drop_primary_key,
    exp.AlterRename: _rename_table,
    exp.RenameColumn: _rename_column,
    exp.AlterColumn: _alter_column,
    exp.ModifyColumn: _modify_column,
    exp.AddConstraint: _add_constraint,
    exp.AlterSet: _neutral,
}

# --- opaque commands ----------------------------------------------------------------------------

#: Heads of statements sqlglot keeps as opaque commands that change nothing we model.
NEUTRAL_COMMANDS = (
    ("CREATE", "EXTENSION"),
    ("DROP", "EXTENSION"),
    ("CREATE", "RULE"),
    ("DROP", "RULE"),
    ("CREATE", "TRIGGER"),
    ("DROP", "TRIGGER"),
    ("CREATE", "OR", "REPLACE", "RULE"),
    ("CREATE", "OR", "REPLACE", "TRIGGER"),
    ("CREATE", "FUNCTION"),
    ("CREATE", "OR", "REPLACE", "FUNCTION"),
    ("DROP", "FUNCTION"),
    ("CREATE", "PROCEDURE"),
    ("CREATE", "OR", "REPLACE", "PROCEDURE"),
    ("DROP", "PROCEDURE"),
    ("CREATE", "VIEW"),
    ("CREATE", "OR", "REPLACE", "VIEW"),
    ("DROP", "VIEW"),
    ("ALTER", "FUNCTION"),
    ("ALTER", "SEQUENCE"),
    ("ALTER", "VIEW"),
    ("ALTER", "EXTENSION"),
    ("COMMENT", "ON"),
    ("GRANT",),
    ("REVOKE",),
    ("SET",),
    ("RESET",),
    ("ANALYZE",),
    ("LOCK",),
    ("REINDEX",),
    ("REFRESH", "MATERIALIZED", "VIEW"),
)
#: ``ALTER TABLE`` actions sqlglot does not parse but that change no column, data or name
#: (``*``: any one word, the column).
NEUTRAL_ALTER_ACTIONS = (
    ("ALTER", "*", "SET", "STORAGE"),
    ("ALTER", "COLUMN", "*", "SET", "STORAGE"),
    ("ALTER", "*", "SET", "STATISTICS"),
    ("ALTER", "COLUMN", "*", "SET", "STATISTICS"),
    ("ALTER", "*", "SET", "COMPRESSION"),
    ("ALTER", "COLUMN", "*", "SET", "COMPRESSION"),
    ("OWNER", "TO"),
    ("CLUSTER", "ON"),
    ("SET", "WITHOUT", "CLUSTER"),
    ("SET", "TABLESPACE"),
    ("ENABLE",),
    ("DISABLE",),
    ("REPLICA", "IDENTITY"),
    ("VALIDATE", "CONSTRAINT"),
)


def _words(text: str, dialect: str) -> list[list[str]]:
    """The statement's words (upper-cased; ``a.b`` one word) split at top-level commas."""
    parts: list[list[str]] = [[]]
    depth = 0
    join = False
    found = sqlglot.tokenize(text, read=dialect)
    # sqlglot keeps what follows a command word (RENAME, SHOW...) as one string token.
    quoted = len(found) == 2 and text[found[1].start : found[1].start + 1] in ("'", '"', "$")
    if len(found) == 2 and found[1].token_type == TokenType.STRING and not quoted:
        found = [found[0], *sqlglot.tokenize(found[1].text, read=dialect)]
    for token in found:
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.COMMA and depth == 0:
            parts.append([])
            continue
        elif kind == TokenType.DOT and parts[-1]:
            parts[-1][-1] += "."
            join = True
            continue
        if join:
            parts[-1][-1] += token.text.upper()
            join = False
        else:
            parts[-1].append(token.text.upper())
    return parts


def _starts(words: list[str], head: tuple[str, ...]) -> bool:
    return len(words) >= len(head) and all(h in ("*", w) for h, w in zip(head, words, strict=False))


def command(r: Reading, tree: exp.Expr, where: Where) -> None:
    """A statement sqlglot read only as a command: judged by its first words, or unknown."""
    rest = tree.args.get("expression")
    text = f"{tree.this} {rest.name if isinstance(rest, exp.Literal) else rest or ''}"
    by_words(r, text, where, "statement the SQL parser does not read")


def by_words(r: Reading, text: str, where: Where, unread: str) -> None:
    """A statement judged by its words alone (the parser gave no tree): MySQL's ``RENAME
    TABLE``, ``VACUUM``/``ALTER TYPE ... ADD VALUE`` (non-transactional), statements whose first
    words say they leave our objects alone; anything else is unknown (``unread`` says why)."""
    try:
        parts = _words(text, r.reader.sqlglot_dialect)
    except TokenError as exc:
        r.not_judged(where, f"{unread}: {exc}")
        return
    head = parts[0]
    if _starts(head, ("RENAME", "TABLE")):  # MySQL: RENAME TABLE a TO b, c TO d
        pairs = [head[2:], *parts[1:]]
        if all(len(p) == 3 and p[1] == "TO" for p in pairs):
            for old, _, new in pairs:
                r.rename_table(identifier(old) or old, identifier(new) or new, where)
            return
    elif _starts(head, ("VACUUM",)) or (_starts(head, ("ALTER", "TYPE")) and "VALUE" in head):
        # VACUUM, and ALTER TYPE ... ADD VALUE before PostgreSQL 12, refuse a transaction.
        if "ADD" in head or head[0] == "VACUUM":
            r.add(where.op(s.NON_TRANSACTIONAL))
        return
    elif _starts(head, ("ALTER", "TABLE")):
        actions = [head[_table_end(head) :], *parts[1:]]
        if all(any(_starts(a, n) for n in NEUTRAL_ALTER_ACTIONS) for a in actions):
            return
        r.not_judged(where, f"ALTER TABLE {unread}")
        return
    elif any(_starts(head, n) for n in NEUTRAL_COMMANDS) or _starts(head, ("ALTER", "TYPE")):
        return
    lead = " ".join(w for w in head[:2] if w.replace("_", "").isalnum())  # keywords, no bodies
    r.not_judged(where, f"{lead} {unread}".strip())


def _table_end(words: list[str]) -> int:
    """Index of the first action word after ``ALTER TABLE [IF EXISTS] [ONLY] name``."""
    i = 2
    while i < len(words) and words[i] in ("IF", "EXISTS", "ONLY"):
        i += 1
    return i + 1  # after the name (``schema.name`` is one word)
