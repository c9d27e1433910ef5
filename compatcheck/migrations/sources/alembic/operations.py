"""Alembic's ``op.*`` operations, one small handler each, in a table keyed by operation name.

A handler gets the call being read (:class:`OpCall`: the node, the scope, the batch table) and
yields the :class:`~compatcheck.migrations.steps.Op` values it performs. ``op.<name>(...)`` and the
same operation on a ``with op.batch_alter_table(t) as b`` alias go through :data:`OP_HANDLERS`;
methods recognised on any receiver (``conn.execute(...)``, ``status_enum.create(bind)``,
``op.get_bind()``) through :data:`RECEIVER_HANDLERS`. Each handler can be tested alone
(:func:`~compatcheck.migrations.sources.alembic.analyser.read_call`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compatcheck.migrations import steps as s
from compatcheck.migrations.sql import shorten
from compatcheck.migrations.steps import Op, identifier
from compatcheck.migrations.typechange import widens

if TYPE_CHECKING:
    from compatcheck.migrations.sources.alembic.analyser import Analyser, Scope

#: What :func:`literal` returns for an expression that is not a literal.
NOT_LITERAL = object()


def literal(node: ast.AST | None) -> Any:
    """``ast.literal_eval`` of ``node``; None for no node, :data:`NOT_LITERAL` when it is none."""
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return NOT_LITERAL


def call_name(call: ast.Call) -> str:
    """``op.drop_table(...)`` → ``drop_table``; ``Column(...)`` → ``Column``."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    """The value of keyword argument ``name``, or None."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def argument(call: ast.Call, index: int, name: str) -> ast.expr | None:
    """Argument ``name``, given by keyword or at position ``index``."""
    kw = keyword(call, name)
    if kw is not None:
        return kw
    return call.args[index] if len(call.args) > index else None


@dataclass(frozen=True)
class Column:
    """What ``sa.Column("name", Type, nullable=..., server_default=...)`` declares."""

    name: str | None
    #: None when ``nullable=`` is not a literal.
    nullable: bool | None
    server_default: bool
    #: Enum types (PostgreSQL creates a named type for each) in the column's type.
    enums: tuple[str, ...]
    #: ``sa.Computed(...)`` among its arguments: the database computes its values.
    generated: bool = False


@dataclass(frozen=True)
class OpCall:
    """One call being read, with what its handler needs to turn it into ops."""

    analyser: Analyser
    node: ast.Call
    scope: Scope
    #: The table a ``batch_alter_table`` alias stands for; None for ``op.<name>(...)``.
    batch_table: str | None = None

    @functools.cached_property
    def source(self) -> str:
        return shorten(ast.unparse(self.node))

    def op(self, kind: str, **fields: Any) -> Op:
        return Op(kind, source=self.source, line=self.node.lineno, **fields)

    def kw(self, name: str) -> ast.expr | None:
        return keyword(self.node, name)

    def flag(self, name: str) -> bool:
        """``name=True`` given literally."""
        return literal(self.kw(name)) is True

    def arg(self, index: int, name: str) -> ast.expr | None:
        """Argument ``name`` at ``index`` as written (no table shift)."""
        return argument(self.node, index, name)

    def after_table(self, index: int, name: str) -> ast.expr | None:
        """Argument ``name``, ``index`` counted as in ``op.<name>(table, ...)``.

        Trap: batch operations take no table argument, so their positions shift by one.
        """
        shift = 0 if self.batch_table is not None else 1
        return argument(self.node, index - 1 + shift, name)

    def ident(self, node: ast.AST | None) -> str | None:
        """The identifier a node names (literal or bound to one), normalised."""
        return identifier(self.analyser.text(node, self.scope))

    def table(self, index: int = 0, name: str = "table_name") -> str | None:
        """The batch's table, else argument ``name`` at ``index``."""
        if self.batch_table is not None:
            return self.batch_table
        return self.ident(self.arg(index, name))

    def names(self, node: ast.AST | None) -> tuple[str, ...]:
        """Identifiers of a literal list (or one string), normalised; () when not literal."""
        value = self.analyser.value(node, self.scope)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return ()
        return tuple(n for v in value if isinstance(v, str) and (n := identifier(v)))

    def enums(self, node: ast.AST) -> tuple[str, ...]:
        """Every named enum type created anywhere inside ``node``."""
        return tuple(e for a in ast.walk(node) if (e := self.analyser.enum_name(a, self.scope)))

    def column(self, node: ast.AST | None) -> Column | None:
        """``sa.Column(...)`` as a :class:`Column`; None when ``node`` is something else."""
        if not (isinstance(node, ast.Call) and call_name(node) == "Column"):
            return None
        name = self.analyser.text(node.args[0] if node.args else keyword(node, "name"), self.scope)
        given = keyword(node, "nullable")
        pk = literal(keyword(node, "primary_key")) is True
        nullable = literal(given) if given is not None else not pk
        return Column(
            name=identifier(name),
            nullable=nullable if isinstance(nullable, bool) else None,
            server_default=keyword(node, "server_default") is not None,
            enums=self.enums(node),
            generated=any(
                isinstance(a, ast.Call) and call_name(a) == "Computed" for a in node.args
            ),
        )


