"""Migration reversibility: every fixture case gives its exact findings, statically and on every
engine, and no scratch database or temp file survives a run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from compatcheck.errors import InputError
from compatcheck.migrations import MigrationsResult, inspect_migrations
from compatcheck.migrations.graph import downgrade_path, resolve
from compatcheck.migrations.sources.alembic.history import load_history
from compatcheck.migrations.sources.alembic.revisions import read_revision_file
from compatcheck.migrations.sqlstatic import parse_sql

from .conftest import scratch_databases

ALEMBIC = Path(__file__).resolve().parent.parent / "fixtures" / "alembic"
CASES = sorted(p.name for p in ALEMBIC.iterdir() if (p / "expected.yaml").is_file())
DYNAMIC = [
    c
    for c in CASES
    if not yaml.safe_load((ALEMBIC / c / "expected.yaml").read_text()).get("static_only")
]


def expected(case: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ALEMBIC / case / "expected.yaml").read_text())
    return data


def pairs(items: list[list[str]] | None) -> set[tuple[str, str]]:
    return {(k, s) for k, s in items or []}


def got(result: MigrationsResult) -> set[tuple[str, str]]:
    kinds = [(f.kind, f.subject) for f in result.findings]
    assert len(kinds) == len(set(kinds)), "one finding per (kind, subject)"
    return set(kinds)


def run_case(case: str, db_url: str | None, **kw: Any) -> MigrationsResult:
    exp = expected(case)
    return inspect_migrations(ALEMBIC / case, exp["old"], exp["new"], db_url=db_url, **kw)


def check_dynamic(case: str, engine: str, result: MigrationsResult) -> None:
    exp = expected(case)
    want = (
        pairs(exp["static"])
        | pairs(exp.get("roundtrip"))
        | pairs((exp.get("engines") or {}).get(engine))
    )
    assert got(result) == want
    section = result.section.to_json()
    assert section["mode"] == "roundtrip"
    assert section["engine"] == engine
    assert section["recommended"] == exp["recommended"]
    assert section["downgrade_path"] == exp["path"]
    names = [p["name"] for p in section["plans"]]
    assert names == ["code-only", "downgrade"]
    json.dumps(section)  # the section goes into the JSON report as is


# ---------------------------------------------------------------------------------- static


@pytest.mark.parametrize("case", CASES)
def test_static_case(case: str) -> None:
    exp = expected(case)
    result = run_case(case, None, static=True)
    assert got(result) == pairs(exp["static"]) | pairs(exp.get("without_roundtrip"))
    section = result.section.to_json()
    assert section["mode"] == "static"
    assert section["downgrade_path"] == exp["path"]
    assert section.get("skipped_by_alembic", []) == exp.get("skipped_by_alembic", [])
    assert section["recommended"] == exp["recommended"]


@pytest.mark.parametrize("case", CASES)
def test_bare_versions_folder_is_static(case: str) -> None:
    exp = expected(case)
    result = inspect_migrations(ALEMBIC / case / "versions", exp["old"], exp["new"])
    assert got(result) == pairs(exp["static"]) | pairs(exp.get("without_roundtrip"))
    assert result.section.to_json()["roundtrip"]["status"] == "skipped"


def test_static_never_imports(tmp_path: Path) -> None:
    """A revision importing an application that does not exist is still analysed."""
    (tmp_path / "a1.py").write_text(
        "import myapp.settings\nrevision: str = 'a1'\ndown_revision: str | None = None\n"
        "def upgrade():\n    op.add_column('t', sa.Column('c', sa.Integer, nullable=False))\n"
        "def downgrade():\n    ...\n"
    )
    result = inspect_migrations(tmp_path, None, "a1", static=True)
    assert got(result) == {
        ("migrations/downgrade-missing", "a1"),
        ("migrations/old-code-incompatible", "a1"),  # `t` predates the history: OLD knows it
    }


def test_path_order_matches_alembic_own_ordering() -> None:
    """The static path is the order Alembic runs (checked against Alembic importing the scripts)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    case = ALEMBIC / "merge_revisions"
    history = load_history(case / "versions")
    path = downgrade_path(history, "0004_title_index", None)
    assert path is not None
    cfg = Config()
    cfg.set_main_option("script_location", str(case))
    real = [
        s.revision
        for s in ScriptDirectory.from_config(cfg).iterate_revisions(
            "0004_title_index", None, select_for_downgrade=True
        )
    ]
    assert list(path.revisions) == real
    to_old = downgrade_path(history, "0004_title_index", "0002a_items")
    assert to_old is not None
    assert list(to_old.revisions) == ["0004_title_index", "0003_merge", "0002b_flag"]
    assert to_old.skipped_by_framework == ("0002b_flag",)


