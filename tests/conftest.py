"""Shared fixtures: database servers that skip (laptop) or fail (CI) when unreachable."""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from compatcheck import leftovers
from compatcheck.capture import CheckResult, run_check
from compatcheck.config import load_config

# Hypothesis profiles (no test pins its own number of examples, so the profile decides):
# `quick`, the default, keeps `python -m pytest -q` within its 3 minutes; `ci` (`.ci/run` sets
# HYPOTHESIS_PROFILE=ci) looks four times further within CI's 20-minute budget; `thorough` looks
# much further.
_PROFILE = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("quick", max_examples=25, **_PROFILE)
settings.register_profile("ci", max_examples=100, **_PROFILE)
settings.register_profile("thorough", max_examples=2000, **_PROFILE)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "quick")
settings.load_profile(PROFILE)
#: Beyond the quick default: tests that size a load by hand (the hook's load run) use the full size.
THOROUGH = PROFILE != "quick"


#: This test run's tag: every scratch database, temp folder and child process compatcheck creates
#: during the run carries it (``COMPATCHECK_RUN_TAG``), so the leftover checks look only at what
#: THIS run made while other runs use the same servers and temp folder.
#: Under ``pytest -n`` (pytest-xdist) each worker is a run of its own: the workers inherit the
#: controller's tag and add their number, so one worker's leftover checks never see what another
#: is still using. The number has two digits at least: with one, worker 1 of a tag ending in 1
#: and worker 11 would share a tag (``t00000`` + ``11``).
def _run_tag() -> str:
    base = os.environ.setdefault(leftovers.TAG_ENV, "t" + secrets.token_hex(3))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    if not worker:
        return base
    worker = worker.zfill(2)
    tag = base[: 8 - len(worker)] + worker
    os.environ[leftovers.TAG_ENV] = tag
    return tag


RUN_TAG = _run_tag()

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


@pytest.fixture(scope="session")
def app_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter where the ``alembic_projects/ini_app`` application is installed (and only
    there): this Python behind a real script that puts the app's folder on ``PYTHONPATH``."""
    path = tmp_path_factory.mktemp("appenv") / "python"
    app = FIXTURES / "alembic_projects" / "ini_app" / "app"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={app} exec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return str(path)


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


@dataclass(frozen=True)
class DemoRun:
    """One real ``check`` of the README demo (v2 → v1), shared by the tests that read it."""

    result: CheckResult
    #: The run's own TMPDIR, empty once the run ended (its workspace is gone).
    tmp: Path


def _check_demo(name: str, factory: pytest.TempPathFactory) -> DemoRun:
    tmp = factory.mktemp(f"demo-tmp-{name.split('.')[0]}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(tmp))
        mp.setattr(tempfile, "tempdir", str(tmp))
        result = run_check(load_config(FIXTURES / "demo" / name))
    return DemoRun(result, tmp)


@pytest.fixture(scope="session")
def demo_check(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo (``compatcheck.yaml``) checked once per session: starting both releases, the
    migrations round trip and the code-only trial cost seconds, and several modules judge the
    same result."""
    return _check_demo("compatcheck.yaml", tmp_path_factory)


@pytest.fixture(scope="session")
def compatible_check(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo's compatible pair (``compatible.yaml``, v3 → v2) checked once per session."""
    return _check_demo("compatible.yaml", tmp_path_factory)


def ours(name: str, pattern: re.Pattern[str] = leftovers.DATABASE_RE) -> bool:
    """True for a name compatcheck gave something during this test run."""
    owner = leftovers.parse(name, pattern)
    return owner is not None and owner.tag == RUN_TAG


def _server_names(url: str, postgres: str, mysql: str) -> list[str]:
    """The first column of ``postgres`` or ``mysql`` (by the server's dialect) on ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            q = postgres if conn.dialect.name == "postgresql" else mysql
            return [str(r[0]) for r in conn.execute(sa.text(q))]
    finally:
        engine.dispose()


def scratch_databases(url: str) -> list[str]:
    """Names of the scratch databases this test run created on the server behind ``url``."""
    names = _server_names(
        url,
        "SELECT datname FROM pg_database WHERE datname LIKE 'compatcheck%'",
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'compatcheck%'",
    )
    return sorted(n for n in names if ours(n))


def owned_processes() -> list[int]:
    """Pids of live processes compatcheck started during this test run (by their owner mark)."""
    return [pid for pid, owner in leftovers.marked_processes() if owner.tag == RUN_TAG]


def _leftovers() -> set[str]:
    """Everything this test run's compatcheck may leave: temp entries, scratch databases and
    processes carrying the run's tag."""
    found = {
        f"temp:{p.name}"
        for p in Path(tempfile.gettempdir()).glob("compatcheck*")
        if ours(p.name, leftovers.TEMP_RE)
    }
    for name, url, port in (("postgres", POSTGRES_URL, 5432), ("mariadb", MYSQL_URL, 3306)):
        if _reachable("127.0.0.1", port):
            found |= {f"{name}:{db}" for db in scratch_databases(url)}
            found |= {f"{name}:{x}" for x in _test_accounts(url)}
    found |= {f"process:{pid}" for pid in owned_processes()}
    return found


def _test_accounts(url: str) -> list[str]:
    """Roles, users and databases the tests themselves made (``cc_*_<RUN_TAG>_*``)."""
    names = _server_names(
        url,
        "SELECT rolname FROM pg_roles UNION ALL SELECT datname FROM pg_database",
        "SELECT user FROM mysql.user UNION ALL SELECT schema_name FROM information_schema.schemata",
    )
    return sorted(n for n in names if n.startswith("cc_") and f"_{RUN_TAG}_" in n)


#: Markers whose tests a run leaves out unless its ``-m`` expression names the marker:
#: ``realworld`` installs published libraries; ``slow`` starts Go builds, chromium, signal
#: matrices and load runs (seconds each), which keeps the default run within 3 minutes.
#: ``.ci/run`` runs both after the default run (``-m 'slow or realworld'``).
OPT_IN = ("realworld", "slow")


def _named_files(config: pytest.Config) -> set[Path]:
    """The test files named on the command line (``pytest tests/test_x.py[::test]``): their
    ``slow`` tests run, since whoever names a file means its tests. A folder names no file."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return set()
    root = Path(str(config.invocation_params.dir))
    files = {(root / arg.split("::", 1)[0]).resolve() for arg in config.args}
    return {f for f in files if f.is_file()}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the :data:`OPT_IN` markers' tests out unless ``-m`` names them (``-m 'not slow'``
    names ``slow`` and leaves them out itself; ``-m realworld`` alone must not bring ``slow``
    back in), except ``slow`` tests of a file named on the command line."""
    expr = config.getoption("markexpr") or ""
    left_out = [m for m in OPT_IN if m not in expr]
    named = _named_files(config)

    def dropped(item: pytest.Item) -> bool:
        return any(
            item.get_closest_marker(m) and not (m == "slow" and item.path in named)
            for m in left_out
        )

    drop = [item for item in items if dropped(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if not dropped(item)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test left a scratch database or a temp file behind.

    Per-test checks cover the cases that look for leftovers themselves; this catches every
    other test, which is what "nothing left after any test" means.
    """
    left = sorted(_leftovers())
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "compatcheck left behind: " + ", ".join(left)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