OpHandler = Callable[[OpCall], Iterator[Op]]
#: Returns True when the call's arguments need no further walk (they were read here).
ReceiverHandler = Callable[[OpCall], Generator[Op, None, bool]]


# --- tables -----------------------------------------------------------------------------------


def _references(nodes: list[ast.expr]) -> tuple[str, ...]:
    """Tables the ``ForeignKey("t.c")`` / ``ForeignKeyConstraint([...], ["t.c"])`` in ``nodes``
    point at (what keeps a referenced table from being dropped first)."""
    out: list[str] = []
    for node in nodes:
        for call in ast.walk(node):
            if not isinstance(call, ast.Call):
                continue
            name = call_name(call)
            target = None
            if name == "ForeignKey":
                target = argument(call, 0, "column")
            elif name == "ForeignKeyConstraint":
                target = argument(call, 1, "refcolumns")
            value = literal(target)
            refs = [value] if isinstance(value, str) else value
            for ref in refs if isinstance(refs, (list, tuple)) else ():
                if isinstance(ref, str) and "." in ref:
                    table = identifier(ref.rsplit(".", 1)[0])
                    if table and table not in out:
                        out.append(table)
    return tuple(out)


def create_table(c: OpCall) -> Iterator[Op]:
    table = c.table()
    yield c.op(s.CREATE_TABLE, table=table, references=_references(c.node.args[1:]))
    for node in c.node.args[1:]:
        col = c.column(node)
        if col is not None:
            for enum in col.enums:
                yield c.op(s.CREATE_ENUM, table=table, column=col.name, name=enum)
    if c.flag("postgresql_concurrently"):
        yield c.op(s.NON_TRANSACTIONAL, table=table)


def drop_table(c: OpCall) -> Iterator[Op]:
    yield c.op(s.DROP_TABLE, table=c.table())


def rename_table(c: OpCall) -> Iterator[Op]:
    old = c.ident(c.arg(0, "old_table_name"))
    yield c.op(s.RENAME_TABLE, table=old, name=c.ident(c.arg(1, "new_table_name")))


# --- columns ----------------------------------------------------------------------------------


def add_column(c: OpCall) -> Iterator[Op]:
    table = c.table()
    col = c.column(c.after_table(1, "column"))
    if col is None:
        return
    node = c.after_table(1, "column")
    yield c.op(
        s.ADD_COLUMN,
        table=table,
        column=col.name,
        nullable=col.nullable,
        server_default=col.server_default,
        generated=col.generated,
        references=_references([node] if node is not None else []),
    )
    for enum in col.enums:
        yield c.op(s.CREATE_ENUM, table=table, column=col.name, name=enum)


def drop_column(c: OpCall) -> Iterator[Op]:
    yield c.op(s.DROP_COLUMN, table=c.table(), column=c.ident(c.after_table(1, "column_name")))


def alter_column(c: OpCall) -> Iterator[Op]:
    """A rename, a type change that is not a widening, a nullability change: each its own op.

    ``existing_*`` arguments describe the column as it is; they change nothing.
    """
    table = c.table()
    column = c.ident(c.after_table(1, "column_name"))
    new_name = c.kw("new_column_name")
    if new_name is not None:
        yield c.op(s.RENAME_COLUMN, table=table, column=column, name=c.ident(new_name))
    type_ = c.kw("type_")
    if type_ is not None and is_widening(c.kw("existing_type"), type_):
        yield c.op(s.WIDEN_TYPE, table=table, column=column)
    elif type_ is not None:
        yield c.op(s.ALTER_TYPE, table=table, column=column)
        for enum in c.enums(type_):
            yield c.op(s.CREATE_ENUM, table=table, column=column, name=enum)
    nullable = literal(c.kw("nullable"))
    if isinstance(nullable, bool):
        default = c.kw("server_default") is not None or c.kw("existing_server_default") is not None
        yield c.op(
            s.ALTER_NULLABLE, table=table, column=column, nullable=nullable, server_default=default
        )


