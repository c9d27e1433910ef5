"""Which `alter_column` type changes OLD's code survives (widening) and which it may not."""

from __future__ import annotations

import ast

import pytest

from compatcheck.migrations.sources.alembic.operations import is_widening


def _expr(text: str) -> ast.expr:
    node = ast.parse(text, mode="eval").body
    assert isinstance(node, ast.expr)
    return node


@pytest.mark.parametrize(
    ("existing", "new", "widening"),
    [
        ("sa.String(50)", "sa.String(100)", True),
        ("sa.String(length=50)", "sa.String(length=100)", True),
        ("sa.String(50)", "sa.Text()", True),
        ("sa.String(50)", "sa.String()", True),
        ("sa.Integer()", "sa.BigInteger()", True),
        ("sa.SmallInteger", "sa.Integer", True),
        ("sa.String(100)", "sa.String(50)", False),
        ("sa.BigInteger()", "sa.Integer()", False),
        ("sa.String(50)", "sa.Integer()", False),
        ("sa.Text()", "sa.String(50)", False),
        ("sa.Numeric(10, 2)", "sa.Numeric(12, 2)", False),
        ("LENGTH_TYPE", "sa.String(100)", False),
        ("sa.String(N)", "sa.String(100)", False),
    ],
)
def test_is_widening(existing: str, new: str, widening: bool) -> None:
    assert is_widening(_expr(existing), _expr(new)) is widening


def test_without_existing_type_nothing_is_proven() -> None:
    assert is_widening(None, _expr("sa.String(100)")) is False
