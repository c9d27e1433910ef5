"""Each Alembic operation's handler, alone: exactly the ops one call performs.

The cases are data (``fixtures/alembic/operations.yaml``), their expected values written from
Alembic's operation signatures (``alembic/operations/ops.py``: ``create_index(index_name,
table_name, columns)``, ``create_foreign_key(constraint_name, source_table, referent_table,
local_cols, remote_cols)``; batch operations take no table).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.migrations.sources.alembic.analyser import read_call
from compatcheck.migrations.sources.alembic.operations import OP_HANDLERS, RECEIVER_HANDLERS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alembic"


def ops(source: str, batch_table: str | None = None) -> list[list[Any]]:
    return [
        [o.op, o.table, o.column, o.name, o.nullable, o.server_default, list(o.columns)]
        for o in read_call(source, batch_table)
    ]


CASES: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "operations.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["call"][:50] for c in CASES])
def test_one_call(case: dict[str, Any]) -> None:
    assert ops(case["call"], case.get("batch")) == case["ops"]


def _method(source: str) -> str:
    node = ast.parse(source, mode="eval").body
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    return node.func.attr


def test_every_handler_is_exercised_alone() -> None:
    called = {_method(c["call"]) for c in CASES}
    assert set(OP_HANDLERS) <= called
    assert set(RECEIVER_HANDLERS) - {"exec_driver_sql"} <= called


def test_an_op_names_its_call_and_line() -> None:
    (op,) = read_call("op.drop_column('t', 'c')")
    assert (op.source, op.line) == ("op.drop_column('t', 'c')", 1)
    (long,) = read_call(f"op.execute('DELETE FROM t WHERE a = {'1' * 300}')")
    assert len(long.source) == 200 and long.source.endswith("...")


def _function_ops(body: str) -> list[tuple[str, str | None, str | None]]:
    from compatcheck.migrations.sources.alembic.analyser import Analyser

    tree = ast.parse(f"def downgrade():\n{body}")
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    code = Analyser({"downgrade": fn}, {}).function("downgrade")
    assert code is not None
    return [(o.op, o.table, o.column) for o in code.ops]


def test_a_generated_column_dropped_and_added_again_is_no_op() -> None:
    """MLflow's SQLite batch drops the computed `spans.duration_ns` and adds it back to keep the
    column order: nothing is lost. A plain column re-added loses its values."""
    batch = (
        "    with op.batch_alter_table('spans') as b:\n"
        "        b.drop_column('duration_ns')\n"
        "        b.drop_column('dims')\n"
        "        b.add_column(sa.Column('duration_ns', sa.BigInteger(), sa.Computed('a - b')))\n"
    )
    assert _function_ops(batch) == [("drop_column", "spans", "dims")]
    plain = (
        "    op.drop_column('spans', 'note')\n"
        "    op.add_column('spans', sa.Column('note', sa.Text()))\n"
    )
    assert _function_ops(plain) == [
        ("drop_column", "spans", "note"),
        ("add_column", "spans", "note"),
    ]


def test_loops_over_literals_are_unrolled() -> None:
    """`for name, table in ((...), ...)` and `.items()` of a literal dict name each
    object; a helper's parameter without a literal value is unresolved, not a table."""
    body = (
        "    for name, table in (('ix_a', 'a'), ('ix_b', 'b')):\n"
        "        op.drop_index(name, table_name=table)\n"
        "    for table, cols in {'t': ['x', 'y']}.items():\n"
        "        for col in cols:\n"
        "            op.drop_column(table, col)\n"
        "    for n in names_from_app():\n"
        "        op.drop_column('u', n)\n"
    )
    assert _function_ops(body) == [
        ("drop_index", "a", None),
        ("drop_index", "b", None),
        ("drop_column", "t", "x"),
        ("drop_column", "t", "y"),
        ("drop_column", "u", None),
    ]


def test_an_index_dropped_and_created_again_is_no_op() -> None:
    body = (
        "    with op.batch_alter_table('spans') as b:\n"
        "        b.drop_constraint('fk_x', type_='foreignkey')\n"
        "        b.create_foreign_key('fk_x', 'other', ['a'], ['b'], ondelete='CASCADE')\n"
        "        b.drop_index('ix_gone')\n"
    )
    assert _function_ops(body) == [("drop_index", "spans", None)]
