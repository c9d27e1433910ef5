"""Table shapes for the SQL reader: what a ``CREATE TABLE`` defines, what an ``INSERT ...
SELECT`` carries over, and what a table rebuilt under its own name changed.

SQLite cannot alter most of a column, so its migrations rebuild the table: ``CREATE TABLE new``,
``INSERT INTO new SELECT ... FROM old``, ``DROP TABLE old``, ``ALTER TABLE new RENAME TO old``
(or a swap by renames). Read statement by statement that is "table dropped" and "table renamed";
what OLD's code meets is the same table with other columns. :func:`rebuild_ops` says which:
columns added, dropped, renamed (carried over under another name), retyped, made NOT NULL, and
rows or values not carried over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from compatcheck.migrations import steps as s
from compatcheck.migrations.steps import Op, identifier
from compatcheck.migrations.typechange import Signature, widens


@dataclass(frozen=True)
class Where:
    """The statement ops come from (evidence), and a builder of ops carrying it."""

    source: str
    line: int

    def op(self, kind: str, **fields: Any) -> Op:
        return Op(kind, source=self.source, line=self.line, **fields)

    def column_op(
        self, kind: str, table: str | None, name: str | None, column: Column, **fields: Any
    ) -> Op:
        """An op on ``column`` (``ADD_COLUMN``, ``ALTER_NULLABLE``) with what its definition
        says about inserts: whether it takes null, whether the database fills it."""
        return self.op(
            kind,
            table=table,
            column=name,
            nullable=not column.not_null,
            server_default=column.default,
            **fields,
        )


@dataclass(frozen=True)
class Column:
    """One column as its definition says: the type (signature and text), NOT NULL, whether the
    database fills it (``DEFAULT``, auto-increment, identity, generated)."""

    type: Signature | None
    text: str
    not_null: bool
    default: bool
    generated: bool = False


@dataclass
class Table:
    """A table the reader saw created: its columns in order and its named indexes.

    ``complete`` is false when some column could not be read (``CREATE TABLE ... AS SELECT *``):
    a rebuild of it cannot be judged.
    """

    columns: dict[str, Column] = field(default_factory=dict)
    indexes: set[str] = field(default_factory=set)
    complete: bool = True
    #: Tables its foreign keys point at.
    references: tuple[str, ...] = ()

    def copy(self) -> Table:
        """A copy to change without changing this one (columns are immutable values)."""
        return Table(dict(self.columns), set(self.indexes), self.complete, self.references)


@dataclass(frozen=True)
class Copy:
    """``INSERT INTO target (cols) SELECT ... FROM source``: per target column, the source column
    it takes (None for anything else: a literal, an expression, another table's column), and
    whether rows may be left behind (``WHERE``, an inner join, ``DISTINCT``, ``GROUP BY``)."""

    source: str
    columns: dict[str, str | None]
    filtered: bool


def name_of(node: exp.Expr | None) -> str | None:
    """A table, column, index or constraint node's bare lower-cased name (no schema prefix)."""
    if node is None:
        return None
    if isinstance(node, exp.Schema):
        node = node.this
    if isinstance(node, exp.Ordered):
        node = node.this
    name = node.name if node is not None else ""
    return identifier(name) if name else None


def signature(dtype: exp.Expr | None) -> tuple[Signature | None, str]:
    """``VARCHAR(50)`` → ``(("varchar", (50,)), "VARCHAR(50)")``: what :func:`widens` compares,
    and the type as written (two types are the same when these are equal)."""
    if not isinstance(dtype, exp.DataType):
        return None, ""
    args: list[int] = []
    for param in dtype.expressions:
        value = param.this if isinstance(param, exp.DataTypeParam) else param
        if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
            args.append(int(value.this))
    # The type's own name (``dtype.sql()`` would spell MEDIUMTEXT as TEXT) and its arguments.
    text = f"{dtype.this.name}({', '.join(e.sql() for e in dtype.expressions)})"
    return (dtype.this.name.lower(), tuple(args)), text


_DEFAULTS = (
    exp.DefaultColumnConstraint,
    exp.AutoIncrementColumnConstraint,
    exp.GeneratedAsIdentityColumnConstraint,
)


def column_of(coldef: exp.ColumnDef) -> tuple[str, Column, tuple[str, ...]]:
    """A column definition: its name, what it is, and the tables its ``REFERENCES`` names."""
    sig, text = signature(coldef.args.get("kind"))
    not_null = default = generated = False
    refs: list[str] = []
    for constraint in coldef.args.get("constraints") or ():
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint):
            not_null = not kind.args.get("allow_null")
        elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
            not_null = True
        elif isinstance(kind, _DEFAULTS):
            default = True
        elif isinstance(kind, exp.ComputedColumnConstraint):
            generated = default = True
        elif isinstance(kind, exp.Reference):
            ref = name_of(kind.this)
            if ref:
                refs.append(ref)
    if sig and sig[0] in ("serial", "bigserial", "smallserial"):
        default = True
    name = name_of(coldef.this) or ""
    return name, Column(sig, text, not_null, default, generated), tuple(refs)


def columns_of(node: exp.Expr | list[exp.Expr] | None) -> tuple[str, ...]:
    """The plain column names listed by an index, key or constraint (or given as a list)."""
    if node is None:
        return ()
    out = []
    for item in node if isinstance(node, list) else node.expressions:
        name = name_of(item)
        if name:
            out.append(name)
    return tuple(out)


