"""Differential test against the real dbmate: for every dbmate fixture, ``dbmate up`` then one
``dbmate rollback`` per step of the window, and compatcheck's runner doing the same on a twin
database, leave identical databases after every command: the same tables (columns, types, keys,
indexes), views, the same ``schema_migrations`` table and rows, and the same commands failing.

dbmate is the npm package (a static Go binary), installed once into
``~/.cache/compatcheck-tests``; the test skips (fails under ``COMPATCHECK_REQUIRE_SERVERS=1``)
when npm cannot install it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL

from compatcheck.migrations.existing import inventory
from compatcheck.migrations.schema import inspect_schema
from compatcheck.migrations.scratch import Scratch, scratch_database
from compatcheck.migrations.sources.sqlfiles import SqlFilesSource

from .conftest import skip_or_fail

pytestmark = pytest.mark.realworld

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "sqlmigrations" / "dbmate"
CASES = sorted(p.parent.name for p in ROOT.glob("*/expected.yaml"))
DBMATE_VERSION = "2.36.0"
CACHE = Path(os.environ.get("COMPATCHECK_TEST_CACHE", Path.home() / ".cache" / "compatcheck-tests"))


@pytest.fixture(scope="module")
def dbmate() -> Path:
    prefix = CACHE / "tools" / f"npm-dbmate-{DBMATE_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "dbmate"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        argv = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix)]
        try:
            subprocess.run(
                [*argv, f"dbmate@{DBMATE_VERSION}"], check=True, capture_output=True, timeout=300
            )
        except (OSError, subprocess.SubprocessError) as exc:
            skip_or_fail(f"cannot install dbmate from npm: {exc}")
    return binary


def dbmate_url(url: URL) -> str:
    """The scratch database's URL as dbmate spells it."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:{url.database}"
    auth = url.username or ""
    where = f"{auth}@{url.host}:{url.port or (5432 if backend == 'postgresql' else 3306)}"
    if backend == "postgresql":
        return f"postgres://{where}/{url.database}?sslmode=disable"
    return f"mysql://{where}/{url.database}"


def state(conn: sa.Connection) -> dict[str, Any]:
    """What a migration tool leaves: every object, every table's shape, the version rows."""
    if conn.in_transaction():
        conn.commit()
    schema = inspect_schema(conn)
    objects = {(k, n) for k, n in inventory(conn) if k != "index" or not n.startswith("sqlite_")}
    rows: list[str] = []
    if "schema_migrations" in schema.tables:
        rows = sorted(
            str(v) for v in conn.exec_driver_sql("SELECT version FROM schema_migrations").scalars()
        )
    conn.commit()
    return {"objects": sorted(objects), "tables": schema.tables, "versions": rows}


@contextmanager
def twins(server: str | None) -> Iterator[tuple[Scratch, Scratch]]:
    with ExitStack() as stack:
        a = stack.enter_context(scratch_database(server))
        b = stack.enter_context(scratch_database(server))
        yield a, b


def run_dbmate(binary: Path, scratch: Scratch, folder: Path, path: list[str]) -> list[Any]:
    """``up``, then ``rollback`` per step of ``path``; (ok, state) after each command."""
    url = dbmate_url(scratch.url)
    out: list[Any] = []
    with scratch.engine.connect() as conn:
        for command in ["up", *(["rollback"] * len(path))]:
            argv = [str(binary), "--url", url, "--migrations-dir", str(folder), "--no-dump-schema"]
            proc = subprocess.run([*argv, command], capture_output=True, text=True, timeout=120)
            out.append((proc.returncode == 0, state(conn)))
            if proc.returncode != 0:
                break
    return out


def run_ours(scratch: Scratch, folder: Path, path: list[str], dialect: str) -> list[Any]:
    source = SqlFilesSource("dbmate", folder, dialect)
    head = source.history().heads[0]
    out: list[Any] = []
    with scratch.engine.connect() as conn:
        runner = source.runner(scratch, conn)
        failed = runner.upgrade(head)
        out.append((failed is None, state(conn)))
        for version in path:
            if failed is not None:
                break
            failed = runner.downgrade([version])
            out.append((failed is None, state(conn)))
    return out


def compare(binary: Path, case: str, server: str | None, dialect: str) -> None:
    folder = ROOT / case
    path = [str(v) for v in yaml.safe_load((folder / "expected.yaml").read_text())["path"]]
    with twins(server) as (a, b):
        theirs = run_dbmate(binary, a, folder, path)
        ours = run_ours(b, folder, path, dialect)
    assert [ok for ok, _ in ours] == [ok for ok, _ in theirs]
    for (_, mine), (_, real) in zip(ours, theirs, strict=True):
        assert mine == real


@pytest.mark.parametrize("case", CASES)
def test_same_as_dbmate_on_sqlite(dbmate: Path, case: str) -> None:
    compare(dbmate, case, None, "sqlite")


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES)
def test_same_as_dbmate_on_postgres(dbmate: Path, case: str, postgres_url: str) -> None:
    compare(dbmate, case, postgres_url, "postgresql")


@pytest.mark.mysql
@pytest.mark.parametrize("case", CASES)
def test_same_as_dbmate_on_mariadb(dbmate: Path, case: str, mysql_url: str) -> None:
    compare(dbmate, case, mysql_url, "mysql")
