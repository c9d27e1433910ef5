"""The shop's golang-migrate twin gives the Alembic shop's verdicts, findings and plans.

fixtures/services/shop/vN/sql/<engine>/ translate each Alembic revision of the same release
(flaws included) into golang-migrate files; fixtures/demo/sqlshop*.yaml are the demo configs with
the migrations read from there. Both pairs (v2 → v1, NO-GO; v3 → v2, GO) are checked end to end
(both releases started, scratch databases migrated, round trip, code-only trial) on SQLite and
PostgreSQL and MariaDB, and compared with the Alembic run on the same engine modulo the mapping
below.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from compatcheck.capture import run_check
from compatcheck.config import load_config, parse_config
from compatcheck.engine import EvaluateOptions
from compatcheck.report import Report
from tests.conftest import DemoRun, scratch_databases

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"

#: Alembic revision → golang-migrate version of the same migration.
VERSIONS = {"1a0c0ffee001": "1", "2b0c0ffee002": "2", "2b0c0ffee003": "3", "3c0c0ffee004": "4"}

#: Alembic config → its twin.
TWINS = {"compatcheck.yaml": "sqlshop.yaml", "compatible.yaml": "sqlshop-compatible.yaml"}

#: The twin's migration findings, read from the SQL files before running: v2 → v1 renames
#: `orders.customer` (OLD's code breaks on NEW's schema), its down drops `payment_method`, version
#: 3's down drops `refunds` (NEW-era rows go with them); v3 → v2 only adds and drops an index.
EXPECTED = {
    "sqlshop.yaml": {
        ("migrations/old-code-incompatible", "2"),
        ("migrations/downgrade-destructive", "2"),
        ("migrations/downgrade-destructive", "3"),
        ("migrations/new-data-removed", "3"),
    },
    "sqlshop-compatible.yaml": set(),
}

pytestmark = pytest.mark.slow


def _on(name: str, tmp_path: Path, server_url: str | None, folder: str = "sqlite") -> Report:
    """``check -c fixtures/demo/NAME`` judged as the CLI does, on SQLite or on a server (the
    twin then reads sql/postgres or sql/mariadb: the files differ from SQLite's only where the
    engines spell an auto-increment key or ``DROP INDEX`` differently)."""
    # Written elsewhere, so the release trees and consumers are given as absolute paths.
    text = (DEMO / name).read_text(encoding="utf-8").replace("../", f"{DEMO.parent}/")
    if server_url is not None:
        text = text.replace("database: sqlite", f'database: "{server_url}"')
        text = text.replace("dir: sql/sqlite", f"dir: sql/{folder}")
    config = parse_config(text, tmp_path / name)
    assert config.consumers == load_config(DEMO / name).consumers
    return run_check(config).evaluate(EvaluateOptions(consumers=config.consumers))


def _as_versions(value: Any) -> Any:
    """``value`` (JSON) with every Alembic revision id written as the twin's version."""
    text = json.dumps(value)
    for revision, version in VERSIONS.items():
        text = text.replace(revision, version)
    return json.loads(text)


def _shape(report: Report) -> dict[str, Any]:
    """What must match: verdict, (kind, subject) of every finding, heads, path and plans."""
    assert report.migrations is not None
    section = report.migrations.to_json()
    trial = section["code_only_trial"]
    return {
        "verdict": report.verdict,
        "findings": sorted([rf.finding.kind, rf.finding.subject] for rf in report.findings),
        "heads": [section["old_head"], section["new_head"]],
        "path": section["downgrade_path"],
        "plans": section["plans"],
        "recommended": section["recommended"],
        "trial": [trial["verified"], trial["safe"], trial["replayed"], trial["failures"]],
    }


def _compare(alembic: Report, twin: Report, name: str) -> None:
    shape = _shape(twin)
    assert shape == _as_versions(_shape(alembic))
    migrations = {(k, s) for k, s in shape["findings"] if k.startswith("migrations/")}
    assert migrations == EXPECTED[name]
    assert shape["trial"][0] is True, "the code-only trial ran on NEW's schema"
    assert twin.migrations is not None and twin.migrations.framework == "golang-migrate"


def test_the_twins_configs_differ_only_in_where_the_migrations_are() -> None:
    for alembic, twin in TWINS.items():
        a, b = load_config(DEMO / alembic), load_config(DEMO / twin)
        assert a.migrations is not None and b.migrations is not None
        assert (a.migrations.framework, b.migrations.framework) == ("auto", "golang-migrate")
        assert (a.readiness, a.warmup, a.consumers) == (b.readiness, b.warmup, b.consumers)
        for x, y in ((a.old, b.old), (a.new, b.new)):
            # Same app code, started the same way (`line` is where the config says so).
            assert dataclasses.replace(x, line=0) == dataclasses.replace(y, line=0)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_on_sqlite_matches_the_alembic_shop(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, isolated_tmp: Path
) -> None:
    # The Alembic side on SQLite is the session's run of the demo (shared with test_check_demo).
    run: DemoRun = request.getfixturevalue(
        "demo_check" if name == "compatcheck.yaml" else "compatible_check"
    )
    config = load_config(DEMO / name)
    alembic = run.result.evaluate(EvaluateOptions(consumers=config.consumers))
    twin = _on(TWINS[name], tmp_path, None)
    _compare(alembic, twin, TWINS[name])
    trial = twin.migrations.to_json()["code_only_trial"] if twin.migrations else {}
    assert trial["prepared"] == "copy of NEW's migrated database"
    assert list(isolated_tmp.iterdir()) == []


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_on_a_server_matches_the_alembic_shop(
    name: str, engine: str, tmp_path: Path, isolated_tmp: Path, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue("postgres_url" if engine == "postgres" else "mysql_url")
    before = scratch_databases(url)
    alembic = _on(name, tmp_path, url)
    twin = _on(TWINS[name], tmp_path, url, engine)
    _compare(alembic, twin, TWINS[name])
    trial = twin.migrations.to_json()["code_only_trial"] if twin.migrations else {}
    # On a server the trial's database is migrated by running NEW's SQL files, not copied.
    assert (trial["database"], trial["prepared"]) == ("server", "migrated with NEW's scripts")
    assert scratch_databases(url) == before
    assert list(isolated_tmp.iterdir()) == []
