"""compatcheck never writes into a database it did not create.

Real unprivileged accounts (a PostgreSQL role made LOGIN NOCREATEDB, a MariaDB user with rights on
one database only), created and dropped by each test under a run-unique name: without the right
to create a scratch database the round trip is ``check/unavailable`` (exit 3) naming the missing
privilege, and the database the URL names is left exactly as it was. ``--use-existing-empty-
database`` runs there only when it holds nothing in any schema, and drops all it created.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from compatcheck.config import parse_config
from compatcheck.errors import InputError, UsageError
from compatcheck.migrations import inspect_migrations
from compatcheck.migrations.existing import inventory
from compatcheck.schemas import validate

from .conftest import RUN_TAG, scratch_databases

ALEMBIC = Path(__file__).resolve().parent.parent / "fixtures" / "alembic"
CLEAN = ALEMBIC / "clean_reversible"
ENUM = ALEMBIC / "enum_left_behind"


def objects(url: str) -> set[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return inventory(conn)
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compatcheck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def migrations_cli(
    script: Path, old: str, new: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli(
        "migrations", "--script-location", str(script), "--old", old, "--new", new,
        "--format", "json", "-q", *extra,
    )  # fmt: skip


@contextlib.contextmanager
def account(admin: str, create: list[str], drop: list[str]) -> Iterator[str]:
    """A run-unique account and database (``{a}``, ``{d}`` in the SQL), made with ``create`` and
    removed with ``drop``; yields the account's URL on that database."""
    suffix = f"{RUN_TAG}_{secrets.token_hex(3)}"
    names = {"a": f"cc_acct_{suffix}", "d": f"cc_db_{suffix}"}
    try:
        execute(admin, *(sql.format(**names) for sql in create))
        url = make_url(admin).set(username=names["a"], password=None, database=names["d"])
        yield url.render_as_string(hide_password=False)
    finally:
        failed: list[Exception] = []
        for sql in drop:  # one by one: a failed drop must not keep the next from running
            try:
                execute(admin, sql.format(**names))
            except sa.exc.SQLAlchemyError as exc:
                failed.append(exc)
        if failed:
            raise failed[0]


@pytest.fixture
def pg_unprivileged(postgres_url: str) -> Iterator[str]:
    """URL of a LOGIN NOCREATEDB role on a database it owns; both dropped afterwards."""
    with account(
        postgres_url,
        ['CREATE ROLE "{a}" LOGIN NOCREATEDB NOSUPERUSER NOCREATEROLE',
         'CREATE DATABASE "{d}" OWNER "{a}"'],
        ['DROP DATABASE IF EXISTS "{d}" WITH (FORCE)', 'DROP ROLE IF EXISTS "{a}"'],
    ) as url:  # fmt: skip
        yield url


@pytest.fixture
def mariadb_unprivileged(mysql_url: str) -> Iterator[str]:
    """URL of a MariaDB user with every right on one database and none to create others."""
    with account(
        mysql_url,
        ["CREATE DATABASE `{d}`", "CREATE USER '{a}'@'127.0.0.1'",
         "GRANT ALL PRIVILEGES ON `{d}`.* TO '{a}'@'127.0.0.1'"],
        ["DROP DATABASE IF EXISTS `{d}`", "DROP USER IF EXISTS '{a}'@'127.0.0.1'"],
    ) as url:  # fmt: skip
        yield url


def kinds(report: dict) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    assert validate(report, "report") is None
    return {(f["kind"], f["subject"]) for f in report["findings"]}


# --- no fallback ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_role_without_createdb_is_unavailable_and_nothing_written(
    pg_unprivileged: str, postgres_url: str
) -> None:
    before = objects(pg_unprivileged)
    done = migrations_cli(CLEAN, "0001_users", "0002_name_index", "--db-url", pg_unprivileged)
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert kinds(report) == {("check/unavailable", "migrations")}
    assert report["migrations"]["roundtrip"]["status"] == "unavailable"
    role = make_url(pg_unprivileged).username
    assert f"the role `{role}` lacks the CREATEDB privilege" in done.stderr
    assert "--use-existing-empty-database" in done.stderr
    assert objects(pg_unprivileged) == before  # the database the URL names is untouched
    assert scratch_databases(postgres_url) == []


