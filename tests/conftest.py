"""Shared fixtures: database servers that skip (laptop) or fail (CI) when unreachable."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

# Hypothesis profiles for tests that do not pin their own number of examples: `quick` (the
# default) keeps `python -m pytest -q` fast; `HYPOTHESIS_PROFILE=thorough` looks much further.
settings.register_profile(
    "quick", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"

POSTGRES_URL = os.environ.get(
    "COMPATCHECK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MYSQL_URL = os.environ.get(
    "COMPATCHECK_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with a reason on a laptop without a server or tool; fail in CI where it must be."""
    if os.environ.get("COMPATCHECK_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} and COMPATCHECK_REQUIRE_SERVERS=1")
    pytest.skip(reason)


def _server_or_skip(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        skip_or_fail(f"{name} is not reachable on {host}:{port}")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a PostgreSQL server's maintenance database (scratch DBs come from it)."""
    _server_or_skip("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """SQLAlchemy URL of a MariaDB/MySQL server (scratch DBs are made from it)."""
    _server_or_skip("MariaDB", "127.0.0.1", 3306)
    return MYSQL_URL


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def isolated_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point TMPDIR at an empty folder so a test can assert compatcheck left no temp file."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp


def scratch_databases(url: str) -> list[str]:
    """Names of ``compatcheck*`` databases on the server behind ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                q = "SELECT datname FROM pg_database WHERE datname LIKE :p"
            else:
                q = "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"
            return sorted(r[0] for r in conn.execute(sa.text(q), {"p": "compatcheck%"}))
    finally:
        engine.dispose()


def _leftovers() -> set[str]:
    """Everything compatcheck may leave behind: temp entries and scratch databases."""
    found = {f"temp:{p.name}" for p in Path(tempfile.gettempdir()).glob("compatcheck*")}
    for name, url, port in (("postgres", POSTGRES_URL, 5432), ("mariadb", MYSQL_URL, 3306)):
        if _reachable("127.0.0.1", port):
            found |= {f"{name}:{db}" for db in scratch_databases(url)}
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = _leftovers()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test left a scratch database or a temp file behind.

    Per-test checks cover the cases that look for leftovers themselves; this catches every
    other test, which is what "nothing left after any test" means.
    """
    before = session.config.stash.get(_BEFORE, set())
    left = sorted(_leftovers() - before)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "compatcheck left behind: " + ", ".join(left)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[set[str]]()
