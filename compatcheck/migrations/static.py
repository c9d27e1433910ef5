"""Read Alembic revision files as source (``ast``) and list the schema operations they perform.

Why never import: real projects' migrations import their application, which needs its settings,
secrets and sometimes a database at import time. ``compatcheck migrations --static`` must work on a
checkout in CI with none of that, so every fact here comes from the syntax tree.

What is recognised, in ``upgrade()``/``downgrade()`` and in module-level helper functions they call
(arguments bound to their literal values):

- ``op.<operation>(...)`` calls and the same operations on ``with op.batch_alter_table(t) as b``
  aliases (``b.add_column(...)`` has no table argument: the batch supplies it);
- SQL passed to ``op.execute``/``connection.execute`` as a string, an f-string or ``sa.text(...)``;
- ``sa.Enum(..., name=...)`` types inside ``create_table``/``add_column`` and explicit
  ``ENUM(...).create()``/``.drop()`` calls (PostgreSQL creates a named type for them);
- ``autocommit_block()`` and ``postgresql_concurrently=True`` (non-transactional work).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compatcheck.errors import InputError

#: How deep helper functions are inlined (a helper calling a helper...); guards recursion.
_MAX_HELPER_DEPTH = 4

#: Operation names an ``Op`` can carry.
CREATE_TABLE = "create_table"
DROP_TABLE = "drop_table"
RENAME_TABLE = "rename_table"
ADD_COLUMN = "add_column"
DROP_COLUMN = "drop_column"
RENAME_COLUMN = "rename_column"
ALTER_TYPE = "alter_type"
ALTER_NULLABLE = "alter_nullable"
CREATE_INDEX = "create_index"
DROP_INDEX = "drop_index"
CREATE_CONSTRAINT = "create_constraint"
DROP_CONSTRAINT = "drop_constraint"
CREATE_ENUM = "create_enum"
DROP_ENUM = "drop_enum"
DELETE_ROWS = "delete_rows"
UPDATE_ROWS = "update_rows"
NON_TRANSACTIONAL = "non_transactional"
NEEDS_ONLINE = "needs_online"


@dataclass(frozen=True)
class Op:
    """One schema or data operation found in a migration function.

    ``table``/``column`` are lower-cased, unquoted and without schema prefix so that ``"Users"``,
    ``public.users`` and ``users`` compare equal; ``name`` is the index, constraint or enum type
    name, or the new name of a rename.
    """

    op: str
    table: str | None = None
    column: str | None = None
    name: str | None = None
    nullable: bool | None = None
    server_default: bool = False
    #: Columns an index or constraint covers (lower-cased), when written as literals.
    columns: tuple[str, ...] = ()
    #: Source of the statement (SQL text or ``op.drop_column('t', 'c')``), for evidence.
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class FunctionInfo:
    """What one ``upgrade()`` or ``downgrade()`` does."""

    #: The body does nothing: only ``pass``, a docstring, ``...`` (comments are not in the AST).
    empty: bool
    #: A ``raise`` at the top level of the body: every call fails.
    raises: bool
    ops: tuple[Op, ...]
    line: int = 0


@dataclass(frozen=True)
class RevisionFile:
    """The module-level facts Alembic reads from one revision file, plus its two functions."""

    path: Path
    revision: str
    down_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    upgrade: FunctionInfo | None = None
    downgrade: FunctionInfo | None = None


# --------------------------------------------------------------------------------------------
# Reading files


def _literal(node: ast.AST | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return _NOT_LITERAL


_NOT_LITERAL = object()


def _as_tuple(value: Any, path: Path, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"{path}: `{name}` is not a string, tuple or list of strings")


def read_revision_file(path: Path) -> RevisionFile | None:
    """Parse one revision file; None when it is not a revision (no ``revision`` assignment)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    except SyntaxError as exc:
        raise InputError(f"{path}: syntax error on line {exc.lineno}: {exc.msg}") from exc
    values: dict[str, Any] = {}
    functions: dict[str, ast.FunctionDef] = {}
    for stmt in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            # `revision: str = "abc"` and `down_revision: Union[str, None] = "x"` (new templates)
            targets, value = [stmt.target], stmt.value
        elif isinstance(stmt, ast.FunctionDef):
            functions[stmt.name] = stmt
        for target in targets:
            if isinstance(target, ast.Name):
                values[target.id] = _literal(value)
    revision = values.get("revision")
    if revision is None or revision is _NOT_LITERAL:
        return None
    if not isinstance(revision, str):
        raise InputError(f"{path}: `revision` is not a string")
    for key in ("down_revision", "branch_labels", "depends_on"):
        if values.get(key) is _NOT_LITERAL:
            raise InputError(f"{path}: `{key}` is not a literal; compatcheck reads it as source")
    constants = {k: v for k, v in values.items() if isinstance(v, str)}
    analyser = _Analyser(functions, constants)
    return RevisionFile(
        path=path,
        revision=revision,
        down_revisions=_as_tuple(values.get("down_revision"), path, "down_revision"),
        branch_labels=_as_tuple(values.get("branch_labels"), path, "branch_labels"),
        depends_on=_as_tuple(values.get("depends_on"), path, "depends_on"),
        upgrade=analyser.function("upgrade"),
        downgrade=analyser.function("downgrade"),
    )


