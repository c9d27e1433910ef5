"""The schema comparison of the round trip (compatcheck/migrations/schema.py) on a real
PostgreSQL: a primary key whose index kept the name of the table it was made on is a difference
(sematic's rebuild undone by rename leaves ``notes_tmp_pkey``); SQLite, which names no key, is not
told apart by names it does not have."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from compatcheck.migrations.schema import diff_schema, inspect_schema
from compatcheck.migrations.scratch import scratch_database


@pytest.mark.postgres
def test_a_primary_key_named_after_another_table_is_a_difference(postgres_url: str) -> None:
    with scratch_database(postgres_url) as scratch, scratch.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        before = inspect_schema(conn)
        # The rebuild and its reverse: the table comes back under its name, its key does not.
        conn.exec_driver_sql("ALTER TABLE notes RENAME TO notes_old")
        conn.exec_driver_sql("CREATE TABLE notes_tmp (id INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("DROP TABLE notes_old")
        conn.exec_driver_sql("ALTER TABLE notes_tmp RENAME TO notes")
        conn.commit()
        after = inspect_schema(conn)
    assert [(d.object, d.change) for d in diff_schema(before, after)] == [
        ("notes primary key", "named notes_pkey -> notes_tmp_pkey")
    ]


def test_sqlite_keys_without_names_are_not_told_apart() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        before = inspect_schema(conn)
        conn.exec_driver_sql("CREATE TABLE notes_tmp (id INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("DROP TABLE notes")
        conn.exec_driver_sql("ALTER TABLE notes_tmp RENAME TO notes")
        after = inspect_schema(conn)
    assert diff_schema(before, after) == []
