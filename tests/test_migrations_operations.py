"""Each Alembic operation's handler, alone: exactly the ops one call performs.

Expected values come from Alembic's operation signatures (``alembic/operations/ops.py``:
``create_index(index_name, table_name, columns)``, ``create_foreign_key(constraint_name,
source_table, referent_table, local_cols, remote_cols)``; batch operations take no table).
"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from compatcheck.migrations.sources.alembic.analyser import read_call
from compatcheck.migrations.sources.alembic.operations import OP_HANDLERS, RECEIVER_HANDLERS


def ops(source: str, batch_table: str | None = None) -> list[tuple[Any, ...]]:
    return [
        (o.op, o.table, o.column, o.name, o.nullable, o.server_default, o.columns)
        for o in read_call(source, batch_table)
    ]


CASES: list[tuple[str, str | None, list[tuple[Any, ...]]]] = [
    (
        "op.create_table('T', sa.Column('id', sa.Integer, primary_key=True),"
        " sa.Column('mood', sa.Enum('a', 'b', name='Mood')))",
        None,
        [
            ("create_table", "t", None, None, None, False, ()),
            ("create_enum", "t", "mood", "mood", None, False, ()),
        ],
    ),
    (
        "op.create_table('t', sa.Column('id'), postgresql_concurrently=True)",
        None,
        [
            ("create_table", "t", None, None, None, False, ()),
            ("non_transactional", "t", None, None, None, False, ()),
        ],
    ),
    ('op.drop_table("public.Users")', None, [("drop_table", "users", None, None, None, False, ())]),
    (
        "op.rename_table('a', new_table_name='b')",
        None,
        [("rename_table", "a", None, "b", None, False, ())],
    ),
    (
        "op.add_column('t', sa.Column('c', sa.Integer, nullable=False, server_default='0'))",
        None,
        [("add_column", "t", "c", None, False, True, ())],
    ),
    (
        "b.add_column(sa.Column('c', sa.String(5)))",
        "t",
        [("add_column", "t", "c", None, True, False, ())],
    ),
    (
        "op.add_column('t', sa.Column('id', sa.Integer, primary_key=True))",
        None,
        [("add_column", "t", "id", None, False, False, ())],
    ),
    ("op.add_column('t', column=make_column())", None, []),
    ("op.drop_column('t', 'c')", None, [("drop_column", "t", "c", None, None, False, ())]),
    ("b.drop_column('c')", "t", [("drop_column", "t", "c", None, None, False, ())]),
    (
        "op.alter_column('t', 'c', new_column_name='d', type_=sa.BigInteger(),"
        " existing_type=sa.Integer(), nullable=False)",
        None,
        [
            ("rename_column", "t", "c", "d", None, False, ()),
            ("alter_nullable", "t", "c", None, False, False, ()),
        ],
    ),
    (
        "op.alter_column('t', 'c', type_=sa.String(10), existing_type=sa.String(50))",
        None,
        [("alter_type", "t", "c", None, None, False, ())],
    ),
    (
        "op.alter_column('t', 'c', type_=sa.Enum('x', name='kind'))",
        None,
        [
            ("alter_type", "t", "c", None, None, False, ()),
            ("create_enum", "t", "c", "kind", None, False, ()),
        ],
    ),
    (
        "op.alter_column('t', 'c', nullable=False, existing_server_default='0')",
        None,
        [("alter_nullable", "t", "c", None, False, True, ())],
    ),
    # `existing_*` describe the column as it is: nothing changes.
    (
        "op.alter_column('t', 'c', existing_type=sa.Integer(), existing_nullable=False)",
        None,
        [],
    ),
    (
        "op.create_index('ix', 't', ['A', 'b'])",
        None,
        [("create_index", "t", None, "ix", None, False, ("a", "b"))],
    ),
    (
        "b.create_index('ix', ['a'], unique=True)",
        "t",
        [("create_index", "t", None, "ix", None, False, ("a",))],
    ),
    (
        "op.create_index('ix', 't', ['a'], postgresql_concurrently=True)",
        None,
        [
            ("create_index", "t", None, "ix", None, False, ("a",)),
            ("non_transactional", "t", None, "ix", None, False, ()),
        ],
    ),
    (
        "op.drop_index('ix', table_name='t')",
        None,
        [("drop_index", "t", None, "ix", None, False, ())],
    ),
    (
        "op.create_unique_constraint('uq', 't', ['a', 'b'])",
        None,
        [("create_constraint", "t", None, "uq", None, False, ("a", "b"))],
    ),
    (
        "op.create_foreign_key('fk', 'src', 'dst', ['dst_id'], ['id'])",
        None,
        [("create_constraint", "src", None, "fk", None, False, ("dst_id",))],
    ),
    (
        "b.create_foreign_key('fk', 'dst', ['dst_id'], ['id'])",
        "src",
        [("create_constraint", "src", None, "fk", None, False, ("dst_id",))],
    ),
    (
        "op.create_check_constraint('ck', 't', 'a > 0')",
        None,
        [("create_constraint", "t", None, "ck", None, False, ())],
    ),
    (
        "op.create_primary_key('pk', 't', ['id'])",
        None,
        [("create_constraint", "t", None, "pk", None, False, ("id",))],
    ),
    (
        "op.create_exclude_constraint('ex', 't', where='a > 0')",
        None,
        [("create_constraint", "t", None, "ex", None, False, ())],
    ),
    (
        "op.drop_constraint('uq', 't', type_='unique')",
        None,
        [("drop_constraint", "t", None, "uq", None, False, ())],
    ),
    # Methods recognised on any receiver.
    ("op.execute('DROP TABLE x')", None, [("drop_table", "x", None, None, None, False, ())]),
    (
        "conn.execute(sa.text('DELETE FROM t WHERE a = 1'))",
        None,
        [("delete_rows", "t", None, None, None, False, ())],
    ),
    ("op.execute(orders.delete())", None, [("delete_rows", "orders", None, None, None, False, ())]),
    (
        "op.execute(sa.update(sa.table('t')).values(a=1))",
        None,
        [("update_rows", "t", None, None, None, False, ())],
    ),
    ("op.get_bind()", None, [("needs_online", None, None, None, None, False, ())]),
    (
        "postgresql.ENUM('a', name='mood').create(op.get_bind())",
        None,
        [("create_enum", None, None, "mood", None, False, ())],
    ),
    # No enum type is created for it, so no drop either; the call's arguments are still read.
    (
        "sa.Enum('a', name='mood', create_type=False).drop(op.get_bind())",
        None,
        [("needs_online", None, None, None, None, False, ())],
    ),
    # Not an operation: nothing, whatever it looks like.
    ("helper.drop_table('t')", None, []),
]


@pytest.mark.parametrize(("source", "batch", "expected"), CASES, ids=[c[0][:50] for c in CASES])
def test_one_call(source: str, batch: str | None, expected: list[tuple[Any, ...]]) -> None:
    assert ops(source, batch) == expected


def _method(source: str) -> str:
    node = ast.parse(source, mode="eval").body
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    return node.func.attr


def test_every_handler_is_exercised_alone() -> None:
    called = {_method(c[0]) for c in CASES}
    assert set(OP_HANDLERS) <= called
    assert set(RECEIVER_HANDLERS) - {"exec_driver_sql"} <= called


def test_an_op_names_its_call_and_line() -> None:
    (op,) = read_call("op.drop_column('t', 'c')")
    assert (op.source, op.line) == ("op.drop_column('t', 'c')", 1)
    (long,) = read_call(f"op.execute('DELETE FROM t WHERE a = {'1' * 300}')")
    assert len(long.source) == 200 and long.source.endswith("...")
