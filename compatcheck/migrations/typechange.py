"""Which column type changes OLD's code survives (widenings), for every source alike.

A type is read as a *signature*: its lower-cased name and its integer arguments
(``VARCHAR(50)`` → ``("varchar", (50,))``, SQLAlchemy's ``sa.String(50)`` →
``("string", (50,))``). The Alembic source builds signatures from Python type expressions, the SQL
reader (:mod:`~compatcheck.migrations.sqlstatic`) from parsed SQL types; both ask
:func:`widens`, so that one rule decides for every framework.
"""

from __future__ import annotations

#: A type's lower-cased name and its integer arguments (length, precision, scale).
Signature = tuple[str, tuple[int, ...]]

#: Bounded character types: a larger (or no) length widens them.
STRINGS = frozenset({"string", "varchar", "unicode", "nvarchar"})
#: Unbounded text types by capacity (MySQL's TINYTEXT < TEXT < MEDIUMTEXT < LONGTEXT; elsewhere
#: one TEXT).
TEXT_RANK = {
    "tinytext": 0,
    "text": 1,
    "unicodetext": 1,
    "clob": 1,
    "nclob": 1,
    "mediumtext": 2,
    "longtext": 3,
}
#: MySQL's binary large objects by capacity.
BLOB_RANK = {"tinyblob": 0, "blob": 1, "mediumblob": 2, "longblob": 3}
#: Integer types by width (PostgreSQL's serials are integers with a default).
INT_WIDTH = {
    "tinyint": 0,
    "smallinteger": 1,
    "smallint": 1,
    "smallserial": 1,
    "mediumint": 2,
    "integer": 3,
    "int": 3,
    "serial": 3,
    "biginteger": 4,
    "bigint": 4,
    "bigserial": 4,
}
NUMERICS = frozenset({"numeric", "decimal"})


def widens(old: Signature | None, new: Signature | None) -> bool:
    """True when a column of type ``old`` changed to ``new`` still holds every value it held and
    accepts every value OLD's code writes (``VARCHAR(50)`` → ``VARCHAR(100)`` or ``TEXT``,
    ``TEXT`` → ``MEDIUMTEXT``, ``INT`` → ``BIGINT``, ``NUMERIC(10, 2)`` → ``NUMERIC(12, 2)``).

    Anything not proven a widening (an unknown old type, another family) is a type change.
    """
    if old is None or new is None:
        return False
    (old_name, old_args), (new_name, new_args) = old, new
    if old_name in STRINGS and new_name in STRINGS | TEXT_RANK.keys():
        if new_name in TEXT_RANK or not new_args:
            return True
        return bool(old_args) and new_args[0] >= old_args[0]
    for rank in (TEXT_RANK, BLOB_RANK, INT_WIDTH):
        if old_name in rank and new_name in rank:
            return rank[new_name] >= rank[old_name]
    if old_name in NUMERICS and new_name in NUMERICS and len(old_args) == len(new_args) == 2:
        (p1, s1), (p2, s2) = old_args, new_args
        return s2 >= s1 and p2 - s2 >= p1 - s1
    return False
