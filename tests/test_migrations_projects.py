"""Alembic projects as their own tooling runs them: the ini, -x, the application's
interpreter, the starting schema, every broken downgrade named, a report whatever fails.

The "application interpreter" is compatcheck's own Python with ``PYTHONPATH`` pointing at the
fixture's ``app/`` folder, behind a real executable script: the revisions' ``import fixtureapp``
works there and nowhere else, and every request crosses the real JSON protocol to a child.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.errors import InputError
from compatcheck.migrations import MigrationsResult, inspect_migrations
from compatcheck.migrations.inspection import StartingSchema
from compatcheck.migrations.sources.alembic import AlembicProject
from compatcheck.migrations.sources.alembic.project import resolve_locations
from tests.cli import run_here

APP = Path(__file__).parent.parent / "fixtures" / "alembic_projects" / "ini_app"
EXPECTED = yaml.safe_load((APP / "expected.yaml").read_text())
INI = APP / "alembic.ini"


def pairs(items: Any) -> set[tuple[str, str]]:
    return {(k, s) for k, s in items or ()}


def got(result: MigrationsResult) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in result.findings}


def project(python: str | None, **kw: Any) -> AlembicProject:
    return AlembicProject(
        **{"config_file": INI, "x": ("tenant=t1",), "python": python, **kw}  # type: ignore[arg-type]
    )


def run(python: str | None, db_url: str | None = None, **kw: Any) -> MigrationsResult:
    start = kw.pop("start", StartingSchema(sql=APP / "base.sql"))
    return inspect_migrations(
        project(python, **kw), EXPECTED["old"], EXPECTED["new"], db_url=db_url, start=start
    )


def walks_to_every_failure(
    app: AlembicProject, start: StartingSchema, db_url: str | None = None
) -> list[str]:
    """Run the window: expected.yaml's findings, both broken downgrades named (c3, then b2 by
    the walk on a fresh database); what progress said."""
    said: list[str] = []
    result = inspect_migrations(
        app, EXPECTED["old"], EXPECTED["new"], db_url=db_url, start=start, progress=said.append
    )
    assert got(result) == pairs(EXPECTED["static"]) | pairs(EXPECTED["roundtrip"])
    trip = result.section.roundtrip
    assert trip is not None and trip.failure is not None
    assert [trip.failure.revision] + [f.revision for f in trip.later_failures] == ["c3", "b2"]
    return said


def test_locations_come_from_the_ini_as_alembic_reads_it() -> None:
    """%(here)s, two version_locations split by path_separator, another section by --name."""
    for name in ("alembic", "other"):
        found = resolve_locations(AlembicProject(config_file=INI, name=name))
        assert found.script_location == APP / "scripts"
        assert found.version_locations == (APP / "scripts/versions", APP / "scripts/more")


def test_a_missing_ini_or_section_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--config .*nope.ini: no such file"):
        resolve_locations(AlembicProject(config_file=tmp_path / "nope.ini"))
    with pytest.raises(InputError, match=r"alembic.ini \[missing\]: .*script_location"):
        resolve_locations(AlembicProject(config_file=INI, name="missing"))


def test_every_broken_downgrade_is_named_in_the_apps_interpreter(app_python: str) -> None:
    """env.py's fileConfig, -x and own engine work; both broken downgrades are named (the walk
    goes on after the first on a fresh database); env.py's print does not break the protocol."""
    result = run(app_python)
    assert got(result) == pairs(EXPECTED["static"]) | pairs(EXPECTED["roundtrip"])
    section = result.section
    assert section.downgrade_path == tuple(EXPECTED["path"])
    trip = section.roundtrip
    assert trip is not None and trip.failure is not None
    assert (trip.failure.revision, trip.failure.error) == ("c3", "no such table: tag")
    assert [(f.stage, f.revision, f.error) for f in trip.later_failures] == [
        ("downgrade", "b2", "KeyError: 'notes'")
    ]
    assert dict(trip.seeded) == {"items": 3, "legacy": 3}
    assert section.to_json()["roundtrip"]["later_failures"] == [
        {"stage": "downgrade", "revision": "b2", "error": "KeyError: 'notes'"}
    ]