def test_resolve_prefix_head_and_unknown() -> None:
    history = load_history(ALEMBIC / "destructive_downgrade" / "versions")
    assert resolve(history, "0003") == "0003_upper_names"
    assert resolve(history, "head") == "0003_upper_names"
    assert resolve(history, "base") is None
    with pytest.raises(InputError, match="ambiguous"):
        resolve(history, "000")
    result = inspect_migrations(ALEMBIC / "destructive_downgrade", "0999_gone", "0003", static=True)
    assert got(result) == {("migrations/path-missing", "0999_gone")}
    assert [p["safe"] for p in result.section.to_json()["plans"]] == [False, False]
    # NEW's head is known even though OLD's is not: the report names both, never `None`.
    unknown_old = inspect_migrations(ALEMBIC / "destructive_downgrade", "0999_gone", None)
    assert got(unknown_old) == {("migrations/path-missing", "0999_gone")}
    heads = (unknown_old.section.old_head, unknown_old.section.new_head)
    assert heads == ("0999_gone", "0003_upper_names")


def test_missing_and_non_alembic_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        inspect_migrations(tmp_path / "nope", None, None)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no migration files of a known framework"):
        inspect_migrations(tmp_path, None, None)
    (tmp_path / "broken.py").write_text("revision = 'x'\ndown_revision = (\n")
    with pytest.raises(InputError, match=r"broken\.py: syntax error on line"):
        inspect_migrations(tmp_path, None, None)


def ops_of(tmp_path: Path, body: str, func: str = "upgrade") -> list[tuple[Any, ...]]:
    src = "revision = 'r'\ndown_revision = None\n" + body
    (tmp_path / "r.py").write_text(src)
    rev = read_revision_file(tmp_path / "r.py")
    assert rev is not None
    fn = {"upgrade": rev.up, "downgrade": rev.down}[func]
    assert fn is not None
    return [(o.op, o.table, o.column, o.name) for o in fn.ops]


def test_static_recognises_helpers_text_and_enums(tmp_path: Path) -> None:
    body = (
        "T = 'accounts'\n"
        "def _drop(table, col):\n    op.drop_column(table, col)\n"
        "def upgrade():\n"
        "    _drop(T, 'legacy')\n"
        "    op.execute(sa.text('TRUNCATE TABLE audit, \"Sessions\"'))\n"
        "    conn = op.get_bind()\n"
        "    conn.execute(sa.text(f'DELETE FROM {T} WHERE 1=1'))\n"
        "    status = postgresql.ENUM('a', 'b', name='status')\n"
        "    status.create(op.get_bind())\n"
        "    op.execute('ALTER TABLE public.users RENAME COLUMN mail TO email; DROP TYPE mood')\n"
    )
    ops = [o for o in ops_of(tmp_path, body) if o[0] != "needs_online"]
    assert ops == [
        ("drop_column", "accounts", "legacy", None),
        ("delete_rows", "audit", None, None),
        ("delete_rows", "sessions", None, None),
        ("delete_rows", "accounts", None, None),
        ("create_enum", None, None, "status"),
        ("rename_column", "users", "mail", "email"),
        ("drop_enum", None, None, "mood"),
    ]


def test_parse_sql_statements() -> None:
    got_ops = [
        (o.op, o.table, o.column, o.name)
        for o in parse_sql(
            "-- comment; ignored\nDROP TABLE IF EXISTS `orders`; UPDATE users SET a = 1, b = 'x;y' "
            "WHERE id = 2; ALTER TABLE t RENAME TO t2; CREATE INDEX CONCURRENTLY ix ON t (c);"
            "ALTER TABLE t ADD COLUMN c int NOT NULL, DROP COLUMN d"
        )
    ]
    assert got_ops == [
        ("drop_table", "orders", None, None),
        ("update_rows", "users", "a", None),
        ("update_rows", "users", "b", None),
        ("rename_table", "t", None, "t2"),
        ("non_transactional", "t", None, "ix"),
        ("create_index", "t", None, "ix"),
        ("add_column", "t", "c", None),
        ("drop_column", "t", "d", None),
    ]