def list_revision_files(versions: Path, recursive: bool = False) -> list[Path]:
    """The ``.py`` files Alembic would load, in the order it loads them (sorted per folder).

    Trap: the load order is the tie-break Alembic uses between independent branches when it orders
    a downgrade, so it must be reproduced exactly (sorted names, folders walked in sorted order).
    """
    out: list[Path] = []
    folders = [versions]
    while folders:
        folder = folders.pop(0)
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
        for entry in entries:
            if (
                entry.is_file()
                and entry.name.endswith(".py")
                and not entry.name.startswith((".#", "__init__"))
            ):
                out.append(entry)
        if recursive:
            folders.extend(e for e in entries if e.is_dir() and e.name != "__pycache__")
    return out


# --------------------------------------------------------------------------------------------
# Function bodies


def _is_trivial(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _norm(name: str | None) -> str | None:
    """Unquote and lower-case an identifier and drop a schema prefix (``"public"."Users"``)."""
    if name is None:
        return None
    name = name.strip().strip(",;()")
    parts = [p.strip('"`[] ') for p in name.split(".")]
    return parts[-1].lower() if parts and parts[-1] else None


@dataclass
class _Env:
    constants: dict[str, Any]
    batch: dict[str, str] = field(default_factory=dict)
    enums: dict[str, str] = field(default_factory=dict)
    depth: int = 0


class _Analyser:
    """Walks a function body and yields :class:`Op` values in source order."""

    def __init__(self, functions: dict[str, ast.FunctionDef], constants: dict[str, Any]) -> None:
        self.functions = functions
        self.constants = constants

    def function(self, name: str) -> FunctionInfo | None:
        fn = self.functions.get(name)
        if fn is None:
            return None
        body = fn.body
        empty = all(_is_trivial(s) for s in body)
        raises = any(isinstance(s, ast.Raise) for s in body)
        ops = tuple(self._stmts(body, _Env(dict(self.constants))))
        return FunctionInfo(empty=empty, raises=raises, ops=ops, line=fn.lineno)

    # -- values -------------------------------------------------------------------------------

    def _value(self, node: ast.AST | None, env: _Env) -> Any:
        """A literal value, resolving names bound to constants; None when unknown."""
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env.constants.get(node.id)
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append(str(part.value))
                elif isinstance(part, ast.FormattedValue):
                    v = self._value(part.value, env)
                    parts.append(str(v) if v is not None else "?")
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self._value(node.left, env), self._value(node.right, env)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            return None
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._value(e, env) for e in node.elts]
        if isinstance(node, ast.Call) and _call_name(node) in ("text", "literal_column"):
            return self._value(node.args[0], env) if node.args else None
        return _literal(node) if isinstance(node, ast.UnaryOp) else None

    def _str(self, node: ast.AST | None, env: _Env) -> str | None:
        v = self._value(node, env)
        return v if isinstance(v, str) else None

    @staticmethod
    def _kw(call: ast.Call, name: str) -> ast.expr | None:
        for kw in call.keywords:
            if kw.arg == name:
                return kw.value
        return None

    def _names(self, node: ast.AST | None, env: _Env) -> tuple[str, ...]:
        value = self._value(node, env)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return ()
        return tuple(n for v in value if isinstance(v, str) and (n := _norm(v)))

    def _arg(self, call: ast.Call, index: int, name: str) -> ast.expr | None:
        kw = self._kw(call, name)
        if kw is not None:
            return kw
        return call.args[index] if len(call.args) > index else None

    # -- statements ---------------------------------------------------------------------------

    def _stmts(self, stmts: list[ast.stmt], env: _Env) -> Iterator[Op]:
        for stmt in stmts:
            yield from self._stmt(stmt, env)

    def _stmt(self, stmt: ast.stmt, env: _Env) -> Iterator[Op]:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if isinstance(stmt, ast.With):
            for item in stmt.items:
                ctx = item.context_expr
                if isinstance(ctx, ast.Call):
                    cname = _call_name(ctx)
                    if cname == "batch_alter_table":
                        table = _norm(self._str(self._arg(ctx, 0, "table_name"), env))
                        if isinstance(item.optional_vars, ast.Name) and table:
                            env.batch[item.optional_vars.id] = table
                        continue
                    if cname == "autocommit_block":
                        yield Op(
                            NON_TRANSACTIONAL,
                            source="autocommit_block()",
                            line=ctx.lineno,
                        )
                        continue
                yield from self._expr(ctx, env)
            yield from self._stmts(stmt.body, env)
            return
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            value = stmt.value
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name) and value is not None:
                    literal = self._value(value, env)
                    if literal is not None:
                        env.constants[target.id] = literal
                    enum = self._enum_name(value, env)
                    if enum:
                        env.enums[target.id] = enum
            if value is not None:
                yield from self._expr(value, env)
            return
        if isinstance(stmt, (ast.If, ast.For, ast.While, ast.AsyncFor)):
            # Conditional work still counts: a downgrade that *may* drop a table is destructive.
            if isinstance(stmt, ast.If):
                yield from self._expr(stmt.test, env)
            yield from self._stmts(stmt.body, env)
            yield from self._stmts(stmt.orelse, env)
            return
        if isinstance(stmt, ast.Try):
            yield from self._stmts(stmt.body, env)
            for handler in stmt.handlers:
                yield from self._stmts(handler.body, env)
            yield from self._stmts(stmt.orelse, env)
            yield from self._stmts(stmt.finalbody, env)
            return
        for node in ast.iter_child_nodes(stmt):
            if isinstance(node, ast.expr):
                yield from self._expr(node, env)

    def _expr(self, node: ast.expr, env: _Env) -> Iterator[Op]:
        """Every call in an expression, outermost first (``op.execute(sa.text(...))`` once)."""
        if isinstance(node, ast.Call):
            handled = yield from self._call(node, env)
            if handled:
                return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                yield from self._expr(child, env)

    # -- calls --------------------------------------------------------------------------------

    def _enum_name(self, node: ast.AST, env: _Env) -> str | None:
        if isinstance(node, ast.Call) and _call_name(node) in ("Enum", "ENUM"):
            kw = self._kw(node, "name")
            name = self._str(kw, env) if kw is not None else None
            create = self._kw(node, "create_type")
            if create is not None and _literal(create) is False:
                return None
            return _norm(name)
        return None

    def _column(self, node: ast.AST, env: _Env) -> dict[str, Any] | None:
        """``sa.Column("name", Type, nullable=..., server_default=...)`` → facts, else None."""
        if not (isinstance(node, ast.Call) and _call_name(node) == "Column"):
            return None
        name = self._str(node.args[0], env) if node.args else self._str(self._kw(node, "name"), env)
        nullable_node = self._kw(node, "nullable")
        pk = _literal(self._kw(node, "primary_key")) is True
        nullable = _literal(nullable_node) if nullable_node is not None else not pk
        enums = [e for a in ast.walk(node) if (e := self._enum_name(a, env))]
        return {
            "name": _norm(name),
            "nullable": nullable if isinstance(nullable, bool) else None,
            "server_default": self._kw(node, "server_default") is not None,
            "enums": enums,
            "indexed": _literal(self._kw(node, "index")) is True,
            "unique": _literal(self._kw(node, "unique")) is True,
        }

    def _call(self, call: ast.Call, env: _Env) -> Generator[Op, None, bool]:
        """Yield the ops of one call; return True when its arguments need no further walk."""
        func = call.func
        line = call.lineno
        src = _source(call)
        # Module-level helper: inline it with its parameters bound to the call's literal values.
        if isinstance(func, ast.Name) and func.id in self.functions:
            if func.id in ("upgrade", "downgrade") or env.depth >= _MAX_HELPER_DEPTH:
                return False
            helper = self.functions[func.id]
            params = [a.arg for a in helper.args.args]
            consts = dict(self.constants)
            batch: dict[str, str] = {}
            for param, given in zip(params, call.args, strict=False):
                val = self._value(given, env)
                if val is not None:
                    consts[param] = val
                if isinstance(given, ast.Name) and given.id in env.batch:
                    batch[param] = env.batch[given.id]
            for kw in call.keywords:
                if kw.arg:
                    val = self._value(kw.value, env)
                    if val is not None:
                        consts[kw.arg] = val
            sub = _Env(consts, batch, dict(env.enums), env.depth + 1)
            yield from self._stmts(helper.body, sub)
            return False
        if not isinstance(func, ast.Attribute):
            return False
        method = func.attr
        receiver = func.value
        batch_table: str | None = None
        if isinstance(receiver, ast.Name) and receiver.id in env.batch:
            batch_table = env.batch[receiver.id]
        # `ENUM(..., name="x").create(bind)` / `status_enum.drop(bind)`
        if method in ("create", "drop"):
            enum = self._enum_name(receiver, env)
            if enum is None and isinstance(receiver, ast.Name):
                enum = env.enums.get(receiver.id)
            if enum:
                yield Op(
                    CREATE_ENUM if method == "create" else DROP_ENUM,
                    name=enum,
                    source=src,
                    line=line,
                )
                return True
        if method in ("execute", "exec_driver_sql"):
            sql = self._str(call.args[0], env) if call.args else None
            if sql is None and call.args:
                # `op.execute(my_table.delete())`, `op.execute(sa.update(t)...)`: core constructs
                yield from self._core_statement(call.args[0], env, src, line)
                return False
            if sql is not None:
                yield from parse_sql(sql, line)
            return True
        if method == "get_bind":
            yield Op(NEEDS_ONLINE, source=src, line=line)
            return False
        is_op = batch_table is not None or (isinstance(receiver, ast.Name) and receiver.id == "op")
        if not is_op:
            return False
        # Batch operations take no table argument: shift positional arguments by one.
        shift = 0 if batch_table is not None else 1

        def table_arg(index: int = 0, name: str = "table_name") -> str | None:
            if batch_table is not None:
                return batch_table
            return _norm(self._str(self._arg(call, index, name), env))

        def arg(index: int, name: str) -> ast.expr | None:
            return self._arg(call, index - 1 + shift, name)

        if method == "create_table":
            table = table_arg()
            yield Op(CREATE_TABLE, table=table, source=src, line=line)
            for col_node in call.args[1:]:
                col = self._column(col_node, env)
                if col:
                    for enum in col["enums"]:
                        yield Op(
                            CREATE_ENUM,
                            table=table,
                            column=col["name"],
                            name=enum,
                            source=src,
                            line=line,
                        )
            if _literal(self._kw(call, "postgresql_concurrently")) is True:
                yield Op(NON_TRANSACTIONAL, table=table, source=src, line=line)
            return True
        if method == "drop_table":
            yield Op(DROP_TABLE, table=table_arg(), source=src, line=line)
            return True
        if method == "rename_table":
            old = _norm(self._str(self._arg(call, 0, "old_table_name"), env))
            new = _norm(self._str(self._arg(call, 1, "new_table_name"), env))
            yield Op(RENAME_TABLE, table=old, name=new, source=src, line=line)
            return True
        if method == "add_column":
            table = table_arg()
            col = self._column(arg(1, "column") or ast.Constant(None), env)
            if col:
                yield Op(
                    ADD_COLUMN,
                    table=table,
                    column=col["name"],
                    nullable=col["nullable"],
                    server_default=col["server_default"],
                    source=src,
                    line=line,
                )
                for enum in col["enums"]:
                    yield Op(
                        CREATE_ENUM,
                        table=table,
                        column=col["name"],
                        name=enum,
                        source=src,
                        line=line,
                    )
            return True
        if method == "drop_column":
            yield Op(
                DROP_COLUMN,
                table=table_arg(),
                column=_norm(self._str(arg(1, "column_name"), env)),
                source=src,
                line=line,
            )
            return True
        if method == "alter_column":
            table = table_arg()
            column = _norm(self._str(arg(1, "column_name"), env))
            new_name = self._kw(call, "new_column_name")
            if new_name is not None:
                yield Op(
                    RENAME_COLUMN,
                    table=table,
                    column=column,
                    name=_norm(self._str(new_name, env)),
                    source=src,
                    line=line,
                )
            type_ = self._kw(call, "type_")
            if type_ is not None and not is_widening(self._kw(call, "existing_type"), type_):
                yield Op(ALTER_TYPE, table=table, column=column, source=src, line=line)
                for enum in (e for a in ast.walk(type_) if (e := self._enum_name(a, env))):
                    yield Op(
                        CREATE_ENUM, table=table, column=column, name=enum, source=src, line=line
                    )
            nullable = self._kw(call, "nullable")
            if nullable is not None and isinstance(_literal(nullable), bool):
                yield Op(
                    ALTER_NULLABLE,
                    table=table,
                    column=column,
                    nullable=bool(_literal(nullable)),
                    server_default=self._kw(call, "server_default") is not None
                    or self._kw(call, "existing_server_default") is not None,
                    source=src,
                    line=line,
                )
            return True
        if method == "create_index":
            name = _norm(self._str(self._arg(call, 0, "index_name"), env))
            table = batch_table or _norm(self._str(self._arg(call, 1, "table_name"), env))
            cols = self._names(arg(2, "columns"), env)
            yield Op(CREATE_INDEX, table=table, name=name, columns=cols, source=src, line=line)
            if _literal(self._kw(call, "postgresql_concurrently")) is True:
                yield Op(NON_TRANSACTIONAL, table=table, name=name, source=src, line=line)
            return True
        if method == "drop_index":
            name = _norm(self._str(self._arg(call, 0, "index_name"), env))
            table = batch_table or _norm(self._str(self._arg(call, 1, "table_name"), env))
            yield Op(DROP_INDEX, table=table, name=name, source=src, line=line)
            if _literal(self._kw(call, "postgresql_concurrently")) is True:
                yield Op(NON_TRANSACTIONAL, table=table, name=name, source=src, line=line)
            return True
        if method in (
            "create_unique_constraint",
            "create_foreign_key",
            "create_check_constraint",
            "create_primary_key",
            "create_exclude_constraint",
        ):
            name = _norm(self._str(self._arg(call, 0, "constraint_name"), env))
            table = batch_table or _norm(self._str(self._arg(call, 1, _TABLE_KW[method]), env))
            if method == "create_foreign_key":
                cols = self._names(arg(3, "local_cols"), env)
            elif method == "create_check_constraint":
                cols = ()
            else:
                cols = self._names(arg(2, "columns"), env)
            yield Op(CREATE_CONSTRAINT, table=table, name=name, columns=cols, source=src, line=line)
            return True
        if method == "drop_constraint":
            name = _norm(self._str(self._arg(call, 0, "constraint_name"), env))
            table = batch_table or _norm(self._str(self._arg(call, 1, "table_name"), env))
            yield Op(DROP_CONSTRAINT, table=table, name=name, source=src, line=line)
            return True
        return False

    def _core_statement(self, node: ast.AST, env: _Env, src: str, line: int) -> Iterator[Op]:
        """``t.delete()``, ``sa.delete(t)``, ``t.update().values(...)`` passed to execute."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and _call_name(sub) in ("delete", "update"):
                kind = DELETE_ROWS if _call_name(sub) == "delete" else UPDATE_ROWS
                table: str | None = None
                func = sub.func
                target = (
                    sub.args[0]
                    if sub.args
                    else (func.value if isinstance(func, ast.Attribute) else None)
                )
                if isinstance(target, ast.Call) and _call_name(target) in ("table", "Table"):
                    table = _norm(self._str(target.args[0], env)) if target.args else None
                elif isinstance(target, ast.Name):
                    table = _norm(str(env.constants.get(target.id) or target.id))
                yield Op(kind, table=table, source=src, line=line)
                return


_TABLE_KW = {
    "create_unique_constraint": "table_name",
    "create_foreign_key": "source_table",
    "create_check_constraint": "table_name",
    "create_primary_key": "table_name",
    "create_exclude_constraint": "table_name",
}


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------
# SQL strings

_ID = r'((?:[`"\[]?[\w$]+[`"\]]?\.)?[`"\[]?[\w$]+[`"\]]?)'
_SQL_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_ID}", re.I), DROP_TABLE),
    (
        re.compile(rf"^DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?{_ID}", re.I),
        DROP_INDEX,
    ),
    (re.compile(rf"^DROP\s+TYPE\s+(?:IF\s+EXISTS\s+)?{_ID}", re.I), DROP_ENUM),
    (re.compile(rf"^CREATE\s+TYPE\s+{_ID}\s+AS\s+ENUM", re.I), CREATE_ENUM),
    (
        re.compile(
            rf"^CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_ID}", re.I
        ),
        CREATE_TABLE,
    ),
    (
        re.compile(
            rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
            rf"{_ID}\s+ON\s+(?:ONLY\s+)?{_ID}",
            re.I,
        ),
        CREATE_INDEX,
    ),
    (re.compile(rf"^DELETE\s+FROM\s+{_ID}", re.I), DELETE_ROWS),
    (re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?{_ID}", re.I), DELETE_ROWS),
    (re.compile(rf"^RENAME\s+TABLE\s+{_ID}\s+TO\s+{_ID}", re.I), RENAME_TABLE),
]
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_ID}\s+(.*)$", re.I | re.S)
_UPDATE = re.compile(rf"^UPDATE\s+(?:ONLY\s+)?{_ID}\s+(?:AS\s+\w+\s+)?SET\s+(.*)$", re.I | re.S)
_NON_TX = re.compile(
    r"\bCONCURRENTLY\b|^\s*VACUUM\b|\bALTER\s+TYPE\b.*\bADD\s+VALUE\b", re.I | re.S
)


def _split_sql(sql: str) -> list[str]:
    """Split on ``;`` outside quotes, dropping ``--`` comments."""
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
    return [" ".join(s.split()) for s in out if s.strip()]


def _alter_actions(table: str | None, rest: str, src: str, line: int) -> Iterator[Op]:
    for action in re.split(r",(?![^()]*\))", rest):
        a = action.strip()
        m = re.match(rf"^RENAME\s+TO\s+{_ID}", a, re.I)
        if m:
            yield Op(RENAME_TABLE, table=table, name=_norm(m.group(1)), source=src, line=line)
            continue
        m = re.match(rf"^RENAME\s+(?:COLUMN\s+)?{_ID}\s+TO\s+{_ID}", a, re.I)
        if m:
            yield Op(
                RENAME_COLUMN,
                table=table,
                column=_norm(m.group(1)),
                name=_norm(m.group(2)),
                source=src,
                line=line,
            )
            continue
        m = re.match(rf"^DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?{_ID}", a, re.I)
        if m:
            yield Op(DROP_CONSTRAINT, table=table, name=_norm(m.group(1)), source=src, line=line)
            continue
        m = re.match(rf"^(?:DROP\s+(?:INDEX|KEY))\s+{_ID}", a, re.I)
        if m:
            yield Op(DROP_INDEX, table=table, name=_norm(m.group(1)), source=src, line=line)
            continue
        m = re.match(rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_ID}", a, re.I)
        if m:
            yield Op(DROP_COLUMN, table=table, column=_norm(m.group(1)), source=src, line=line)
            continue
        m = re.match(rf"^ADD\s+CONSTRAINT\s+{_ID}", a, re.I)
        if m:
            yield Op(CREATE_CONSTRAINT, table=table, name=_norm(m.group(1)), source=src, line=line)
            continue
        m = re.match(rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{_ID}\s*(.*)$", a, re.I)
        if m and m.group(1).upper() not in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "INDEX"):
            spec = m.group(2)
            yield Op(
                ADD_COLUMN,
                table=table,
                column=_norm(m.group(1)),
                nullable=not re.search(r"\bNOT\s+NULL\b", spec, re.I),
                server_default=bool(re.search(r"\bDEFAULT\b", spec, re.I)),
                source=src,
                line=line,
            )
            continue
        m = re.match(
            rf"^(?:ALTER\s+(?:COLUMN\s+)?{_ID}\s+(?:SET\s+DATA\s+)?TYPE\b|MODIFY\s+"
            rf"(?:COLUMN\s+)?{_ID}|CHANGE\s+(?:COLUMN\s+)?{_ID})",
            a,
            re.I,
        )
        if m:
            col = _norm(m.group(1) or m.group(2) or m.group(3))
            yield Op(ALTER_TYPE, table=table, column=col, source=src, line=line)


_STRINGS = frozenset({"string", "varchar", "unicode", "nvarchar"})
_TEXTS = frozenset({"text", "unicodetext"})
_INT_WIDTH = {"smallinteger": 1, "integer": 2, "biginteger": 3}


def _type_signature(node: ast.expr | None) -> tuple[str, tuple[int, ...]] | None:
    """``sa.String(50)`` → ``("string", (50,))``; None when it is not a literal type expression."""
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
        values = [*call.args, *(kw.value for kw in call.keywords if kw.arg in ("length",))]
        for value in values:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, int)):
                return None
            args.append(value.value)
    return name.lower(), tuple(args)


def is_widening(existing: ast.expr | None, new: ast.expr) -> bool:
    """True when ``alter_column(type_=new, existing_type=existing)`` only widens the column.

    OLD's code keeps working on a wider column (``String(50)`` → ``String(100)`` or ``Text``,
    ``Integer`` → ``BigInteger``), so such a change is no ``type-changed`` reason. Without a literal
    ``existing_type`` nothing can be proven and the change counts.
    """
    old_sig, new_sig = _type_signature(existing), _type_signature(new)
    if old_sig is None or new_sig is None:
        return False
    (old_name, old_args), (new_name, new_args) = old_sig, new_sig
    if old_name in _STRINGS and new_name in _STRINGS | _TEXTS:
        if new_name in _TEXTS or not new_args:
            return True
        return bool(old_args) and new_args[0] >= old_args[0] and old_name == new_name
    if old_name in _INT_WIDTH and new_name in _INT_WIDTH:
        return _INT_WIDTH[new_name] >= _INT_WIDTH[old_name]
    return False


def parse_sql(sql: str, line: int = 0) -> Iterator[Op]:
    """Ops of raw SQL: DROP, ALTER ... RENAME/DROP/ADD, DELETE, TRUNCATE, UPDATE, CREATE."""
    for stmt in _split_sql(sql):
        src = stmt if len(stmt) <= 200 else stmt[:197] + "..."
        if _NON_TX.search(stmt):
            yield Op(NON_TRANSACTIONAL, source=src, line=line)
        m = _ALTER.match(stmt)
        if m:
            yield from _alter_actions(_norm(m.group(1)), m.group(2), src, line)
            continue
        m = _UPDATE.match(stmt)
        if m:
            table = _norm(m.group(1))
            sets = re.split(r"\bWHERE\b|\bFROM\b|\bRETURNING\b", m.group(2), flags=re.I)[0]
            cols = re.findall(rf"(?:^|,)\s*{_ID}\s*=", sets)
            for col in cols or [None]:
                yield Op(UPDATE_ROWS, table=table, column=_norm(col), source=src, line=line)
            continue
        for pattern, kind in _SQL_PATTERNS:
            m = pattern.match(stmt)
            if not m:
                continue
            if kind in (DROP_TABLE, CREATE_TABLE, DELETE_ROWS):
                yield Op(kind, table=_norm(m.group(1)), source=src, line=line)
            elif kind == RENAME_TABLE:
                yield Op(
                    kind, table=_norm(m.group(1)), name=_norm(m.group(2)), source=src, line=line
                )
            elif kind == CREATE_INDEX:
                yield Op(
                    kind, table=_norm(m.group(2)), name=_norm(m.group(1)), source=src, line=line
                )
            else:
                yield Op(kind, name=_norm(m.group(1)), source=src, line=line)
            if kind == DELETE_ROWS and stmt.upper().startswith("TRUNCATE"):
                rest = stmt[m.end() :]
                for extra in re.findall(rf",\s*{_ID}", rest):
                    yield Op(DELETE_ROWS, table=_norm(extra), source=src, line=line)
            break