# --- indexes and constraints ------------------------------------------------------------------


def _non_transactional(c: OpCall, table: str | None, name: str | None) -> Iterator[Op]:
    if c.flag("postgresql_concurrently"):
        yield c.op(s.NON_TRANSACTIONAL, table=table, name=name)


def create_index(c: OpCall) -> Iterator[Op]:
    name, table = c.ident(c.arg(0, "index_name")), c.table(1)
    cols = c.names(c.after_table(2, "columns"))
    yield c.op(s.CREATE_INDEX, table=table, name=name, columns=cols)
    yield from _non_transactional(c, table, name)


def drop_index(c: OpCall) -> Iterator[Op]:
    name, table = c.ident(c.arg(0, "index_name")), c.table(1)
    yield c.op(s.DROP_INDEX, table=table, name=name)
    yield from _non_transactional(c, table, name)


def _constraint(table_kw: str, columns: Callable[[OpCall], tuple[str, ...]]) -> OpHandler:
    """``op.create_<kind>(name, table, ...)``: which keyword names the table, where the
    covered columns are."""

    def handler(c: OpCall) -> Iterator[Op]:
        name, table = c.ident(c.arg(0, "constraint_name")), c.table(1, table_kw)
        refs: tuple[str, ...] = ()
        if table_kw == "source_table":  # create_foreign_key(name, source, referent, ...)
            referent = c.ident(c.arg(2, "referent_table"))
            refs = (referent,) if referent else ()
        yield c.op(s.CREATE_CONSTRAINT, table=table, name=name, columns=columns(c), references=refs)

    return handler


def _columns_at(index: int, name: str) -> Callable[[OpCall], tuple[str, ...]]:
    return lambda c: c.names(c.after_table(index, name))


def drop_constraint(c: OpCall) -> Iterator[Op]:
    name, table = c.ident(c.arg(0, "constraint_name")), c.table(1)
    yield c.op(s.DROP_CONSTRAINT, table=table, name=name)


#: ``op.<name>(...)`` and ``batch.<name>(...)``: every operation that changes the schema.
OP_HANDLERS: dict[str, OpHandler] = {
    "create_table": create_table,
    "drop_table": drop_table,
    "rename_table": rename_table,
    "add_column": add_column,
    "drop_column": drop_column,
    "alter_column": alter_column,
    "create_index": create_index,
    "drop_index": drop_index,
    "create_unique_constraint": _constraint("table_name", _columns_at(2, "columns")),
    "create_foreign_key": _constraint("source_table", _columns_at(3, "local_cols")),
    "create_check_constraint": _constraint("table_name", lambda c: ()),
    "create_primary_key": _constraint("table_name", _columns_at(2, "columns")),
    "create_exclude_constraint": _constraint("table_name", _columns_at(2, "columns")),
    "drop_constraint": drop_constraint,
}


# --- methods on any receiver ------------------------------------------------------------------


def _enum_create_or_drop(kind: str) -> ReceiverHandler:
    """``ENUM(..., name="x").create(bind)`` / ``status_enum.drop(bind)`` (a name bound to one)."""

    def handler(c: OpCall) -> Generator[Op, None, bool]:
        receiver = c.node.func.value if isinstance(c.node.func, ast.Attribute) else c.node.func
        enum = c.analyser.enum_name(receiver, c.scope)
        if enum is None and isinstance(receiver, ast.Name):
            enum = c.scope.enums.get(receiver.id)
        if not enum:
            return False
        yield c.op(kind, name=enum)
        return True

    return handler


