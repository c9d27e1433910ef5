"""The schema comparison of the round trip (compatcheck/migrations/schema.py) on a real
PostgreSQL: a primary key whose index kept the name of the table it was made on is a difference
(sematic's rebuild undone by rename leaves ``notes_tmp_pkey``); SQLite, which names no key, is not
told apart by names it does not have."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from compatcheck.migrations import inspect_migrations
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
def test_tables_of_another_schema_are_compared_seeded_and_blamed(
    postgres_url: str, tmp_path: Path
) -> None:
    """goiardi keeps every table in schema `goiardi`: the round trip reflects, seeds and checks
    them as `schema.table` (before, it compared no table at all and looked complete), and what
    it sees there is blamed on the step that names the table bare or qualified."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_schema.up.sql").write_text(
        "CREATE SCHEMA app;\nCREATE TABLE app.items (id INTEGER PRIMARY KEY, name TEXT);\n"
        "CREATE TABLE app.tags (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES app.items);\n"
    )
    (folder / "0001_schema.down.sql").write_text("DROP SCHEMA app CASCADE;\n")
    (folder / "0002_note.up.sql").write_text("ALTER TABLE app.items ADD COLUMN note TEXT;\n")
    (folder / "0002_note.down.sql").write_text(
        "ALTER TABLE app.items DROP COLUMN note;\nUPDATE app.items SET name = NULL;\n"
    )
    # A later step elsewhere: what nothing names falls to NEW's head (3), so the blame is seen.
    (folder / "0003_other.up.sql").write_text("CREATE TABLE other (id INTEGER PRIMARY KEY);\n")
    (folder / "0003_other.down.sql").write_text("DROP TABLE other;\n")
    with scratch_database(postgres_url) as scratch, scratch.engine.connect() as conn:
        conn.exec_driver_sql("CREATE SCHEMA app")
        conn.exec_driver_sql("CREATE TABLE app.items (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE plain (id INTEGER PRIMARY KEY)")
        conn.commit()
        schema = inspect_schema(conn)
    assert set(schema.tables) == {"plain", "app.items"}
    assert schema.homes == {"app.items": ("app", "items")}
    result = inspect_migrations(folder, "1", "3", db_url=postgres_url)
    trip = result.section.roundtrip
    assert trip is not None and trip.status == "completed"
    assert dict(trip.seeded) == {"app.items": 3, "app.tags": 3}  # the key's order kept
    assert trip.seed_errors == {}
    assert dict(trip.old_data_lost) == {"app.items.name": 3}
    assert dict(trip.new_data_removed) == {"app.items.note": 3, "other": 2}
    lost = [f for f in result.findings if f.kind == "migrations/data-lost"]
    assert [f.subject for f in lost] == ["2"]


@pytest.mark.postgres
def test_a_schema_holding_only_an_extensions_tables_is_left_alone(postgres_url: str) -> None:
    """pg_cron's `cron.job`, PostGIS's `topology`: the extension's own rows, not the
    application's: not seeded (rows in `cron.job` would be jobs), not compared."""
    with scratch_database(postgres_url) as scratch, scratch.engine.connect() as conn:
        conn.exec_driver_sql("CREATE SCHEMA ext")
        conn.exec_driver_sql("CREATE EXTENSION hstore SCHEMA ext")
        conn.exec_driver_sql("CREATE TABLE ext.jobs (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("ALTER EXTENSION hstore ADD TABLE ext.jobs")  # as an extension's
        conn.exec_driver_sql("CREATE SCHEMA app")
        conn.exec_driver_sql("CREATE TABLE app.items (id INTEGER PRIMARY KEY)")
        conn.commit()
        assert set(inspect_schema(conn).tables) == {"app.items"}
        conn.exec_driver_sql("ALTER EXTENSION hstore DROP TABLE ext.jobs")  # now the app's
        conn.commit()
        assert set(inspect_schema(conn).tables) == {"app.items", "ext.jobs"}