def test_the_walk_starts_from_a_copy_at_old_with_the_same_failures(app_python: str) -> None:
    """The walk's fresh database is a copy of the round trip's at OLD (starting schema made,
    a1 applied): the same broken downgrades as built from nothing (expected.yaml)."""
    start = StartingSchema(command=f"{sys.executable} {APP / 'base.py'} {{database_url}}")
    said = walks_to_every_failure(project(app_python), start)
    assert any(m.startswith("a copy of the database at OLD taken") for m in said), said
    assert not any("did not check out" in m for m in said), said
    # The walk's database was that copy: none was refused, none built from nothing.
    assert not any(m.startswith("no more copies") for m in said), said


def test_a_copy_env_py_would_not_migrate_is_refused_and_built_instead(
    app_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Mailman's: env.py migrates the database its application's settings name, a file the
    starting-schema command writes, not the one it is handed. A copy at OLD skips that command,
    so env.py would migrate another database: the copy is checked (an upgrade to OLD) and
    refused, and the walk's database is built from nothing; the same failures are named."""
    app = tmp_path / "ini_app"
    shutil.copytree(APP, app)
    env_py = app / "scripts" / "env.py"
    text = env_py.read_text().replace(
        """engine_from_config(
        config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
    )""",
        'create_engine(open(os.environ["APP_DB_FILE"]).read(), poolclass=pool.NullPool)',
    )
    assert "APP_DB_FILE" in text
    env_py.write_text("import os\nfrom sqlalchemy import create_engine\n" + text)
    base = tmp_path / "init.py"
    base.write_text(
        "import os, sys\n"
        "open(os.environ['APP_DB_FILE'], 'w').write(sys.argv[1])\n"
        f"exec(open({str(APP / 'base.py')!r}).read())\n"
    )
    monkeypatch.setenv("APP_DB_FILE", str(tmp_path / "database-url"))
    said = walks_to_every_failure(
        AlembicProject(config_file=app / "alembic.ini", x=("tenant=t1",), python=app_python),
        StartingSchema(command=f"{sys.executable} {base} {{database_url}}"),
    )
    assert any("did not check out" in m and "env.py ran the migrations on" in m for m in said)


def test_the_starting_schema_from_the_apps_own_command(app_python: str) -> None:
    start = StartingSchema(command=f"{sys.executable} {APP / 'base.py'} {{database_url}}")
    result = run(app_python, start=start)
    assert got(result) == pairs(EXPECTED["static"]) | pairs(EXPECTED["roundtrip"])


def test_without_the_starting_schema_the_first_revision_fails(app_python: str) -> None:
    result = run(app_python, start=StartingSchema())
    unavailable = [f for f in result.findings if f.kind == "check/unavailable"]
    assert got(result) == pairs(EXPECTED["static"]) | {("check/unavailable", "a1")}
    assert "upgrade to OLD failed at `a1`: no such table: legacy" in unavailable[0].message


def test_a_failing_base_command_is_reported_with_the_static_findings(app_python: str) -> None:
    start = StartingSchema(command=f"{sys.executable} -c 'raise SystemExit(\"no init\")'")
    result = run(app_python, start=start)
    assert got(result) == pairs(EXPECTED["static"]) | {("check/unavailable", "migrations")}
    message = next(f.message for f in result.findings if f.kind == "check/unavailable")
    assert "starting schema failed: --base-command exited with code 1: no init" in message


def test_env_py_failures_say_what_failed_and_how_to_fix_it(app_python: str) -> None:
    """No -x: env.py's own error with its line; a bare script location whose env.py calls
    fileConfig(config.config_file_name): the fix (pass --config)."""
    result = run(app_python, x=())
    message = next(f.message for f in result.findings if f.kind == "check/unavailable")
    assert "env.py needs -x tenant=t1 (got {}) (env.py line 14: raise RuntimeError(" in message
    bare = AlembicProject(script_location=APP / "scripts", python=app_python)
    result = inspect_migrations(bare, None, "a1", start=StartingSchema(sql=APP / "base.sql"))
    message = next(f.message for f in result.findings if f.kind == "check/unavailable")
    assert message.endswith("(env.py calls fileConfig(): pass --config alembic.ini)")


def test_without_the_apps_interpreter_the_report_is_still_written(tmp_path: Path) -> None:
    """The revisions import the application, absent from compatcheck's environment: exit 3,
    and -o holds the static findings, the path and the one-line reason."""
    out = tmp_path / "report.json"
    argv = ["--config", str(INI), "-x", "tenant=t1", "--base-sql", str(APP / "base.sql")]
    argv += ["--old", "a1", "--new", "c3", "--format", "json", "-o", str(out), "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "compatcheck", "migrations", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(out.read_text())
    kinds = {(f["kind"], f["subject"]) for f in report["findings"]}
    assert kinds == pairs(EXPECTED["static"]) | {("check/unavailable", "migrations")}
    assert report["migrations"]["downgrade_path"] == EXPECTED["path"]
    assert report["migrations"]["roundtrip"]["failure"]["error"] == (
        "No module named 'fixtureapp' (pass --python with the application's own interpreter)"
    )
    assert done.stderr.strip().splitlines()[-1].startswith("compatcheck: could not evaluate:")


def test_a_helper_that_dies_is_one_finding(tmp_path: Path) -> None:
    """An interpreter that is not Python (it exits at once): unavailable, with its exit code."""
    dead = tmp_path / "python"
    dead.write_text("#!/bin/sh\necho 'broken interpreter' >&2\nexit 7\n")
    dead.chmod(0o755)
    bare = AlembicProject(script_location=APP / "scripts", python=str(dead))
    result = inspect_migrations(bare, None, "a1")
    assert got(result) == {
        ("check/unavailable", "migrations"),
        ("migrations/downgrade-destructive", "a1"),  # static: drops items, legacy.flag
        ("migrations/new-data-removed", "a1"),  # the downgrade plan, judged statically
    }
    message = next(f.message for f in result.findings if f.kind == "check/unavailable")
    assert "the Alembic helper exited (code 7): broken interpreter" in message


def test_cli_refuses_bad_project_arguments(tmp_path: Path) -> None:
    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return run_here("migrations", *argv, "--old", "a1")

    done = cli("--config", str(INI), "--python", str(tmp_path / "nopython"))
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"compatcheck: error: --python {tmp_path / 'nopython'}: no such executable",
    )
    done = cli("--script-location", str(APP / "scripts"), "-x", "a=b")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "compatcheck: error: --name and -x need --config (the alembic.ini they apply to)",
    )
    done = cli("--config", str(INI), "--base-sql", str(tmp_path / "none.sql"))
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"compatcheck: error: --base-sql {tmp_path / 'none.sql'}: no such file"
    )