@pytest.mark.mysql
def test_mariadb_user_without_create_is_unavailable_and_nothing_written(
    mariadb_unprivileged: str, mysql_url: str
) -> None:
    done = migrations_cli(CLEAN, "0001_users", "0002_name_index", "--db-url", mariadb_unprivileged)
    assert done.returncode == 3, done.stderr
    assert kinds(json.loads(done.stdout)) == {("check/unavailable", "migrations")}
    user = make_url(mariadb_unprivileged).username
    assert f"the user `{user}` lacks the CREATE privilege" in done.stderr
    assert objects(mariadb_unprivileged) == set()
    assert scratch_databases(mysql_url) == []


@pytest.mark.postgres
@pytest.mark.mysql
def test_the_least_privileges_the_readme_names_are_enough(
    postgres_url: str, mysql_url: str
) -> None:
    """A PostgreSQL role with CREATEDB only, a MariaDB user with rights on `compatcheck\\_%`
    only: scratch databases are made, used and dropped."""
    account = f"cc_least_{RUN_TAG}_{secrets.token_hex(3)}"
    try:
        execute(postgres_url, f'CREATE ROLE "{account}" LOGIN CREATEDB')
        execute(mysql_url, f"CREATE USER '{account}'@'127.0.0.1'",
                f"GRANT ALL ON `compatcheck\\_%%`.* TO '{account}'@'127.0.0.1'")  # fmt: skip
        for admin in (postgres_url, mysql_url):
            url = make_url(admin).set(username=account, password=None)
            result = inspect_migrations(CLEAN, "0001_users", "0002_name_index", db_url=str(url))
            assert result.section.to_json()["roundtrip"]["status"] == "completed"
            assert scratch_databases(admin) == []
    finally:
        execute(postgres_url, f'DROP ROLE IF EXISTS "{account}"')
        execute(mysql_url, f"DROP USER IF EXISTS '{account}'@'127.0.0.1'")


# --- --use-existing-empty-database ----------------------------------------------------------


