"""The schema comparison of the round trip (compatcheck/migrations/schema.py) on a real
PostgreSQL: a primary key whose index kept the name of the table it was made on is a difference
(sematic's rebuild undone by rename leaves ``notes_tmp_pkey``); SQLite, which names no key, is not
told apart by names it does not have."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from compatcheck.migrations import inspect_migrations
from compatcheck.migrations.roundtrip import ELSEWHERE
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


@pytest.mark.postgres
def test_tables_of_another_schema_are_named_not_silently_skipped(
    postgres_url: str, tmp_path: Path
) -> None:
    """goiardi keeps every table in schema `goiardi`: the round trip compares and seeds the
    default schema only, so the coverage must say those tables were not checked (it said
    nothing, and a round trip that compared no table looked complete)."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_schema.up.sql").write_text(
        "CREATE SCHEMA app;\nCREATE TABLE app.items (id INTEGER PRIMARY KEY, name TEXT);\n"
    )
    (folder / "0001_schema.down.sql").write_text("DROP SCHEMA app CASCADE;\n")
    (folder / "0002_note.up.sql").write_text("ALTER TABLE app.items ADD COLUMN note TEXT;\n")
    (folder / "0002_note.down.sql").write_text("ALTER TABLE app.items DROP COLUMN note;\n")
    with scratch_database(postgres_url) as scratch, scratch.engine.connect() as conn:
        conn.exec_driver_sql("CREATE SCHEMA app")
        conn.exec_driver_sql("CREATE TABLE app.items (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE plain (id INTEGER PRIMARY KEY)")
        conn.commit()
        schema = inspect_schema(conn)
    assert set(schema.tables) == {"plain"}
    assert schema.elsewhere == ("app.items",)
    result = inspect_migrations(folder, "1", "2", db_url=postgres_url)
    trip = result.section.roundtrip
    assert trip is not None and trip.status == "completed"
    assert trip.seed_errors == {"app.items": ELSEWHERE}
    (plan,) = [p for p in result.section.plans if p.name == "downgrade"]
    assert "data check partial: seeded 0/1 tables; not seeded: `app.items`" in plan.status