def execute(c: OpCall) -> Generator[Op, None, bool]:
    """SQL given as a string, an f-string or ``sa.text(...)``; else a core statement
    (``op.execute(t.delete())``), whose arguments are walked further."""
    if not c.node.args:
        return True
    sql = c.analyser.text(c.node.args[0], c.scope)
    if sql is None:
        yield from core_statement(c, c.node.args[0])
        return False
    # Imported here: the SQL parser (sqlglot) loads only for a history that runs raw SQL.
    from compatcheck.migrations.sql import split_sql
    from compatcheck.migrations.sqlstatic import ANY, analyse

    code = analyse([(stmt, c.node.lineno) for stmt in split_sql(sql)], ANY)
    c.analyser.unknown.extend(code.unknown)  # named by the core (statement-unread)
    yield from code.ops
    return True


def get_bind(c: OpCall) -> Generator[Op, None, bool]:
    """The revision talks to the database itself: it cannot be rendered offline."""
    yield c.op(s.NEEDS_ONLINE)
    return False


#: Methods recognised whatever they are called on.
RECEIVER_HANDLERS: dict[str, ReceiverHandler] = {
    "create": _enum_create_or_drop(s.CREATE_ENUM),
    "drop": _enum_create_or_drop(s.DROP_ENUM),
    "execute": execute,
    "exec_driver_sql": execute,
    "get_bind": get_bind,
}


def core_statement(c: OpCall, node: ast.AST) -> Iterator[Op]:
    """``t.delete()``, ``sa.delete(t)``, ``t.update().values(...)`` passed to execute."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and call_name(sub) in ("delete", "update"):
            kind = s.DELETE_ROWS if call_name(sub) == "delete" else s.UPDATE_ROWS
            func = sub.func
            receiver = func.value if isinstance(func, ast.Attribute) else None
            target = sub.args[0] if sub.args else receiver
            table: str | None = None
            if isinstance(target, ast.Call) and call_name(target) in ("table", "Table"):
                table = c.ident(target.args[0]) if target.args else None
            elif isinstance(target, ast.Name):
                # A name bound to ``sa.table("t", ...)`` (or to a string) names that table; any
                # other name (a helper's parameter) is unresolved here, not a table of that name.
                bound = c.scope.constants.get(target.id)
                if isinstance(bound, str):
                    table = identifier(bound)
                elif target.id not in c.scope.unresolved:
                    table = identifier(target.id)  # `orders = sa.table(...)` elsewhere
            yield c.op(kind, table=table)
            return


# --- type changes -----------------------------------------------------------------------------


def _variants(node: ast.expr) -> list[ast.expr]:
    """``T().with_variant(M, "mysql").with_variant(N, "mssql")`` → ``[T(), M, N]``: the column's
    type on every dialect (each must widen for the change to be a widening)."""
    out: list[ast.expr] = []
    while (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "with_variant"
        and node.args
    ):
        out.append(node.args[0])
        node = node.func.value
    return [node, *out]


def _type_signature(node: ast.expr | None) -> tuple[str, tuple[int, ...]] | None:
    """``sa.String(50)`` → ``("string", (50,))``; None when it is not a literal type expression
    (``NVARCHAR(None)``, no length, is ``("nvarchar", ())``)."""
    if node is None:
        return None
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call is not None else node
    if isinstance(target, ast.Attribute):
        name = target.attr
    elif isinstance(target, ast.Name):
        name = target.id
    else:
        return None
    args: list[int] = []
    if call is not None:
        keys = ("length", "precision", "scale")
        values = [*call.args, *(kw.value for kw in call.keywords if kw.arg in keys)]
        for value in values:
            if isinstance(value, ast.Constant) and value.value is None and not args:
                break
            if not (isinstance(value, ast.Constant) and isinstance(value.value, int)):
                return None
            args.append(value.value)
    return name.lower(), tuple(args)


def is_widening(existing: ast.expr | None, new: ast.expr) -> bool:
    """True when ``alter_column(type_=new, existing_type=existing)`` only widens the column, on
    every dialect ``new`` names a variant for.

    OLD's code keeps working on a wider column (``String(50)`` → ``String(100)`` or ``Text``,
    ``TEXT`` → ``MEDIUMTEXT``, ``Integer`` → ``BigInteger``, ``Numeric(10, 2)`` →
    ``Numeric(12, 2)``), so such a change is no ``type-changed`` reason. Without a literal
    ``existing_type`` nothing can be proven and the change counts.
    """
    old_sig = _type_signature(existing)
    if old_sig is None:
        return False
    return all(widens(old_sig, _type_signature(t)) for t in _variants(new))
