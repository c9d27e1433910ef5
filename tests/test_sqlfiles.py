"""The SQL-file readers and splitter: each tool's naming, versions, sections and transaction
markers, statements split by the database's rules with their lines, and the runner's
transaction semantics and version tables on a real SQLite database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from compatcheck.errors import InputError
from compatcheck.interrupts import Cancelled
from compatcheck.migrations.graph import UnknownRevision, downgrade_path, resolve
from compatcheck.migrations.scratch import scratch_database
from compatcheck.migrations.sources import open_source
from compatcheck.migrations.sources.sqlfiles import SqlFilesSource, detect
from compatcheck.migrations.sources.sqlfiles.splitting import split_statements
from compatcheck.migrations.steps import DROP_TABLE


def texts(sql: str, dialect: str) -> list[tuple[str, int]]:
    return [(s.text, s.line) for s in split_statements(sql, dialect)]


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def golang_migrate(folder: Path, versions: dict[str, tuple[str, str | None]]) -> Path:
    """A golang-migrate folder: ``NAME.up.sql`` and, unless None, ``NAME.down.sql`` per version
    (the tool's pairs of files, written as one entry each)."""
    files = {f"{name}.up.sql": up for name, (up, _) in versions.items()}
    files |= {f"{name}.down.sql": down for name, (_, down) in versions.items() if down is not None}
    return write(folder, files)


def flyway(
    folder: Path,
    versions: dict[str, tuple[str, str | None]],
    repeatable: dict[str, str] | None = None,
) -> Path:
    """A Flyway folder: ``V{VERSION__DESC}.sql`` and, unless None, its undo ``U{VERSION__DESC}.sql``
    per version, and ``R__{DESC}.sql`` per repeatable script."""
    files = {f"V{name}.sql": up for name, (up, _) in versions.items()}
    files |= {f"U{name}.sql": undo for name, (_, undo) in versions.items() if undo is not None}
    files |= {f"R__{name}.sql": text for name, text in (repeatable or {}).items()}
    return write(folder, files)


# --- splitting ------------------------------------------------------------------------------


def test_semicolons_in_strings_and_comments_do_not_split() -> None:
    sql = "-- a; comment\nINSERT INTO t VALUES ('a;b', \"c;d\"); /* x; y */\nSELECT 2;\n"
    assert texts(sql, "sqlite") == [("INSERT INTO t VALUES ('a;b', \"c;d\")", 2), ("SELECT 2", 3)]


def test_dollar_quoted_bodies_are_one_statement_on_postgres() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  DELETE FROM t;\n  RETURN 1;\nEND;\n$$ "
        "LANGUAGE plpgsql;\nSELECT $tag$ ; $tag$;\nDROP TABLE t;"
    )
    got = texts(sql, "postgresql")
    assert [line for _, line in got] == [1, 7, 8]
    assert got[0][0].endswith("LANGUAGE plpgsql") and "RETURN 1;" in got[0][0]
    assert got[2] == ("DROP TABLE t", 8)


def test_dollar_quoted_bodies_are_not_split_without_a_dialect() -> None:
    """A PostgreSQL folder read without --dialect/--db-url is split by SQLite's rules: SQLite has
    no dollar quotes, so a `$$` body there is never split (else the function's statements
    would be read as the migration's)."""
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  DELETE FROM t;\n  RETURN 1;\nEND;\n$$ "
        "LANGUAGE plpgsql;\nDROP TABLE t;"
    )
    got = texts(sql, "sqlite")
    assert [line for _, line in got] == [1, 7]
    assert "RETURN 1;" in got[0][0] and got[1] == ("DROP TABLE t", 7)


def test_delimiter_blocks_on_mariadb() -> None:
    sql = (
        "DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END //\nDELIMITER ;\n"
        "SELECT 'it\\'s;'; # trailing; comment\nSELECT 3;"
    )
    got = [(s.text, s.line) for s in split_statements(sql, "mysql", delimiter_lines=True)]
    assert got == [
        ("CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", 2),
        ("SELECT 'it\\'s;'", 4),
        ("SELECT 3", 5),
    ]
    # golang-migrate and dbmate send the text to the server: no DELIMITER command there.
    assert texts(sql, "mysql")[0][0].startswith("DELIMITER //")


