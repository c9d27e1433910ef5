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
        # lengths, and a length that is not a literal
        ("sa.String(50)", "sa.String(100)", True),
        ("sa.String(100)", "sa.String(50)", False),
        ("sa.String(length=50)", "sa.String(length=100)", True),
        ("sa.String(50)", "sa.String()", True),
        ("LENGTH_TYPE", "sa.String(100)", False),
        ("sa.String(N)", "sa.String(100)", False),
        # string and text
        ("sa.String(50)", "sa.Text()", True),
        ("sa.Text()", "sa.String(50)", False),
        # integers, and a string made an integer
        ("sa.Integer()", "sa.BigInteger()", True),
        ("sa.BigInteger()", "sa.Integer()", False),
        ("sa.SmallInteger", "sa.Integer", True),
        ("sa.Integer()", "sa.BIGINT()", True),
        ("sa.String(50)", "sa.Integer()", False),
        # Widenings: larger precision, TEXT -> MEDIUMTEXT/LONGTEXT, and every dialect's variant.
        ("sa.Numeric(10, 2)", "sa.Numeric(12, 2)", True),
        ("sa.Numeric(10, 2)", "sa.Numeric(10, 4)", False),  # fewer integer digits
        ("sa.Numeric(12, 2)", "sa.Numeric(10, 2)", False),
        ("sa.Text()", "MEDIUMTEXT()", True),
        ("mysql.MEDIUMTEXT()", "mysql.LONGTEXT()", True),
        ("mysql.LONGTEXT()", "sa.Text()", False),
        ("sa.VARCHAR(255)", "mysql.LONGTEXT", True),
        (
            "sa.String(5000)",
            'sa.Text().with_variant(MEDIUMTEXT, "mysql").with_variant(NVARCHAR(None), "mssql")',
            True,
        ),
        ("sa.String(5000)", 'sa.Text().with_variant(sa.String(100), "mysql")', False),
    ],
)
def test_is_widening(existing: str, new: str, widening: bool) -> None:
    assert is_widening(_expr(existing), _expr(new)) is widening


def test_without_existing_type_nothing_is_proven() -> None:
    assert is_widening(None, _expr("sa.String(100)")) is False