def references_of(node: exp.Expr) -> tuple[str, ...]:
    """Tables a table-level constraint's ``FOREIGN KEY ... REFERENCES`` names."""
    out = []
    for fk in node.find_all(exp.ForeignKey):
        ref = fk.args.get("reference")
        name = name_of(ref.this) if isinstance(ref, exp.Reference) else None
        if name:
            out.append(name)
    return tuple(out)


def table_of(target: exp.Expr, query: exp.Expr | None) -> Table:
    """A ``CREATE TABLE``'s shape (with the tables its foreign keys point at)."""
    table = Table()
    refs: list[str] = []
    if isinstance(target, exp.Schema):
        for item in target.expressions:
            if isinstance(item, exp.ColumnDef):
                name, column, col_refs = column_of(item)
                table.columns[name] = column
                refs += col_refs
            elif isinstance(item, exp.LikeProperty):  # (LIKE other): columns not listed here
                table.complete = False
            else:
                refs += references_of(item)
                index = name_of(item.this) if isinstance(item, exp.IndexColumnConstraint) else None
                if index:
                    table.indexes.add(index)
    elif isinstance(query, exp.Query):  # CREATE TABLE ... AS SELECT: names, types unknown
        for projection in query.selects:
            name = projection.alias_or_name
            if not name or name == "*":
                table.complete = False
            else:
                table.columns[name.lower()] = Column(None, "", False, False)
    else:
        table.complete = False
    table.references = tuple(dict.fromkeys(refs))
    return table


def copy_of(tree: exp.Expr, tables: dict[str, Table]) -> tuple[str, Copy] | None:
    """``INSERT INTO t (...) SELECT ... FROM source``: the target and what it carries over."""
    query = tree.args.get("expression")
    target_node = tree.this
    if not isinstance(query, exp.Select):
        return None
    source_node = query.args.get("from_") or query.args.get("from")
    source = name_of(source_node.this) if isinstance(source_node, exp.From) else None
    target = name_of(target_node)
    if not source or not target:
        return None
    alias = source_node.this.alias_or_name.lower() if isinstance(source_node, exp.From) else ""
    if isinstance(target_node, exp.Schema):
        names = [name_of(c) or "" for c in target_node.expressions]
    elif target in tables:
        names = list(tables[target].columns)
    else:
        return None
    columns: dict[str, str | None] = {}
    for name, projection in zip(names, query.selects, strict=False):
        value = projection.this if isinstance(projection, exp.Alias) else projection
        qualifier = value.table.lower() if isinstance(value, exp.Column) else ""
        own = isinstance(value, exp.Column) and qualifier in ("", alias, source)
        columns[name] = value.name.lower() if own else None
    joins = query.args.get("joins") or ()
    filtered = bool(
        query.args.get("where")
        or query.args.get("distinct")
        or query.args.get("group")
        or query.args.get("limit")
        or any(str(j.args.get("side") or "").upper() != "LEFT" for j in joins)
    )
    return target, Copy(source, columns, filtered)


def rebuild_ops(name: str, old: Table, new: Table, copies: list[Copy], where: Where) -> list[Op]:
    """What a table rebuilt under its own name changed, as ops on that table."""
    out: list[Op] = []
    carried: dict[str, str | None] = {}
    for col in new.columns:
        sources = {c.columns.get(col) for c in copies}
        carried[col] = sources.pop() if len(sources) == 1 else None
    renamed: dict[str, str] = {}
    for col, src in carried.items():
        moved = src and src != col and src in old.columns and src not in new.columns
        if moved and src and col not in old.columns and src not in renamed:
            renamed[src] = col
    for src, col in renamed.items():
        out.append(where.op(s.RENAME_COLUMN, table=name, column=src, name=col))
    before = {renamed.get(c, c): (c, spec) for c, spec in old.columns.items()}
    for col, spec in new.columns.items():
        if col not in before:
            out.append(where.column_op(s.ADD_COLUMN, name, col, spec, generated=spec.generated))
            continue
        old_name, old_spec = before[col]
        out += _changed(name, col, old_spec, spec, where)
        if copies and carried.get(col) != old_name:
            out.append(where.op(s.UPDATE_ROWS, table=name, column=col))  # values not carried
    for col in old.columns:
        if col not in new.columns and col not in renamed:
            out.append(where.op(s.DROP_COLUMN, table=name, column=col))
    if old.columns and (not copies or any(c.filtered for c in copies)):
        out.append(where.op(s.DELETE_ROWS, table=name))  # rows not (all) carried over
    return out


def _changed(table: str, col: str, old: Column, new: Column, where: Where) -> list[Op]:
    out: list[Op] = []
    # Unlike an ``ALTER ... TYPE`` (a change the author asked for: it counts unless proven a
    # widening), a rebuild declares every column again: a type unknown on one side (a column of
    # ``CREATE TABLE ... AS SELECT``) is no evidence of a change.
    if old.text != new.text and old.type is not None and new.type is not None:
        kind = s.WIDEN_TYPE if widens(old.type, new.type) else s.ALTER_TYPE
        out.append(where.op(kind, table=table, column=col))
    if new.not_null and not old.not_null:
        out.append(where.column_op(s.ALTER_NULLABLE, table, col, new))
    return out


def index_ops(ops: list[Op | None], table: str, old: Table, where: Where) -> None:
    """After a rebuild of ``table``: an index it had and that was created again is no new
    index; one it had and that was not created again went with the old table."""
    again: set[str] = set()
    for i, op in enumerate(ops):
        if op and op.op == s.CREATE_INDEX and op.table == table and op.name in old.indexes:
            ops[i] = None
            again.add(op.name)
    for name in sorted(old.indexes - again):
        ops.append(where.op(s.DROP_INDEX, table=table, name=name))
