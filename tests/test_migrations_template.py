"""The copy of a scratch database at OLD (compatcheck/migrations/template.py) on MariaDB, which
has no copy of its own: a database filled from another's CREATE statements and rows must be
the same database (schema as compatcheck inspects it, rows, the next AUTO_INCREMENT value), and
one holding what cannot be copied faithfully (a view names its database) is refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from compatcheck.errors import UnavailableError
from compatcheck.migrations.schema import diff_schema, inspect_schema
from compatcheck.migrations.scratch import Scratch, scratch_database
from compatcheck.migrations.template import mysql_copy
from compatcheck.targets import Workspace

pytestmark = pytest.mark.mysql

SCHEMA = [
    "CREATE TABLE parent (id INTEGER PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL "
    "DEFAULT '100%', UNIQUE KEY uq_name (name))",
    "CREATE TABLE child (id INTEGER PRIMARY KEY AUTO_INCREMENT, parent_id INTEGER NOT NULL, "
    "qty INTEGER NOT NULL, twice INTEGER AS (qty * 2) PERSISTENT, "
    "CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)",
    "CREATE INDEX ix_child_qty ON child (qty)",
    "INSERT INTO parent (name) VALUES ('a'), ('b'), ('c')",
    "INSERT INTO child (parent_id, qty) VALUES (1, 5), (3, 7)",
]


def rows(conn: sa.Connection, table: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")]


@contextlib.contextmanager
def source_and_target(url: str, statements: list[str]) -> Iterator[tuple[Scratch, Scratch]]:
    """Two scratch databases on the server: ``statements`` run in the first, the second empty."""
    with (
        Workspace() as ws,
        scratch_database(url, workspace=ws) as source,
        scratch_database(url, workspace=ws) as target,
    ):
        with source.engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.replace("%", "%%"))  # the driver formats it
            conn.commit()
        yield source, target


def test_a_copy_is_the_same_database(mysql_url: str) -> None:
    with source_and_target(mysql_url, SCHEMA) as (source, target):
        with source.engine.connect() as conn:
            before = inspect_schema(conn, ())
            want = {t: rows(conn, t) for t in ("parent", "child")}
        mysql_copy(target.url, str(source.url.database))
        with target.engine.connect() as conn:
            after = inspect_schema(conn, ())
            assert list(diff_schema(before, after)) == []  # as the round trip compares them
            assert set(after.tables) == {"parent", "child"}
            assert after.tables["child"] == before.tables["child"]
            assert {t: rows(conn, t) for t in ("parent", "child")} == want
            # The copy's counters go on where the source's were; its foreign key holds.
            conn.exec_driver_sql("INSERT INTO parent (name) VALUES ('d')")
            assert conn.exec_driver_sql("SELECT max(id) FROM parent").scalar() == 4
            with pytest.raises(sa.exc.IntegrityError):
                conn.exec_driver_sql("INSERT INTO child (parent_id, qty) VALUES (99, 1)")


def test_a_database_with_a_view_is_not_copied(mysql_url: str) -> None:
    view = "CREATE VIEW names AS SELECT name FROM parent"
    with (
        source_and_target(mysql_url, [SCHEMA[0], view]) as (source, target),
        pytest.raises(UnavailableError, match="VIEW names cannot be copied"),
    ):
        mysql_copy(target.url, str(source.url.database))