def test_sqlite_trigger_body_is_kept_whole() -> None:
    sql = (
        "CREATE TRIGGER tr AFTER INSERT ON a BEGIN\n UPDATE a SET x = 1;\n DELETE FROM b;\n"
        "END;\nSELECT 1;"
    )
    assert [line for _, line in texts(sql, "sqlite")] == [1, 5]


def test_only_comments_is_no_statement() -> None:
    assert texts("-- nothing\n/* at all; */\n\n", "postgresql") == []


# --- the four formats -------------------------------------------------------------------------


def test_goose_sections_blocks_and_markers(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "00001_a.sql": "-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\n"
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
            "-- +goose StatementEnd\nCREATE INDEX CONCURRENTLY ix ON t (a);\n"
            "-- +goose Down\nDROP TABLE t; -- trailing\n",
            "00002_b.sql": "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${PREFIX}x (a int);\n",
            "00003_c.go": "package m\n",
            "00004_d.sql": "-- +goose Up\nCREATE TABLE y (a int)\n-- +goose Down\nDROP TABLE y;\n",
        },
    )
    source = SqlFilesSource("goose", folder, "postgresql")
    history = source.history()
    assert list(history.steps) == ["1", "2", "3", "4"]
    one = source.folder.migrations[0]
    assert [s.line for s in one.up.statements] == [4, 6]
    assert one.up.statements[0].text.startswith("CREATE FUNCTION")
    up = history.steps["1"].up
    assert up is not None and up.non_transactional == "-- +goose NO TRANSACTION"
    assert [o.op for o in history.steps["1"].down.ops] == [DROP_TABLE]  # type: ignore[union-attr]
    assert history.steps["2"].down is None  # no Down section: goose only moves the version
    assert history.steps["4"].up.raises  # type: ignore[union-attr]  # goose refuses: no `;`
    # ENVSUB is read as written: the statement is the step's unknown (statement-unread), not
    # a source note; the Go migration, which nothing can read or run, stays a file note.
    (envsub,) = history.steps["2"].up.unknown  # type: ignore[union-attr]
    assert envsub.line == 3 and "ENVSUB" in envsub.reason
    assert envsub.statement.startswith("CREATE TABLE ${PREFIX}x")
    notes = {(f.subject, f.evidence["line"]): f for f in source.notes(["2", "3"])}
    assert set(notes) == {("3", 1)}
    assert notes[("3", 1)].kind == "check/unavailable"
    assert "not executable here" in notes[("3", 1)].message


def test_dbmate_versions_options_and_missing_down(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "20240101000001_a.sql": "-- migrate:up transaction:false\nCREATE TABLE a (x int);\n"
            "-- migrate:down\nDROP TABLE a;\n",
            "20240101000002_b.sql": "-- migrate:up\nCREATE TABLE b (x int);\n",
            "notes.txt": "not a migration",
        },
    )
    history = SqlFilesSource("dbmate", folder).history()
    assert list(history.steps) == ["20240101000001", "20240101000002"]
    first = history.steps["20240101000001"]
    assert first.up.non_transactional == "-- migrate:up transaction:false"  # type: ignore[union-attr]
    assert first.up.ops[0].line == 2  # type: ignore[union-attr]
    assert first.down.ops[0].line == 4  # type: ignore[union-attr]
    second = history.steps["20240101000002"]
    assert second.down is None and second.up.raises  # type: ignore[union-attr]


def test_golang_migrate_versions_are_integers(tmp_path: Path) -> None:
    folder = golang_migrate(
        tmp_path,
        {
            "0009_a": ("CREATE TABLE a (x int);", "DROP TABLE a;"),
            "0010_b": ("CREATE TABLE b (x int);", None),
        },
    )
    history = SqlFilesSource("golang-migrate", folder).history()
    assert list(history.steps) == ["9", "10"]
    assert history.steps["10"].down is None
    assert resolve(history, "0009") == "9"
    assert resolve(history, "0") is None
    with pytest.raises(UnknownRevision):
        resolve(history, "11")


