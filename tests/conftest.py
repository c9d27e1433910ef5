"""Shared fixtures: database servers that skip (laptop) or fail (CI) when unreachable."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def _server_or_skip(name: str, host: str, port: int) -> None:
    """Skip with a reason on a laptop without the server; fail in CI where it must be there."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("COMPATCHECK_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} and COMPATCHECK_REQUIRE_SERVERS=1")
    pytest.skip(reason)


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
