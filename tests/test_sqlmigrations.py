"""SQL-file migrations (golang-migrate, goose, dbmate, Flyway) through the real CLI: every case of
``fixtures/sqlmigrations/<framework>/<case>`` gives its exact findings statically and after the
round trip on SQLite, PostgreSQL and MariaDB, and nothing is left on the servers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from compatcheck.cli import main
from compatcheck.migrations import inspect_migrations

from .conftest import scratch_databases

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "sqlmigrations"
#: ``live/`` holds cases about a live database, not a framework's folder.
CASES = sorted(
    f"{p.parent.parent.name}/{p.parent.name}"
    for p in ROOT.glob("*/*/expected.yaml")
    if p.parent.parent.name != "live"
)


def expected(case: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / case / "expected.yaml").read_text())
    return data


def pairs(items: list[list[str]] | None) -> set[tuple[str, str]]:
    return {(k, str(s)) for k, s in items or []}


def report(case: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """``compatcheck migrations`` on the case's window, the JSON report it wrote."""
    exp = expected(case)
    out = tmp_path / "report.json"
    argv = ["migrations", "--script-location", str(ROOT / case), "-q", "--format", "json"]
    argv += ["--old", str(exp["old"]), "--new", str(exp["new"]), "-o", str(out), *extra]
    code = main(argv)
    return code, json.loads(out.read_text())


def found(doc: dict[str, Any]) -> set[tuple[str, str]]:
    kinds = [(f["kind"], f["subject"]) for f in doc["findings"]]
    assert len(kinds) == len(set(kinds)), "one finding per (kind, subject)"
    return set(kinds)


def test_every_framework_has_the_cases() -> None:
    wanted = {"clean_reversible", "empty_down", "dishonest_down", "missing_down"}
    wanted |= {"recreated_column", "failing_down"}
    for framework in ("golang-migrate", "goose", "dbmate", "flyway"):
        have = {c.split("/")[1] for c in CASES if c.startswith(framework + "/")}
        assert wanted <= have, framework
        if framework != "golang-migrate":  # it has no way to opt a file out of its transaction
            assert "non_transactional" in have, framework


@pytest.mark.parametrize("case", CASES)
def test_static(case: str, tmp_path: Path) -> None:
    exp = expected(case)
    _code, doc = report(case, tmp_path, "--static")
    assert found(doc) == pairs(exp["static"]) | pairs(exp.get("without_roundtrip"))
    section = doc["migrations"]
    assert section["framework"] == case.split("/")[0]
    assert section["mode"] == "static"
    assert section["downgrade_path"] == [str(v) for v in exp["path"]]
    if "recommended" in exp:
        assert section["recommended"] == exp["recommended"]


def _roundtrip(case: str, engine: str, tmp_path: Path, *extra: str) -> None:
    exp = expected(case)
    _code, doc = report(case, tmp_path, *extra)
    want = (
        pairs(exp["static"])
        | pairs(exp.get("roundtrip"))
        | pairs((exp.get("engines") or {}).get(engine))
    )
    assert found(doc) == want
    section = doc["migrations"]
    assert section["mode"] == "roundtrip"
    assert section["engine"] == engine
    assert section["roundtrip"]["status"] != "unavailable", section["roundtrip"]
    if "recommended" in exp:
        assert section["recommended"] == exp["recommended"]