def test_a_releases_head_is_read_from_the_file_names_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check`` asks each release for its head: no statement is parsed for it (a history's
    statements are read once, by the inspection)."""
    from compatcheck.migrations import sqlstatic
    from compatcheck.migrations.releases import release_head

    folder = golang_migrate(
        tmp_path,
        {
            "0009_a": ("CREATE TABLE a (x int);", "DROP TABLE a;"),
            "0010_b": ("CREATE TABLE b (x int);", None),
        },
    )
    assert SqlFilesSource("golang-migrate", folder).history().heads == ("10",)

    def no_parse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a statement was parsed")

    monkeypatch.setattr(sqlstatic.sqlglot, "parse", no_parse)
    assert release_head(folder, "golang-migrate") == "10"
    assert SqlFilesSource("golang-migrate", folder).heads() == ("10",)


@pytest.mark.parametrize("unread", [False, True])
def test_a_prediction_names_the_upgrades_it_could_not_read(tmp_path: Path, unread: bool) -> None:
    """``downgrade-will-fail`` learns from every upgrade before it: where one ran a statement
    not read (which may have re-created the index), the message says the prediction may be
    wrong instead of stating it flat."""
    from compatcheck.migrations import inspect_migrations

    odd = " ALTER TABLE t FROBNICATE c;" if unread else ""
    folder = golang_migrate(
        tmp_path,
        {
            "1_t": ("CREATE TABLE t (id INT); CREATE INDEX ix ON t (id);", "DROP TABLE t;"),
            "2_ix": (f"DROP INDEX ix;{odd}", "DROP INDEX ix;"),
        },
    )
    result = inspect_migrations(folder, "1", "2", static=True, dialect="postgresql")
    (finding,) = [f for f in result.findings if f.kind == "migrations/downgrade-will-fail"]
    hedge = (
        "; the upgrade of `2` ran statements not read, which may make it wrong" if unread else ""
    )
    assert (finding.subject, finding.evidence["reasons"]) == (
        "2",
        ["index `ix` does not exist (removed by the upgrade of `2`)"],
    )
    assert finding.message == (
        "The downgrade of `2` will fail: index `ix` does not exist (removed by the upgrade of "
        "`2`), at `.down.sql` (2_ix.down.sql:1): `DROP INDEX ix` (predicted from the code of the "
        f"steps before it{hedge})."
    )


def test_same_named_indexes_on_two_mysql_tables_are_two(tmp_path: Path) -> None:
    """MySQL names indexes per table: ``ix`` on ``a`` and ``ix`` on ``b`` are two objects, so
    the second drop of the down (of an index the up already dropped) is predicted to fail."""
    from compatcheck.migrations import inspect_migrations

    folder = golang_migrate(
        tmp_path,
        {
            "1_t": (
                "CREATE TABLE a (x int); CREATE TABLE b (x int);\n"
                "CREATE INDEX ix ON a (x); CREATE INDEX ix ON b (x);",
                "DROP TABLE b; DROP TABLE a;",
            ),
            "2_ix": ("DROP INDEX ix ON b;", "DROP INDEX ix ON a;\nDROP INDEX ix ON b;"),
        },
    )
    result = inspect_migrations(folder, "1", "2", static=True, dialect="mysql")
    (finding,) = [f for f in result.findings if f.kind == "migrations/downgrade-will-fail"]
    assert (finding.subject, finding.evidence["line"], finding.evidence["reasons"]) == (
        "2",
        2,
        ["index `ix` does not exist (removed by the upgrade of `2`)"],
    )


def test_flyway_versions_undo_repeatable_and_placeholders(tmp_path: Path) -> None:
    folder = flyway(
        tmp_path,
        {
            "1_10__late": ("CREATE TABLE late (x int);", None),
            "1_2__early": ("CREATE TABLE ${schema}.early (x int);", "DROP TABLE early;"),
        },
        {"view": "CREATE VIEW v AS SELECT 1 AS one;"},
    )
    source = SqlFilesSource("flyway", folder)
    history = source.history()
    assert list(history.steps) == ["1.2", "1.10"]  # numeric order, not the names'
    assert history.steps["1.10"].down is None
    assert resolve(history, "V1_2") == "1.2"
    path = downgrade_path(history, "1.10", None)
    assert path is not None and path.revisions == ("1.10", "1.2")
    (placeholder,) = history.steps["1.2"].up.unknown  # type: ignore[union-attr]
    assert placeholder.line == 1 and "`${schema}`" in placeholder.reason
    (repeatable,) = source.notes(["1.2"])
    assert (repeatable.kind, repeatable.subject) == (
        "migrations/repeatable-not-undone",
        "R__view.sql",
    )
    assert "never undoes" in repeatable.message
    assert source.notes([]) == []  # nothing to roll back: no finding about the rollback


# --- detection --------------------------------------------------------------------------------


def test_detection(tmp_path: Path) -> None:
    goose = write(tmp_path / "g", {"001_a.sql": "-- +goose Up\nSELECT 1;\n"})
    assert detect(goose) == "goose"
    both = write(tmp_path / "b", {"1_a.up.sql": "SELECT 1;", "V1__a.sql": "SELECT 1;"})
    with pytest.raises(InputError, match=r"several frameworks \(flyway, golang-migrate\)"):
        detect(both)
    with pytest.raises(InputError, match="no migration files of a known framework"):
        detect(write(tmp_path / "e", {"README": "x"}))
    assert open_source(goose).framework == "goose"


# --- the runner on SQLite ---------------------------------------------------------------------


def _run(folder: Path, framework: str) -> tuple[list[object], sqlite3.Connection]:
    """Upgrade ``folder`` (once written) to the head and downgrade the last step on a scratch
    SQLite file; the results and a plain connection to what is left."""
    source = SqlFilesSource(framework, folder)
    history = source.history()
    with scratch_database(None) as scratch, scratch.engine.connect() as conn:
        runner = source.runner(scratch, conn)
        results: list[object] = [runner.upgrade(history.heads[0])]
        results.append(runner.downgrade([history.heads[0]]))
        conn.commit()
        copy = sqlite3.connect(":memory:")
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.backup(copy)  # type: ignore[attr-defined]
    return results, copy


def test_golang_migrate_failure_leaves_a_dirty_version(tmp_path: Path) -> None:
    folder = golang_migrate(
        tmp_path,
        {
            "1_a": ("CREATE TABLE a (x int);", "DROP TABLE a;"),
            "2_b": ("CREATE TABLE b (x int);\nINSERT INTO nope VALUES (1);", "DROP TABLE b;"),
        },
    )
    (up, _down), db = _run(folder, "golang-migrate")
    assert up is not None and up.revision == "2"  # type: ignore[attr-defined]
    assert up.error.startswith("2_b.up.sql:2: no such table: nope")  # type: ignore[attr-defined]
    assert db.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [(2, 1)]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "b" not in tables  # its sqlite3 driver wraps the file in one transaction


def test_goose_version_rows_and_no_transaction(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "001_a.sql": "-- +goose Up\nCREATE TABLE a (x int);\n-- +goose Down\nDROP TABLE a;\n",
            "002_b.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE b (x int);\n"
            "-- +goose Down\nDROP TABLE b;\nDROP TABLE nope;\n",
        },
    )
    (up, down), db = _run(folder, "goose")
    assert up is None and down is not None
    assert down.error.startswith("002_b.sql:6:")  # type: ignore[attr-defined]
    # Outside a transaction the first statement stays done: `b` is gone, the row stays.
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "b" not in tables
    rows = db.execute("SELECT version_id FROM goose_db_version ORDER BY id").fetchall()
    assert rows == [(0,), (1,), (2,)]


def test_flyway_history_rows_and_repeatables(tmp_path: Path) -> None:
    """Flyway's history table books every script run, in order: the versions, then the
    repeatable one (no version), then the undo of the last version (type UNDO_SQL)."""
    folder = flyway(
        tmp_path,
        {
            "1__a": ("CREATE TABLE a (x int);", None),
            "2__b": ("CREATE TABLE b (x int);", "DROP TABLE b;"),
        },
        {"v": "CREATE VIEW v AS SELECT x FROM a;"},
    )
    (up, down), db = _run(folder, "flyway")
    assert up is None and down is None
    rows = db.execute(
        "SELECT installed_rank, version, type, script FROM flyway_schema_history"
    ).fetchall()
    assert rows == [
        (1, "1", "SQL", "V1__a.sql"),
        (2, "2", "SQL", "V2__b.sql"),
        (3, None, "SQL", "R__v.sql"),
        (4, "2", "UNDO_SQL", "U2__b.sql"),
    ]


def test_runner_leaves_the_shared_connection_usable(tmp_path: Path) -> None:
    """The round trip seeds and inspects on the runner's connection between steps."""
    folder = write(
        tmp_path, {"1_a.up.sql": "CREATE TABLE a (x int);", "1_a.down.sql": "DROP TABLE a;"}
    )
    source = SqlFilesSource("golang-migrate", folder)
    with scratch_database(None) as scratch, scratch.engine.connect() as conn:
        runner = source.runner(scratch, conn)
        assert runner.upgrade("1") is None
        conn.execute(sa.text("INSERT INTO a VALUES (1)"))
        conn.rollback()  # SQLAlchemy's own transaction still works after the runner's
        assert conn.execute(sa.text("SELECT count(*) FROM a")).scalar_one() == 0
        assert runner.downgrade(["1"]) is None


