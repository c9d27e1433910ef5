"""The copy of a scratch database at OLD (compatcheck/migrations/template.py) on MariaDB, which
has no copy of its own: a database filled from another's CREATE statements and rows must be
the same database (schema as compatcheck inspects it, rows, the next AUTO_INCREMENT value), and
one holding what cannot be copied faithfully (a view names its database) is refused; triggers
are made again on the copy. And on
PostgreSQL, a database another session holds is not copied, and progress says why."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from compatcheck.errors import UnavailableError
from compatcheck.migrations.schema import diff_schema, inspect_schema
from compatcheck.migrations.scratch import Scratch, scratch_database
from compatcheck.migrations.sources.alembic import AlembicSource
from compatcheck.migrations.sources.alembic.runner import AlembicRunner
from compatcheck.migrations.template import FreshDatabases, mysql_copy
from compatcheck.targets import Workspace

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


@pytest.mark.mysql
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


@pytest.mark.mysql
def test_a_database_with_a_view_is_not_copied(mysql_url: str) -> None:
    view = "CREATE VIEW names AS SELECT name FROM parent"
    with (
        source_and_target(mysql_url, [SCHEMA[0], view]) as (source, target),
        pytest.raises(UnavailableError, match="VIEW names cannot be copied"),
    ):
        mysql_copy(target.url, str(source.url.database))


@pytest.mark.mysql
def test_triggers_are_copied_after_the_rows_and_fire_on_the_copy(mysql_url: str) -> None:
    """mlflow's ``prevent_secrets_aad_mutation`` kind: the copy gets the triggers, in firing
    order, bound to its own tables; copying the rows fires none of them."""
    statements = [
        *SCHEMA[:2],
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTO_INCREMENT, what VARCHAR(40))",
        "CREATE TRIGGER no_rename BEFORE UPDATE ON parent FOR EACH ROW BEGIN "
        "IF NEW.name <> OLD.name THEN SIGNAL SQLSTATE '45000' "
        "SET MESSAGE_TEXT = 'names are forever'; END IF; END",
        "CREATE TRIGGER log_first AFTER INSERT ON parent FOR EACH ROW "
        "INSERT INTO audit (what) VALUES (CONCAT('first ', NEW.name))",
        "CREATE TRIGGER log_second AFTER INSERT ON parent FOR EACH ROW FOLLOWS log_first "
        "INSERT INTO audit (what) VALUES (CONCAT('second ', NEW.name))",
        "INSERT INTO parent (name) VALUES ('a')",
    ]
    with source_and_target(mysql_url, statements) as (source, target):
        mysql_copy(target.url, str(source.url.database))
        with target.engine.connect() as conn:
            # The rows came over once: copying them fired no trigger.
            assert [r[1] for r in rows(conn, "audit")] == ["first a", "second a"]
            conn.exec_driver_sql("INSERT INTO parent (name) VALUES ('b')")
            assert [r[1] for r in rows(conn, "audit")][2:] == ["first b", "second b"]
            with pytest.raises(sa.exc.OperationalError, match="names are forever"):
                conn.exec_driver_sql("UPDATE parent SET name = 'z' WHERE name = 'a'")
            conn.rollback()
        with source.engine.connect() as conn:  # the source's tables saw none of that
            assert [r[1] for r in rows(conn, "audit")] == ["first a", "second a"]


@pytest.mark.postgres
def test_no_copy_while_another_session_is_on_the_database(postgres_url: str) -> None:
    """``CREATE DATABASE ... TEMPLATE`` wants the source to itself: with a session that is not
    compatcheck's on it (an env.py's own pool), no template is taken, and progress says so
    rather than nothing."""
    clean = Path(__file__).parent.parent / "fixtures" / "alembic" / "clean_reversible"
    said: list[str] = []
    with (
        Workspace() as ws,
        scratch_database(postgres_url, workspace=ws) as scratch,
        scratch.engine.connect() as conn,
        sa.create_engine(scratch.url, poolclass=NullPool).connect() as other,
    ):
        other.exec_driver_sql("SELECT 1")
        runner = AlembicRunner(clean, scratch.url.render_as_string(hide_password=False), conn)
        assert runner.upgrade("0001_users") is None
        fresh = FreshDatabases(postgres_url, ws, "0001_users", said.append)
        fresh.snapshot(scratch, conn, runner)
        assert fresh.template is None
    assert said == [
        "no copy of the database at OLD (1 session(s) other than compatcheck's are on it "
        "(env.py's own connections?)): fresh ones are built"
    ]


@pytest.mark.postgres
def test_scratch_databases_and_their_copies_commit_without_waiting_for_the_disk(
    postgres_url: str,
) -> None:
    """Every session on a scratch database (compatcheck's, the helper's, the starting-schema
    command's) gets ``synchronous_commit = off`` from the database itself; so does a copy."""
    clean = Path(__file__).parent.parent / "fixtures" / "alembic" / "clean_reversible"
    with (
        Workspace() as ws,
        scratch_database(postgres_url, workspace=ws) as scratch,
        scratch.engine.connect() as conn,
    ):
        runner = AlembicRunner(clean, scratch.url.render_as_string(hide_password=False), conn)
        assert runner.upgrade("0001_users") is None
        fresh = FreshDatabases(postgres_url, ws, "0001_users", lambda _: None)
        fresh.snapshot(scratch, conn, runner)
        runner.close()
        with sa.create_engine(scratch.url, poolclass=NullPool).connect() as other:
            assert other.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        with fresh.open(AlembicSource(clean)) as copy:
            assert copy.conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