@pytest.mark.postgres
def test_every_broken_downgrade_on_postgresql(app_python: str, postgres_url: str) -> None:
    result = run(app_python, db_url=postgres_url)
    assert got(result) == pairs(EXPECTED["static"]) | pairs(EXPECTED["roundtrip"])
    trip = result.section.roundtrip
    assert trip is not None and trip.failure is not None
    assert trip.failure.revision == "c3"
    assert [f.revision for f in trip.later_failures] == ["b2"]


@pytest.mark.mysql
def test_every_broken_downgrade_on_mariadb_from_a_copy(app_python: str, mysql_url: str) -> None:
    """MariaDB has no database copy of its own: the template and the walk's database are filled
    table by table from their own CREATE statements; the walk names the same failures."""
    said = walks_to_every_failure(
        project(app_python), StartingSchema(sql=APP / "base.sql"), mysql_url
    )
    assert any(m.startswith("a copy of the database at OLD taken") for m in said), said
    assert not any(m.startswith("no more copies") for m in said), said


def test_tables_never_seeded_are_named_in_the_plan(app_python: str, tmp_path: Path) -> None:
    """A CHECK constraint the seeder does not satisfy (not a value list, which it seeds from):
    the downgrade plan's status (printed by every format) says the data check was partial and
    names the table; a value list is seeded from the list."""
    base = tmp_path / "base.sql"
    base.write_text(
        "CREATE TABLE legacy (id INTEGER PRIMARY KEY, "
        "label VARCHAR(80) NOT NULL CHECK (length(label) >= 50));\n"
        "CREATE TABLE switch (id INTEGER PRIMARY KEY, "
        "state VARCHAR(3) NOT NULL CHECK (state IN ('ON', 'OFF')));\n"
    )
    result = run(app_python, start=StartingSchema(sql=base))
    plan = result.section.plan("downgrade")
    assert plan is not None and plan.status is not None
    assert plan.status.endswith(
        "data check partial: seeded 2/3 tables; not seeded: `legacy` (CHECK constraint failed: "
        "length(label) >= 50)"
    )


def test_the_helper_runs_on_the_applications_python() -> None:
    """The helper runs in applications' interpreters: Python 3.8 syntax, and no compatcheck
    import (the application's environment does not have compatcheck)."""
    import ast

    from compatcheck.migrations.sources.alembic.remote import HELPER

    tree = ast.parse(HELPER.read_text(), feature_version=(3, 8))
    imported = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert not {m for m in imported if m.split(".")[0] == "compatcheck"}