# --- the runner on the servers ------------------------------------------------------------------


def _server_trip(folder: Path, framework: str, server: str, dialect: str) -> list[object]:
    source = SqlFilesSource(framework, folder, dialect)
    head = source.history().heads[0]
    with scratch_database(server) as scratch, scratch.engine.connect() as conn:
        runner = source.runner(scratch, conn)
        return [runner.upgrade(head), runner.downgrade(list(reversed(source.history().steps)))]


@pytest.mark.postgres
def test_goose_blocks_and_concurrently_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    """A plpgsql body in StatementBegin/End runs whole; `CREATE INDEX CONCURRENTLY` runs
    because the file says NO TRANSACTION (inside one, PostgreSQL refuses it)."""
    folder = write(
        tmp_path,
        {
            "001_f.sql": "-- +goose Up\nCREATE TABLE t (a int);\n-- +goose StatementBegin\n"
            "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  INSERT INTO t VALUES (1);\n"
            "  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n"
            "-- +goose Down\nDROP FUNCTION f();\nDROP TABLE t;\n",
            "002_ix.sql": "-- +goose NO TRANSACTION\n-- +goose Up\n"
            "CREATE INDEX CONCURRENTLY ix_t ON t (a);\n-- +goose Down\n"
            "DROP INDEX CONCURRENTLY ix_t;\n",
        },
    )
    assert _server_trip(folder, "goose", postgres_url, "postgresql") == [None, None]
    (folder / "002_ix.sql").write_text(
        "-- +goose Up\nCREATE INDEX CONCURRENTLY ix_t ON t (a);\n-- +goose Down\nDROP INDEX ix_t;\n"
    )
    up, _ = _server_trip(folder, "goose", postgres_url, "postgresql")
    assert up is not None and "cannot run inside a transaction block" in up.error  # type: ignore[attr-defined]


