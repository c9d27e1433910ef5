"""Seeding honours CHECK constraints with value lists, as each database reports them:
``col IN ('A', 'B')`` (SQLite, MariaDB) and ``col::text = ANY (ARRAY['A'::varchar, ...])``
(PostgreSQL), case kept; a MariaDB BOOLEAN (TINYINT(1)) gets 0/1 even for NEW-era rows."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from compatcheck.migrations.schema import inspect_schema
from compatcheck.migrations.scratch import scratch_database
from compatcheck.migrations.seeding import NEW_OFFSET, Seeder

DDL = (
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, flag BOOLEAN NOT NULL, "
    "source_type VARCHAR(20) NOT NULL, stage VARCHAR(20), "
    "CONSTRAINT ck_source CHECK (source_type IN ('NOTEBOOK', 'JOB', 'PROJECT')), "
    "CONSTRAINT ck_stage CHECK (stage IN ('active', 'deleted')))"
)


def seed_both_eras(db_url: str | None) -> tuple[dict[str, int], dict[str, str], set[str]]:
    with scratch_database(db_url) as scratch, scratch.engine.connect() as conn:
        conn.exec_driver_sql(DDL)
        conn.commit()
        schema = inspect_schema(conn)
        seeder = Seeder(conn)
        seeded = seeder.insert(schema, ["runs"], 0, 3)
        seeded_new = seeder.insert(schema, ["runs"], NEW_OFFSET, 2)
        values = {r[0] for r in conn.execute(sa.text("SELECT source_type FROM runs"))}
        conn.commit()
        return {**seeded, **{f"new:{k}": v for k, v in seeded_new.items()}}, seeder.errors, values


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_value_lists_are_seeded_from_the_list(dialect: str, request: pytest.FixtureRequest) -> None:
    url = None
    if dialect != "sqlite":
        url = request.getfixturevalue("postgres_url" if dialect == "postgresql" else "mysql_url")
    seeded, errors, values = seed_both_eras(url)
    assert errors == {}
    assert seeded == {"runs": 3, "new:runs": 2}
    assert values == {"NOTEBOOK", "JOB", "PROJECT"}
