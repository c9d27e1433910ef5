"""Walk ``upgrade()``/``downgrade()`` as a syntax tree and collect the operations they perform.

Why never import: real projects' migrations import their application, which needs its settings,
secrets and sometimes a database at import time. ``compatcheck migrations --static`` must work on a
checkout in CI with none of that, so every fact here comes from the syntax tree.

What is recognised, in the two functions and in module-level helper functions they call
(arguments bound to their literal values):

- ``op.<operation>(...)`` calls and the same operations on ``with op.batch_alter_table(t) as b``
  aliases, one handler per operation (:mod:`.operations`);
- SQL passed to ``op.execute``/``connection.execute`` as a string, an f-string or ``sa.text(...)``;
- ``sa.Enum(..., name=...)`` types inside ``create_table``/``add_column`` and explicit
  ``ENUM(...).create()``/``.drop()`` calls (PostgreSQL creates a named type for them);
- ``autocommit_block()`` and ``postgresql_concurrently=True`` (non-transactional work).

Conditional work counts (a downgrade that *may* drop a table is destructive): both branches of
an ``if``, loop bodies and every ``try`` clause are read.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from compatcheck.migrations.sources.alembic.operations import (
    OP_HANDLERS,
    RECEIVER_HANDLERS,
    OpCall,
    argument,
    call_name,
    keyword,
    literal,
)
from compatcheck.migrations.steps import NON_TRANSACTIONAL, Code, Op, Unknown, identifier, net_ops

#: How deep helper functions are inlined (a helper calling a helper...); guards recursion.
MAX_HELPER_DEPTH = 4
#: Longest literal a ``for`` loop is unrolled over (longer: its body is read once, as a branch).
MAX_UNROLL = 200


@dataclass
class Scope:
    """What is known while one function body is read: names bound to literal values, batch
    aliases (``b`` → its table), names bound to enum types, and the helper inlining depth."""

    constants: dict[str, Any]
    batch: dict[str, str] = field(default_factory=dict)
    enums: dict[str, str] = field(default_factory=dict)
    depth: int = 0
    #: A helper's parameters given no literal value: a name, not a table called that.
    unresolved: frozenset[str] = frozenset()


def _is_trivial(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


class Analyser:
    """Reads the functions of one revision file and yields :class:`Op` values in source order."""

    def __init__(self, functions: dict[str, ast.FunctionDef], constants: dict[str, Any]) -> None:
        self.functions = functions
        self.constants = constants
        #: SQL statements (``op.execute``) the function being read runs and the SQL reader
        #: could not read or judge: its ``Code.unknown``.
        self.unknown: list[Unknown] = []

    def function(self, name: str) -> Code | None:
        """What ``name`` (``upgrade``/``downgrade``) does; None when the file has no such
        function."""
        fn = self.functions.get(name)
        if fn is None:
            return None
        body = fn.body
        self.unknown = []
        ops = net_ops(tuple(self.statements(body, Scope(dict(self.constants)))))
        return Code(
            empty=all(_is_trivial(s) for s in body),
            # A ``raise`` at the top level of the body: every call fails.
            raises=any(isinstance(s, ast.Raise) for s in body),
            ops=ops,
            line=fn.lineno,
            unknown=tuple(self.unknown),
        )

    # -- values -------------------------------------------------------------------------------

    def value(self, node: ast.AST | None, scope: Scope) -> Any:
        """A literal value, resolving names bound to constants; None when unknown."""
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return scope.constants.get(node.id)
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append(str(part.value))
                elif isinstance(part, ast.FormattedValue):
                    v = self.value(part.value, scope)
                    parts.append(str(v) if v is not None else "?")
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left, scope), self.value(node.right, scope)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            return None
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(e, scope) for e in node.elts]
        if isinstance(node, ast.Call) and call_name(node) in ("text", "literal_column"):
            return self.value(node.args[0], scope) if node.args else None
        return literal(node) if isinstance(node, ast.UnaryOp) else None

    def text(self, node: ast.AST | None, scope: Scope) -> str | None:
        """The string value of ``node``, or None."""
        v = self.value(node, scope)
        return v if isinstance(v, str) else None

    def enum_name(self, node: ast.AST, scope: Scope) -> str | None:
        """``sa.Enum(..., name="mood")`` → ``mood`` (unless ``create_type=False``)."""
        if isinstance(node, ast.Call) and call_name(node) in ("Enum", "ENUM"):
            given = keyword(node, "name")
            name = self.text(given, scope) if given is not None else None
            create = keyword(node, "create_type")
            if create is not None and literal(create) is False:
                return None
            return identifier(name)
        return None

    # -- statements ---------------------------------------------------------------------------

    def statements(self, stmts: list[ast.stmt], scope: Scope) -> Iterator[Op]:
        for stmt in stmts:
            handler = _STATEMENTS.get(type(stmt), Analyser._children)
            yield from handler(self, stmt, scope)

    def _skip(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        """A nested function or class: only what is called counts."""
        return iter(())

    def _with(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        assert isinstance(stmt, ast.With)
        for item in stmt.items:
            ctx = item.context_expr
            if isinstance(ctx, ast.Call) and call_name(ctx) == "batch_alter_table":
                table = identifier(self.text(argument(ctx, 0, "table_name"), scope))
                if isinstance(item.optional_vars, ast.Name) and table:
                    scope.batch[item.optional_vars.id] = table
                continue
            if isinstance(ctx, ast.Call) and call_name(ctx) == "autocommit_block":
                yield Op(NON_TRANSACTIONAL, source="autocommit_block()", line=ctx.lineno)
                continue
            yield from self.expression(ctx, scope)
        yield from self.statements(stmt.body, scope)

    def _assign(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        assert isinstance(stmt, (ast.Assign, ast.AnnAssign))
        value = stmt.value
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if value is None:
            return
        for target in targets:
            if isinstance(target, ast.Name):
                bound = self.value(value, scope)
                if isinstance(value, ast.Call) and call_name(value) in ("table", "Table"):
                    bound = self.text(value.args[0] if value.args else None, scope)
                if bound is not None:
                    scope.constants[target.id] = bound
                enum = self.enum_name(value, scope)
                if enum:
                    scope.enums[target.id] = enum
        yield from self.expression(value, scope)

    def _branches(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        assert isinstance(stmt, (ast.If, ast.For, ast.While, ast.AsyncFor))
        if isinstance(stmt, ast.If):
            yield from self.expression(stmt.test, scope)
        yield from self.statements(stmt.body, scope)
        yield from self.statements(stmt.orelse, scope)

    def _for(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        """A loop over a literal (inline, or a name bound to a list, tuple or dict, ``.items()``
        included) is unrolled: its body is read once per item with the loop names bound, so
        ``for name, table in (("ix_a", "a"), ...): op.drop_index(name, table_name=table)``
        drops each index by name. Any other loop's body is read once, as a branch."""
        assert isinstance(stmt, (ast.For, ast.AsyncFor))
        items = self._iterated(stmt.iter, scope)
        if items is None or not 0 < len(items) <= MAX_UNROLL:
            yield from self._branches(stmt, scope)
            return
        for item in items:
            inner = Scope(
                dict(scope.constants), scope.batch, scope.enums, scope.depth, scope.unresolved
            )
            if not _bind(stmt.target, item, inner.constants):
                yield from self._branches(stmt, scope)
                return
            yield from self.statements(stmt.body, inner)
        yield from self.statements(stmt.orelse, scope)

    def _iterated(self, node: ast.expr, scope: Scope) -> list[Any] | None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("items", "keys", "values")
            and not node.args
        ):
            mapping = self._iterated_value(node.func.value, scope)
            if not isinstance(mapping, dict):
                return None
            if node.func.attr == "items":
                return [[k, v] for k, v in mapping.items()]
            return list(mapping.keys() if node.func.attr == "keys" else mapping.values())
        found = self._iterated_value(node, scope)
        if isinstance(found, dict):
            return list(found)
        return list(found) if isinstance(found, (list, tuple)) else None

    def _iterated_value(self, node: ast.expr, scope: Scope) -> Any:
        if isinstance(node, ast.Name):
            return scope.constants.get(node.id)
        if isinstance(node, ast.Dict):
            found = literal(node)
            return found if isinstance(found, dict) else None
        return self.value(node, scope)

    def _try(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        assert isinstance(stmt, ast.Try)
        yield from self.statements(stmt.body, scope)
        for handler in stmt.handlers:
            yield from self.statements(handler.body, scope)
        yield from self.statements(stmt.orelse, scope)
        yield from self.statements(stmt.finalbody, scope)

    def _children(self, stmt: ast.stmt, scope: Scope) -> Iterator[Op]:
        for node in ast.iter_child_nodes(stmt):
            if isinstance(node, ast.expr):
                yield from self.expression(node, scope)

    # -- calls --------------------------------------------------------------------------------

    def expression(self, node: ast.expr, scope: Scope) -> Iterator[Op]:
        """Every call in an expression, outermost first (``op.execute(sa.text(...))`` once)."""
        if isinstance(node, ast.Call):
            handled = yield from self.call(node, scope)
            if handled:
                return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                yield from self.expression(child, scope)

    def call(self, node: ast.Call, scope: Scope) -> Generator[Op, None, bool]:
        """Yield the ops of one call; return True when its arguments need no further walk."""
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.functions:
            yield from self._inline(node, self.functions[func.id], scope)
            return False
        if not isinstance(func, ast.Attribute):
            return False
        receiver = func.value
        batch_table = scope.batch.get(receiver.id) if isinstance(receiver, ast.Name) else None
        call = OpCall(self, node, scope, batch_table)
        if func.attr in RECEIVER_HANDLERS:
            return (yield from RECEIVER_HANDLERS[func.attr](call))
        is_op = batch_table is not None or (isinstance(receiver, ast.Name) and receiver.id == "op")
        handler = OP_HANDLERS.get(func.attr)
        if not is_op or handler is None:
            return False
        yield from handler(call)
        return True

    def _inline(self, node: ast.Call, helper: ast.FunctionDef, scope: Scope) -> Iterator[Op]:
        """A module-level helper, read with its parameters bound to the call's literal values
        (and to the batch a batch alias stands for)."""
        if helper.name in ("upgrade", "downgrade") or scope.depth >= MAX_HELPER_DEPTH:
            return
        params = [a.arg for a in helper.args.args]
        consts = dict(self.constants)
        batch: dict[str, str] = {}
        for param, given in zip(params, node.args, strict=False):
            val = self.value(given, scope)
            if val is not None:
                consts[param] = val
            if isinstance(given, ast.Name) and given.id in scope.batch:
                batch[param] = scope.batch[given.id]
        for kw in node.keywords:
            if kw.arg:
                val = self.value(kw.value, scope)
                if val is not None:
                    consts[kw.arg] = val
        unresolved = frozenset(p for p in params if p not in consts and p not in batch)
        inner = Scope(consts, batch, dict(scope.enums), scope.depth + 1, unresolved)
        yield from self.statements(helper.body, inner)


_StatementHandler = Callable[[Analyser, ast.stmt, Scope], Iterator[Op]]

#: How each kind of statement is read; anything else has its expressions read.
_STATEMENTS: dict[type[ast.stmt], _StatementHandler] = {
    ast.FunctionDef: Analyser._skip,
    ast.AsyncFunctionDef: Analyser._skip,
    ast.ClassDef: Analyser._skip,
    ast.With: Analyser._with,
    ast.Assign: Analyser._assign,
    ast.AnnAssign: Analyser._assign,
    ast.If: Analyser._branches,
    ast.For: Analyser._for,
    ast.While: Analyser._branches,
    ast.AsyncFor: Analyser._for,
    ast.Try: Analyser._try,
}


def _bind(target: ast.expr, item: Any, constants: dict[str, Any]) -> bool:
    """Bind a loop target (a name, or a tuple of them) to one item; False when it cannot."""
    if isinstance(target, ast.Name):
        if item is not None:
            constants[target.id] = item
        else:
            constants.pop(target.id, None)
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        if not isinstance(item, (list, tuple)) or len(item) != len(target.elts):
            return False
        return all(_bind(t, i, constants) for t, i in zip(target.elts, item, strict=True))
    return False


def read_call(source: str, batch_table: str | None = None) -> list[Op]:
    """The ops of one call written as Python source, e.g. ``op.drop_column('t', 'c')``: one
    handler of :mod:`.operations`, exercised alone. ``batch_table`` reads it as a call on a
    ``batch_alter_table`` alias of that table."""
    node = ast.parse(source, mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        raise ValueError(f"not a method call: {source}")
    scope = Scope({})
    receiver = node.func.value
    if batch_table is not None and isinstance(receiver, ast.Name):
        scope.batch[receiver.id] = batch_table
    return list(Analyser({}, {}).expression(node, scope))