def test_not_null_add_column_and_type_change_are_old_code_incompatible(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "revision = 'a'\ndown_revision = None\n"
        "def upgrade():\n    op.create_table('t', sa.Column('id'))\n"
        "def downgrade():\n    op.drop_table('t')\n"
    )
    (tmp_path / "b.py").write_text(
        "revision = 'b'\ndown_revision = 'a'\n"
        "def upgrade():\n"
        "    op.add_column('t', sa.Column('c', sa.Integer, nullable=False))\n"
        "    op.add_column('t', sa.Column('d', sa.Integer, nullable=False, server_default='0'))\n"
        "    op.alter_column('t', 'id', type_=sa.BigInteger)\n"
        "def downgrade():\n    op.alter_column('t', 'id', type_=sa.Integer)\n"
        "    op.drop_column('t', 'd')\n"
    )
    result = inspect_migrations(tmp_path, "a", "b")
    by_kind = {f.kind: f for f in result.findings}
    assert set(by_kind) == {
        "migrations/old-code-incompatible",
        "migrations/downgrade-destructive",
        "migrations/downgrade-incomplete",
    }
    ev = by_kind["migrations/old-code-incompatible"].evidence
    assert ev["reasons"] == ["not-null-without-default", "type-changed"]
    assert ev["objects"] == ["t.c", "t.id"]
    assert by_kind["migrations/downgrade-incomplete"].evidence["columns"] == ["t.c"]


def test_multiple_heads_with_new_unspecified() -> None:
    result = inspect_migrations(ALEMBIC / "diverged_heads", "0001_users", None)
    assert got(result) == {
        ("migrations/multiple-heads", "0002a_left,0002b_right"),
        ("migrations/path-missing", "head"),
    }


# ---------------------------------------------------------------------------------- sqlite


@pytest.mark.parametrize("case", DYNAMIC)
def test_roundtrip_sqlite(case: str, isolated_tmp: Path) -> None:
    result = run_case(case, None)
    check_dynamic(case, "sqlite", result)
    assert list(isolated_tmp.iterdir()) == [], "the scratch SQLite folder must be removed"


def test_roundtrip_evidence_sqlite(isolated_tmp: Path) -> None:
    result = run_case("destructive_downgrade", None)
    by = {(f.kind, f.subject): f for f in result.findings}
    destructive = by[("migrations/downgrade-destructive", "0002_orders")].evidence
    assert destructive["tables"] == ["orders"]
    assert destructive["columns"] == ["users.nickname"]
    assert destructive["removed_in_roundtrip"] == {"orders": 2, "users.nickname": 3}
    assert by[("migrations/data-lost", "0003_upper_names")].evidence["lost"] == {"users.name": 3}
    section = result.section.to_json()
    sql = section["offline_sql"]
    assert "DROP TABLE orders" in sql
    assert "UPDATE users SET name = UPPER(name)" in sql
    assert section["online_only"] == []
    batch = run_case("batch_mode", None)
    assert [o["revision"] for o in batch.section.to_json()["online_only"]] == ["0002_batch"]


def test_seed_sql_and_live_counts(tmp_path: Path, isolated_tmp: Path) -> None:
    seed = tmp_path / "seed.sql"
    seed.write_text("INSERT INTO users (id, name, email) VALUES (500, 'seeded', NULL);\n")
    live = tmp_path / "live.sqlite"
    with sqlite3.connect(live) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, nickname TEXT)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO users VALUES (?, 'n', ?)", [(1, "a"), (2, None), (3, "c")])
        db.executemany("INSERT INTO orders VALUES (?)", [(i,) for i in range(7)])
    result = run_case("destructive_downgrade", None, seed_sql=seed, live_db_url=f"sqlite:///{live}")
    by = {(f.kind, f.subject): f for f in result.findings}
    assert by[("migrations/data-lost", "0003_upper_names")].evidence["lost"] == {"users.name": 4}
    assert by[("migrations/downgrade-destructive", "0002_orders")].evidence["live_counts"] == {
        "orders": 7,
        "users.nickname": 2,
    }
    section = result.section.to_json()
    assert section["data_at_risk"] == [
        "`orders`: 7 rows",
        "`users.name`: 3 non-NULL values",
        "`users.nickname`: 2 non-NULL values",
    ]
    # The same counts belong to the downgrade plan (which the data loss makes unsafe).
    downgrade = section["plans"][1]
    assert (downgrade["safe"], downgrade["live_data_at_risk"]) == (
        False,
        section["data_at_risk"],
    )
    with sqlite3.connect(live) as db:  # read-only: nothing changed
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (7,)
    bad = tmp_path / "bad.sql"
    bad.write_text("INSERT INTO nowhere VALUES (1);")
    with pytest.raises(InputError, match=r"seed file .*bad\.sql"):
        run_case("clean_reversible", None, seed_sql=bad)
    assert list(isolated_tmp.iterdir()) == []