@pytest.mark.postgres
def test_existing_empty_postgres_database_is_used_and_left_as_found(pg_unprivileged: str) -> None:
    """The enum case leaves a PostgreSQL type behind after its own downgrade: the cleanup
    must still drop it (and the tables, sequences and alembic_version)."""
    before = objects(pg_unprivileged)
    done = migrations_cli(
        ENUM, "0001_users", "0002_tickets", "--db-url", pg_unprivileged,
        "--use-existing-empty-database",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the code-only plan is safe: go
    report = json.loads(done.stdout)
    assert kinds(report) == {
        ("migrations/downgrade-destructive", "0002_tickets"),
        ("migrations/downgrade-incomplete", "0002_tickets"),
        ("migrations/roundtrip-mismatch", "0002_tickets"),
    }
    assert report["migrations"]["roundtrip"]["status"] == "reupgrade-failed"
    assert report["migrations"]["engine"] == "postgresql"
    assert objects(pg_unprivileged) == before == {("schema", "public"), ("extension", "plpgsql")}


@pytest.mark.mysql
def test_existing_empty_mariadb_database_is_used_and_left_as_found(
    mariadb_unprivileged: str,
) -> None:
    done = migrations_cli(
        CLEAN, "0001_users", "0002_name_index", "--db-url", mariadb_unprivileged,
        "--use-existing-empty-database",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["migrations"]["roundtrip"]["status"] == "completed"
    assert kinds(report) == set()
    assert objects(mariadb_unprivileged) == set()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("ddl", "shown"),
    [
        ("CREATE SCHEMA other; CREATE TABLE other.precious (id int)", "table other.precious"),
        ("CREATE VIEW answer AS SELECT 42 AS n", "view public.answer"),
        ("CREATE SEQUENCE other_seq", "sequence public.other_seq"),
        ("CREATE TYPE mood AS ENUM ('ok', 'not ok')", "type public.mood"),
    ],
)
def test_existing_database_with_any_object_in_any_schema_is_refused(
    pg_unprivileged: str, ddl: str, shown: str
) -> None:
    execute(pg_unprivileged, *ddl.split("; "))
    before = objects(pg_unprivileged)
    with pytest.raises(InputError, match=rf"is not empty: it has 1 object\(s\) \({shown}\)"):
        inspect_migrations(
            CLEAN, "0001_users", "0002_name_index", db_url=pg_unprivileged, use_existing_empty=True
        )
    assert objects(pg_unprivileged) == before


@pytest.mark.mysql
def test_existing_mariadb_database_with_a_view_is_refused(mariadb_unprivileged: str) -> None:
    execute(mariadb_unprivileged, "CREATE VIEW answer AS SELECT 42 AS n")
    done = migrations_cli(
        CLEAN, "0001_users", "0002_name_index", "--db-url", mariadb_unprivileged,
        "--use-existing-empty-database",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"compatcheck: error: {mariadb_unprivileged} is not empty: it has 1 object(s) (view "
        "answer); --use-existing-empty-database only runs in a database without tables, views, "
        "sequences, types or routines in any schema"
    ]
    assert objects(mariadb_unprivileged) == {("view", "answer")}


def test_sqlite_file_needs_the_flag_and_must_be_empty(tmp_path: Path, isolated_tmp: Path) -> None:
    precious = tmp_path / "mine.sqlite"
    with sqlite3.connect(precious) as conn:
        conn.execute("CREATE TABLE precious (id INTEGER)")
    for flag in (False, True):
        with pytest.raises(InputError, match=r"did not create|is not empty"):
            inspect_migrations(
                CLEAN, "0001_users", "0002_name_index",
                db_url=f"sqlite:///{precious}", use_existing_empty=flag,
            )  # fmt: skip
    fresh = tmp_path / "fresh.sqlite"
    result = inspect_migrations(
        CLEAN, "0001_users", "0002_name_index", db_url=f"sqlite:///{fresh}", use_existing_empty=True
    )
    assert result.section.to_json()["roundtrip"]["status"] == "completed"
    assert not fresh.exists()  # compatcheck made the file, so it removed it
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    inspect_migrations(
        CLEAN, "0001_users", "0002_name_index", db_url=f"sqlite:///{empty}", use_existing_empty=True
    )
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    assert list(isolated_tmp.iterdir()) == []


# --- URLs out of the migrations' and other users' sight -------------------------------------

SPY_ENV = """
import json, os, sys
from pathlib import Path
Path(os.environ["SPY_OUT"]).write_text(json.dumps({"argv": sys.argv, "env": dict(os.environ)}))
"""


def test_live_url_never_reaches_the_migrations(tmp_path: Path) -> None:
    """env.py runs in compatcheck's process: the live URL is neither in its sys.argv nor in its
    environment, and a URL on the command line is refused."""
    script = tmp_path / "migrations"
    (script / "versions").mkdir(parents=True)
    for f in (CLEAN / "versions").iterdir():
        if f.suffix == ".py":
            (script / "versions" / f.name).write_text(f.read_text())
    (script / "env.py").write_text(SPY_ENV + (CLEAN / "env.py").read_text())
    live = tmp_path / "live.sqlite"
    sqlite3.connect(live).close()
    live_url = f"sqlite:///{live}"
    spy = tmp_path / "spy.json"
    refused = migrations_cli(script, "0001_users", "0002_name_index", "--live-db-url", live_url)
    assert refused.returncode == 2
    assert "give the URL as env:VAR or file:PATH, not on the command line" in refused.stderr
    done = cli(
        "migrations", "--script-location", str(script), "--old", "0001_users",
        "--new", "0002_name_index", "--live-db-url", "env:LIVE_DB_URL", "--format", "json", "-q",
        env={"LIVE_DB_URL": live_url, "SPY_OUT": str(spy)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = spy.read_text()
    assert str(live) not in seen
    assert "LIVE_DB_URL" not in json.loads(seen)["env"]
    assert json.loads(done.stdout)["migrations"]["data_at_risk"] == []


def test_a_password_never_goes_into_a_command_line(tmp_path: Path) -> None:
    text = (
        "old: {label: v1, command: [app, --db, '{database_url}'], env: {X: y}}\n"
        "new: {label: v2, url: 'http://127.0.0.1:1'}\n"
        "migrations: {script_location: m, database: 'postgresql+psycopg://u:pw@db/postgres'}\n"
    )
    (tmp_path / "m").mkdir()  # a migrations folder that does not exist is refused by itself
    with pytest.raises(UsageError, match=r"compatcheck\.yaml:1: .*`\{database_url\}` in a command"):
        parse_config(text, tmp_path / "compatcheck.yaml")
    # Through env, or without a password (SQLite, peer/trust auth), it is fine.
    parse_config(text.replace("command: [app, --db, '{database_url}'], env: {X: y}",
                              "command: [app], env: {DATABASE_URL: '{database_url}'}"),
                 tmp_path / "compatcheck.yaml")  # fmt: skip
    parse_config(text.replace("u:pw@", "u@"), tmp_path / "compatcheck.yaml")
