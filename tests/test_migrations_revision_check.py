"""After each upgrade the scratch database must record the revision it was upgraded to (issue
12): an env.py that migrates another database (its own engine on a URL of its own) or none is
named, with that database, instead of judging the wrong database's schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compatcheck.migrations import inspect_migrations

PROJECT = Path(__file__).parent.parent / "fixtures" / "alembic_projects" / "branches"

ELSEWHERE = """
from alembic import context
from sqlalchemy import create_engine

# Like an app reading its own settings file: the URL compatcheck gives is ignored.
engine = create_engine("sqlite:///{db}")
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

NOTHING = """
from alembic import context

# Never calls run_migrations(): nothing is migrated anywhere.
"""


def project_with(tmp_path: Path, env_py: str) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "env.py").write_text(env_py)
    return folder


def test_env_py_migrating_another_database_is_named(tmp_path: Path) -> None:
    other = tmp_path / "production.db"
    folder = project_with(tmp_path, ELSEWHERE.format(db=other))
    result = inspect_migrations(folder, "a1", "heads")
    trip = result.section.roundtrip
    assert trip is not None and trip.status == "upgrade-failed"
    assert trip.failure is not None and trip.failure.revision == "a1"
    assert f"env.py ran the migrations on sqlite:///{other}" in trip.failure.error
    assert "not on the scratch database it was handed" in trip.failure.error
    (unavailable,) = [f for f in result.findings if f.kind == "check/unavailable"]
    assert unavailable.subject == "a1"
    assert other.exists()  # it really went there


def test_env_py_running_nothing_is_named(tmp_path: Path) -> None:
    folder = project_with(tmp_path, NOTHING)
    trip = inspect_migrations(folder, "a1", "heads").section.roundtrip
    assert trip is not None and trip.failure is not None
    assert trip.failure.error == (
        "upgrading to `a1`: env.py ran no migration step (it never called "
        "context.run_migrations()); the scratch database records no revision"
    )


def test_a_faithful_env_py_passes_the_check(tmp_path: Path) -> None:
    trip = inspect_migrations(PROJECT, "a1", "heads").section.roundtrip
    assert trip is not None and trip.status == "completed", trip


def test_an_internal_error_outside_the_round_trip_still_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug of ours while reading the history (simulated: the static checks raise) is a
    check/unavailable naming it, exit 3, and the report file is written."""
    from compatcheck.cli import main
    from compatcheck.migrations import inspection

    def broken(*_a: object, **_k: object) -> list[object]:
        raise TypeError("'object' object is not iterable")

    monkeypatch.delenv("COMPATCHECK_DEBUG", raising=False)
    monkeypatch.setattr(inspection, "static_findings", broken)
    out = tmp_path / "r.json"
    argv = ["migrations", "--script-location", str(PROJECT), "--old", "a1", "--new", "heads"]
    assert main([*argv, "--static", "-q", "--format", "json", "-o", str(out)]) == 3
    doc = json.loads(out.read_text())
    (finding,) = doc["findings"]
    assert finding["kind"] == "check/unavailable"
    assert "internal error: TypeError: 'object' object is not iterable" in finding["message"]