@pytest.mark.mysql
def test_flyway_delimiter_and_half_applied_failure_on_mariadb(
    tmp_path: Path, mysql_url: str
) -> None:
    """Flyway reads DELIMITER blocks; a failure after DDL says MariaDB kept the DDL."""
    folder = write(
        tmp_path,
        {
            "V1__p.sql": "CREATE TABLE t (a int);\nDELIMITER //\nCREATE PROCEDURE p() BEGIN\n"
            "  INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);\nEND //\nDELIMITER ;\n",
            "U1__p.sql": "DROP PROCEDURE p;\nDROP TABLE t;\n",
            "V2__bad.sql": "CREATE TABLE u (a int);\nINSERT INTO nope VALUES (1);\n",
        },
    )
    up, _ = _server_trip(folder, "flyway", mysql_url, "mysql")
    assert up is not None and up.revision == "2"  # type: ignore[attr-defined]
    assert up.error.startswith("V2__bad.sql:2:")  # type: ignore[attr-defined]
    assert "MariaDB committed the 1 statement(s) before it" in up.error  # type: ignore[attr-defined]


def test_statements_the_reader_cannot_read_are_named_once(tmp_path: Path) -> None:
    """A statement the SQL reader cannot read is the step's ``Code.unknown`` (named by the core
    as ``migrations/statement-unread`` with file, line, statement and reason), and never a
    source note as well."""
    from compatcheck.migrations.checks import static_findings

    folder = write(
        tmp_path,
        {"1_a.up.sql": "CREATE TABLE a (x int);\nFROB a;\n", "1_a.down.sql": "DROP TABLE a;"},
    )
    source = SqlFilesSource("golang-migrate", folder)
    history = source.history()
    assert source.notes(["1"]) == []
    path = downgrade_path(history, "1", None)
    assert path is not None
    found = {f.kind: f for f in static_findings(history, path, "postgresql")}
    assert set(found) == {"migrations/statement-unread", "migrations/downgrade-destructive"}
    finding = found["migrations/statement-unread"]
    assert finding.subject == "1"
    ev = finding.evidence
    assert (ev["file"], ev["line"], ev["statement"]) == ("1_a.up.sql", 2, "FROB a")
    assert ev["static_reading"] == "partial"
    assert ev["reason"] == "FROB A statement the SQL parser does not read"