SHOP_V2 = Path(__file__).resolve().parent.parent / "fixtures/services/shop/v2/migrations"


def _seeding(result: MigrationsResult) -> tuple[dict[str, int], dict[str, str]]:
    roundtrip = result.section.to_json()["roundtrip"]
    return roundtrip["seeded"], roundtrip["seed_errors"]


def test_seeds_above_the_rows_migrations_insert(isolated_tmp: Path) -> None:
    """shop's first revision inserts products 1-3: the seeder's rows must not collide with them,
    or `products` (and every NEW-era row that points at it) is never checked."""
    result = inspect_migrations(SHOP_V2, "1a0c0ffee001", None)
    assert _seeding(result) == ({"orders": 3, "products": 3}, {})
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.postgres
def test_seeds_above_the_rows_migrations_insert_postgres(
    postgres_url: str, no_leftovers: None
) -> None:
    result = inspect_migrations(SHOP_V2, "1a0c0ffee001", None, db_url=postgres_url)
    assert _seeding(result) == ({"orders": 3, "products": 3}, {})


@pytest.mark.mysql
def test_shop_history_round_trips_on_mariadb(mysql_url: str, no_leftovers: None) -> None:
    """The demo's rename runs on MariaDB too (CHANGE COLUMN needs the existing type), so the
    same findings as on SQLite and PostgreSQL, nothing unavailable."""
    result = inspect_migrations(SHOP_V2, "1a0c0ffee001", None, db_url=mysql_url)
    assert result.section.to_json()["roundtrip"]["status"] == "completed"
    assert got(result) == {
        ("migrations/old-code-incompatible", "2b0c0ffee002"),
        ("migrations/downgrade-destructive", "2b0c0ffee002"),
        ("migrations/downgrade-destructive", "2b0c0ffee003"),
        ("migrations/new-data-removed", "2b0c0ffee003"),
    }
    assert _seeding(result) == ({"orders": 3, "products": 3}, {})
    assert result.section.to_json()["plans"][1]["status"] == (
        "safe; removes NEW-era data: `refunds` (2 rows), `orders.payment_method` (3 values), "
        "counted in the scratch round trip"
    )


def test_unreachable_server_is_unavailable_and_still_reported() -> None:
    """An unreachable server is one `check/unavailable` finding (exit 3), with the static
    findings and the path still reported (a report, always); the password masked."""
    result = run_case("clean_reversible", "postgresql+psycopg://u:topsecret@127.0.0.1:1/db")
    unavailable = [f for f in result.findings if f.kind == "check/unavailable"]
    assert [f.subject for f in unavailable] == ["migrations"]
    assert "postgresql+psycopg://u:***@127.0.0.1:1/db" in unavailable[0].message
    assert "topsecret" not in json.dumps(result.section.to_json())
    assert result.section.roundtrip is not None
    assert result.section.roundtrip.status == "unavailable"
    assert result.section.downgrade_path


# ---------------------------------------------------------------------------------- servers


@pytest.fixture
def no_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("postgres_url", "mysql_url"):
        if name in request.fixturenames:
            assert scratch_databases(request.getfixturevalue(name)) == []


@pytest.mark.postgres
@pytest.mark.parametrize("case", DYNAMIC)
def test_roundtrip_postgres(case: str, postgres_url: str, no_leftovers: None) -> None:
    check_dynamic(case, "postgresql", run_case(case, postgres_url))


@pytest.mark.mysql
@pytest.mark.parametrize("case", DYNAMIC)
def test_roundtrip_mysql(case: str, mysql_url: str, no_leftovers: None) -> None:
    check_dynamic(case, "mysql", run_case(case, mysql_url))


@pytest.mark.postgres
def test_password_never_in_output(postgres_url: str, no_leftovers: None) -> None:
    url = sa.engine.make_url(postgres_url).set(password="s3cr3t-pw")
    result = run_case("enum_left_behind", url.render_as_string(hide_password=False))
    text = json.dumps(result.section.to_json(), default=str) + json.dumps(
        [f.to_json() for f in result.findings]
    )
    assert "s3cr3t-pw" not in text