@pytest.mark.parametrize("case", CASES)
def test_roundtrip_sqlite(case: str, tmp_path: Path) -> None:
    _roundtrip(case, "sqlite", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("engine", "url_fixture"),
    [
        pytest.param("postgresql", "postgres_url", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("mysql", "mysql_url", marks=pytest.mark.mysql, id="mariadb"),
    ],
)
@pytest.mark.parametrize("case", CASES)
def test_roundtrip_on_a_server(
    case: str, engine: str, url_fixture: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The round trip on a real server leaves no scratch database behind."""
    url: str = request.getfixturevalue(url_fixture)
    before = scratch_databases(url)
    _roundtrip(case, engine, tmp_path, "--db-url", url)
    assert scratch_databases(url) == before


def test_dirty_golang_migrate_version_on_the_live_database(tmp_path: Path) -> None:
    """A live database whose ``schema_migrations`` row is dirty: its own finding, and the
    downgrade plan is unsafe (``migrate down`` refuses to run there)."""
    case = ROOT.parent / "sqlmigrations" / "live" / "dirty_version"
    exp = yaml.safe_load((case / "expected.yaml").read_text())
    db = tmp_path / "live.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript((case / "live.sql").read_text())
    url_file = tmp_path / "url"
    url_file.write_text(f"sqlite:///{db}\n")
    out = tmp_path / "report.json"
    argv = ["migrations", "--script-location", str(case / "migrations"), "--static", "-q"]
    argv += ["--old", exp["old"], "--new", exp["new"], "--format", "json", "-o", str(out)]
    code = main([*argv, "--live-db-url", f"file:{url_file}"])
    doc = json.loads(out.read_text())
    assert found(doc) == pairs(exp["static"]) | pairs(exp["live"])
    assert code == 0  # a downgrade concern: the code-only plan is safe, so it does not block
    plans = {p["name"]: p for p in doc["migrations"]["plans"]}
    assert not plans["downgrade"]["safe"]
    assert any(r.startswith("migrations/dirty-version 2:") for r in plans["downgrade"]["reasons"])
    assert doc["migrations"]["recommended"] == exp["recommended"]
    # The same files against a clean live version: no such finding.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_migrations SET dirty = false")
    main([*argv, "--live-db-url", f"file:{url_file}"])
    assert found(json.loads(out.read_text())) == pairs(exp["static"]) | {
        ("migrations/new-data-removed", "2")
    }


def test_check_reads_a_sql_folder_per_release(tmp_path: Path) -> None:
    """``check`` with ``migrations: {framework: dbmate, dir: ...}``: each release's folder gives
    its head, and the inspection runs the dbmate files (the recreated-column case)."""
    import shutil

    case = ROOT / "dbmate" / "recreated_column"
    exp = expected("dbmate/recreated_column")
    (tmp_path / "old").mkdir()
    shutil.copy(case / "20240101000001_items.sql", tmp_path / "old")
    shutil.copytree(case, tmp_path / "new", ignore=shutil.ignore_patterns("*.yaml"))
    prom = ROOT.parent / "expositions" / "node_app.prom"
    (tmp_path / "compatcheck.yaml").write_text(
        f"service: shop\nold: {{exposition: {prom}, migrations: old}}\n"
        f"new: {{exposition: {prom}, migrations: new}}\n"
        "migrations: {framework: dbmate, dir: new}\n"
    )
    out = tmp_path / "report.json"
    argv = ["check", "-c", str(tmp_path / "compatcheck.yaml"), "-q", "--format", "json"]
    assert main([*argv, "-o", str(out)]) == 1
    doc = json.loads(out.read_text())
    section = doc["migrations"]
    assert (section["framework"], section["old_head"], section["new_head"]) == (
        "dbmate",
        exp["old"],
        exp["new"],
    )
    assert section["roundtrip"]["status"] == "completed"
    assert found(doc) == pairs(exp["static"]) | pairs(exp["roundtrip"])


def test_bad_folders_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "1_a.up.sql").write_text("SELECT 1;")
    (mixed / "V1__a.sql").write_text("SELECT 1;")
    argv = ["migrations", "--script-location", str(mixed), "--old", "0", "--static", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "several frameworks (flyway, golang-migrate)" in err[0]
    assert main([*argv, "--framework", "golang-migrate"]) == 0
    capsys.readouterr()
    # goose takes `1_a.up.sql` for one of its files, and refuses it: named, exit 3.
    out = tmp_path / "r.json"
    assert main([*argv, "--framework", "goose", "--format", "json", "-o", str(out)]) == 3
    assert found(json.loads(out.read_text())) == {
        ("check/unavailable", "1"),
        ("migrations/downgrade-missing", "1"),  # nor a Down section
    }
    capsys.readouterr()
    (mixed / "V1__a.sql").unlink()
    assert main([*argv, "--framework", "flyway"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no flyway migration files in it" in err[0]
    assert main([*argv[:-2], "--old", "7", "--static", "--framework", "golang-migrate"]) == 2
    assert "OLD's head `7` is not a revision" in capsys.readouterr().err


def _seeded_folder(tmp_path: Path) -> Path:
    """goose steps whose second inserts the row id 1: compatcheck's own rows make it fail."""
    folder = tmp_path / "seeded"
    folder.mkdir()
    (folder / "001_items.sql").write_text(
        "-- +goose Up\nCREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL);\n"
        "-- +goose Down\nDROP TABLE items;\n"
    )
    (folder / "002_first.sql").write_text(
        "-- +goose Up\nINSERT INTO items (id, name) VALUES (1, 'first');\n"
        "-- +goose Down\nDELETE FROM items WHERE id = 1;\n"
    )
    return folder


def test_seeded_rows_are_blamed_only_when_the_upgrade_passes_without_them(tmp_path: Path) -> None:
    """An upgrade that fails on compatcheck's own rows runs again without rows in the tables
    that step touches, or without any when it names none (and says so); a step that fails
    either way (a Go migration) is not blamed on the rows."""
    folder = _seeded_folder(tmp_path)
    out = tmp_path / "r.json"
    argv = ["migrations", "--old", "1", "--new", "2", "-q", "--format", "json", "-o", str(out)]
    main([*argv, "--script-location", str(folder)])
    trip = json.loads(out.read_text())["migrations"]["roundtrip"]
    assert trip["status"] == "completed"
    # The step's INSERT names no table the reader records: run again without any rows.
    assert "made `2`'s upgrade fail (002_first.sql:2: UNIQUE" in trip["unseeded"]
    main([*argv, "--script-location", str(ROOT / "goose" / "go_migration")])
    trip = json.loads(out.read_text())["migrations"]["roundtrip"]
    assert trip["status"] == "upgrade-failed"
    assert "unseeded" not in trip
    assert not any("upgrade fail" in why for why in trip["seed_errors"].values())


def test_a_rerun_on_a_copy_at_old_does_not_upgrade_to_old_again(tmp_path: Path) -> None:
    """The copy was checked at OLD when it was opened: the rerun starts from there."""
    folder = _seeded_folder(tmp_path)
    said: list[str] = []
    result = inspect_migrations(folder, "1", "2", progress=said.append)
    trip = result.section.roundtrip
    assert trip is not None and trip.status == "completed" and trip.unseeded
    again = next(i for i, line in enumerate(said) if "again on a fresh database" in line)
    assert any("upgrading to OLD's head" in line for line in said[:again])
    assert not any("upgrading to OLD's head" in line for line in said[again:]), said[again:]
    assert any(line.startswith("upgrading to NEW's head") for line in said[again:])


def test_dialect_must_match_the_scratch_database(
    mysql_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["migrations", "--script-location", str(ROOT / "goose" / "clean_reversible")]
    argv += ["--old", "1", "--db-url", mysql_url, "--dialect", "postgresql", "-q"]
    assert main(argv) == 2
    assert "--dialect postgresql does not match the --db-url's database (mysql)" in (
        capsys.readouterr().err
    )