@pytest.mark.postgres
def test_lone_concurrently_file_runs_with_golang_migrate_and_flyway(
    tmp_path: Path, postgres_url: str
) -> None:
    """golang-migrate sends a file as one query: a lone `CREATE INDEX CONCURRENTLY` runs outside
    a transaction block; Flyway runs such a script without a transaction, and refuses one that
    mixes it with transactional statements."""
    migrate = golang_migrate(
        tmp_path / "m",
        {
            "1_t": ("CREATE TABLE t (a int);", "DROP TABLE t;"),
            "2_ix": ("CREATE INDEX CONCURRENTLY ix_t ON t (a);", "DROP INDEX CONCURRENTLY ix_t;"),
        },
    )
    assert _server_trip(migrate, "golang-migrate", postgres_url, "postgresql") == [None, None]
    folder = flyway(
        tmp_path / "f",
        {
            "1__t": ("CREATE TABLE t (a int);", "DROP TABLE t;"),
            "2__ix": ("CREATE INDEX CONCURRENTLY ix_t ON t (a);", "DROP INDEX ix_t;"),
        },
    )
    assert _server_trip(folder, "flyway", postgres_url, "postgresql") == [None, None]
    (folder / "V2__ix.sql").write_text(
        "CREATE TABLE u (a int);\nCREATE INDEX CONCURRENTLY ix_t ON t (a);"
    )
    up, _ = _server_trip(folder, "flyway", postgres_url, "postgresql")
    assert up is not None and "both transactional and non-transactional" in up.error  # type: ignore[attr-defined]


TRIGGER = (
    "CREATE TABLE t (a int);\n"
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN\n"
    "  IF NEW.a < 0 THEN SET NEW.a = 0; END IF;\n"
    "  SET NEW.a = CASE WHEN NEW.a > 9 THEN 9 ELSE NEW.a END;\n"
    "END;\n"
    "INSERT INTO t VALUES (-5);\n"
)


def test_mariadb_compound_statements_without_delimiter() -> None:
    """golang-migrate and dbmate send a file to the server, which reads a trigger's
    ``BEGIN ... END`` (with ``IF``/``CASE`` inside) as one statement."""
    assert [line for _, line in texts(TRIGGER, "mysql")] == [1, 2, 6]


@pytest.mark.mysql
def test_golang_migrate_trigger_on_mariadb(tmp_path: Path, mysql_url: str) -> None:
    folder = write(
        tmp_path, {"1_t.up.sql": TRIGGER, "1_t.down.sql": "DROP TRIGGER tr;\nDROP TABLE t;\n"}
    )
    assert _server_trip(folder, "golang-migrate", mysql_url, "mysql") == [None, None]


def test_cancel_stops_before_the_next_version_up_and_down(tmp_path: Path) -> None:
    """A run closing between two steps: the step done stays done (and booked), the next one
    never starts, and Cancelled propagates instead of becoming a failed step."""
    folder = golang_migrate(
        tmp_path,
        {
            "1_a": ("CREATE TABLE a (x int);", "DROP TABLE a;"),
            "2_b": ("CREATE TABLE b (x int);", "DROP TABLE b;"),
        },
    )
    source = SqlFilesSource("golang-migrate", folder)
    asked: list[int] = []

    def closing_after_one_step() -> bool:
        asked.append(1)
        return len(asked) > 1

    with scratch_database(None) as scratch, scratch.engine.connect() as conn:
        runner = source.runner(scratch, conn)
        runner.cancelled = closing_after_one_step  # type: ignore[attr-defined,method-assign]
        with pytest.raises(Cancelled, match="stopped before `2`"):
            runner.upgrade("head")
        conn.commit()
        tables = set(sa.inspect(conn).get_table_names())
        assert "a" in tables and "b" not in tables
        with pytest.raises(Cancelled, match="stopped before `1`"):
            runner.downgrade(["1"])
        assert "a" in set(sa.inspect(conn).get_table_names())
