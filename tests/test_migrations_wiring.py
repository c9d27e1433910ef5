"""The static reader wired into every source: one reader per SQL history, unread statements named
once (``statement-unread``), downgrades predicted to fail (``downgrade-will-fail``) and what the
round trip saw winning over the prediction (``downgrade-failed`` with ``predicted``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from compatcheck.migrations import steps as s
from compatcheck.migrations.checks import static_findings
from compatcheck.migrations.findings import FindingSet, roundtrip_findings
from compatcheck.migrations.graph import History, downgrade_path
from compatcheck.migrations.section import RoundTrip, StepFailure
from compatcheck.migrations.sources.alembic.analyser import Analyser
from compatcheck.migrations.sources.sqlfiles import LinearOrder, SqlFilesSource
from compatcheck.migrations.steps import Code, Op, Step
from compatcheck.migrations.willfail import ran_downgrades, reconcile
from compatcheck.model import Finding
from tests.test_migrations_core import WORDING

FAILED = "migrations/downgrade-failed"
WILL = "migrations/downgrade-will-fail"


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _history(tmp: Path, ups: list[list[Op]], downs: list[list[Op]]) -> History:
    ids = [str(i + 1) for i in range(len(ups))]
    steps = {
        sid: Step(
            sid,
            tmp / f"{sid}.sql",
            (ids[i - 1],) if i else (),
            Code(False, False, tuple(ups[i])),
            Code(False, False, tuple(downs[i])),
        )
        for i, sid in enumerate(ids)
    }
    return History(tmp, steps, (ids[-1],), LinearOrder(ids), WORDING)


def _found(
    history: History, old: str | None, new: str, dialect: str = "postgresql"
) -> dict[tuple[str, str], Finding]:
    path = downgrade_path(history, new, old)
    assert path is not None
    return {(f.kind, f.subject): f for f in static_findings(history, path, dialect)}


def test_a_type_change_is_judged_against_what_an_earlier_step_created(tmp_path: Path) -> None:
    """One reader per history: step 2 widens a column step 1 created (no type-changed); read
    step by step without memory it would be a type change of a column of unknown type."""
    folder = _write(
        tmp_path / "m",
        {
            "1_a.up.sql": "CREATE TABLE t (id int PRIMARY KEY, n int);",
            "1_a.down.sql": "DROP TABLE t;",
            "2_b.up.sql": "ALTER TABLE t ALTER COLUMN n TYPE bigint;",
            "2_b.down.sql": "ALTER TABLE t ALTER COLUMN n TYPE int;",
        },
    )
    history = SqlFilesSource("golang-migrate", folder, "postgresql").history()
    up = history.steps["2"].up
    assert up is not None and [o.op for o in up.ops] == [s.WIDEN_TYPE]
    assert ("migrations/old-code-incompatible", "2") not in _found(history, "1", "2")


def test_a_downgrade_dropping_what_an_earlier_downgrade_dropped_is_predicted(
    tmp_path: Path,
) -> None:
    add = Op(s.ADD_COLUMN, table="t", column="c", line=1)
    drop = Op(s.DROP_COLUMN, table="t", column="c", source="DROP c", line=4)
    create = Op(s.CREATE_TABLE, table="t")
    history = _history(tmp_path, [[create], [add], []], [[], [drop], [drop]])
    found = _found(history, "1", "3")
    predicted = found[(WILL, "2")]
    assert predicted.evidence["reasons"] == [
        "column `t.c` does not exist (removed by the downgrade of `3`)"
    ]
    assert (predicted.evidence["line"], predicted.evidence["statement"]) == (4, "DROP c")
    assert (WILL, "3") not in found


def test_a_referenced_table_dropped_first_fails_only_where_foreign_keys_are_enforced(
    tmp_path: Path,
) -> None:
    users, orders = (
        Op(s.CREATE_TABLE, table="users"),
        Op(s.CREATE_TABLE, table="orders", references=("users",)),
    )
    down = [Op(s.DROP_TABLE, table="users"), Op(s.DROP_TABLE, table="orders")]
    history = _history(tmp_path, [[users, orders]], [down])
    assert (WILL, "1") in _found(history, None, "1", "postgresql")
    assert (WILL, "1") not in _found(history, None, "1", "sqlite")


def test_a_downgrade_not_read_in_full_stops_the_prediction(tmp_path: Path) -> None:
    """A down with a statement not read may have put back what the next down drops."""
    add = Op(s.ADD_COLUMN, table="t", column="c")
    drop = Op(s.DROP_COLUMN, table="t", column="c")
    history = _history(tmp_path, [[add], []], [[drop], [drop]])
    unread = s.Unknown(3, "DO $$ ... $$", "DO statement not judged")
    step = history.steps["2"]
    history.steps["2"] = Step(step.id, step.path, step.parents, step.up, Code(
        False, False, (drop,), unknown=(unread,)
    ))  # fmt: skip
    found = _found(history, None, "2")
    assert (WILL, "1") not in found and ("migrations/statement-unread", "2") in found


def test_the_same_drop_in_both_branches_of_a_dialect_test_is_not_a_double_drop(
    tmp_path: Path,
) -> None:
    """MLflow c1d2e3f4a5b6: ``if sqlite: batch.drop_index(ix) else: op.drop_index(ix)``."""
    create = Op(s.CREATE_INDEX, table="spans", name="ix")
    drops = [Op(s.DROP_INDEX, table="spans", name="ix"), Op(s.DROP_INDEX, name="ix")]
    history = _history(tmp_path, [[create]], [drops])
    assert (WILL, "1") not in _found(history, None, "1")


def _trip(history: History, trip: RoundTrip, predicted_at: str) -> FindingSet:
    path = downgrade_path(history, "3", "1")
    assert path is not None
    evidence = {"reasons": ["column `t.c` does not exist"], "line": 4}
    found = FindingSet([_predicted(predicted_at, evidence)])
    roundtrip_findings(found, history, path, trip, "sqlite")
    reconcile(found, trip, path)
    return found


def _predicted(rev: str, evidence: dict[str, object]) -> Finding:
    return Finding(WILL, rev, f"The downgrade of `{rev}` will fail: predicted.", evidence)


def test_what_the_round_trip_saw_wins_over_the_prediction(tmp_path: Path) -> None:
    history = _history(tmp_path, [[], [], []], [[], [], []])
    # It failed there: one finding, the observed message, the prediction kept as evidence.
    failed = RoundTrip("downgrade-failed", failure=StepFailure("downgrade", "2", "no column c"))
    (finding,) = _trip(history, failed, "2").findings()
    assert finding.message == "The downgrade of `2` failed on sqlite: no column c"
    assert finding.evidence["predicted"] and finding.evidence["error"] == "no column c"
    # It ran that downgrade without an error: the prediction goes.
    assert _trip(history, RoundTrip("completed"), "2").findings() == []
    # Before the failure at 2, step 3's downgrade ran cleanly: a prediction there goes too.
    assert _trip(history, failed, "3").findings()[0].kind == FAILED  # the observed one at 2
    assert not _trip(history, failed, "3").has(FAILED, "3")
    # The upgrade failed: no downgrade ran, the prediction stays.
    upgrade = RoundTrip("upgrade-failed", failure=StepFailure("upgrade to NEW", "3", "boom"))
    (kept,) = [f for f in _trip(history, upgrade, "2").findings() if f.kind == WILL]
    assert kept.message == "The downgrade of `2` will fail: predicted."


def test_ran_downgrades_are_those_the_round_trip_and_its_walk_reached(tmp_path: Path) -> None:
    history = _history(tmp_path, [[], [], [], []], [[], [], [], []])
    path = downgrade_path(history, "4", "1")
    assert path is not None and path.revisions == ("4", "3", "2")
    first = StepFailure("downgrade", "3", "x")
    assert ran_downgrades(RoundTrip("completed"), path) == {"4", "3", "2"}
    # The walk went on from a fresh database to the end of the path without another failure.
    assert ran_downgrades(RoundTrip("downgrade-failed", failure=first), path) == {"4", "3", "2"}
    # No walk (the user's own empty database): nothing after the failure is claimed.
    no_walk = RoundTrip("downgrade-failed", failure=first)
    assert ran_downgrades(no_walk, path, walked=False) == {"4", "3"}
    later = (StepFailure("downgrade", "2", "y"),)
    trip = RoundTrip("downgrade-failed", failure=first, later_failures=later)
    assert ran_downgrades(trip, path) == {"4", "3", "2"}
    assert ran_downgrades(RoundTrip("skipped", why="--static"), path) == set()
    # The walk passed over 2 (it defines no downgrade): reached, never claimed as run.
    passed = RoundTrip("downgrade-failed", failure=first, passed_over={"2": "not run"})
    assert ran_downgrades(passed, path) == {"4", "3"}
    # A failure no step names (the helper died, env.py raised before any step): no walk went
    # on after it, and nothing from it on is claimed.
    unnamed = StepFailure("downgrade", None, "the Alembic helper exited")
    assert ran_downgrades(RoundTrip("downgrade-failed", failure=unnamed), path) == set()
    trip = RoundTrip("downgrade-failed", failure=first, later_failures=(unnamed,))
    assert ran_downgrades(trip, path) == {"4", "3"}


def test_a_column_renamed_and_made_not_null_in_one_step_is_renamed_only(tmp_path: Path) -> None:
    """rebuilderd 20211122110050: a SQLite rebuild renames base_id → pkgbase_id NOT NULL."""
    up = [
        Op(s.RENAME_COLUMN, table="packages", column="base_id", name="pkgbase_id"),
        Op(s.ALTER_NULLABLE, table="packages", column="pkgbase_id", nullable=False),
    ]
    history = _history(tmp_path, [[], up], [[], []])
    finding = _found(history, "1", "2")[("migrations/old-code-incompatible", "2")]
    assert finding.evidence["reasons"] == ["column-renamed"]


def test_using_a_constant_destroys_the_values_on_the_way_up(tmp_path: Path) -> None:
    """goiardi 30: ``ALTER COLUMN ... TYPE json USING NULL`` empties every converted column."""
    folder = _write(
        tmp_path / "m",
        {
            "1_a.up.sql": "CREATE TABLE t (id int PRIMARY KEY, doc bytea);",
            "1_a.down.sql": "DROP TABLE t;",
            "2_b.up.sql": "ALTER TABLE t ALTER COLUMN doc TYPE json USING NULL;",
            "2_b.down.sql": "ALTER TABLE t ALTER COLUMN doc TYPE bytea USING NULL;",
        },
    )
    history = SqlFilesSource("golang-migrate", folder, "postgresql").history()
    found = _found(history, "1", "2")
    assert found[("migrations/upgrade-destructive", "2")].evidence["columns"] == ["t.doc"]
    assert found[("migrations/downgrade-destructive", "2")].evidence["columns"] == ["t.doc"]


def test_alembic_execute_statements_not_read_are_the_codes_unknowns() -> None:
    body = "def downgrade():\n    op.execute('FROB TABLE t')\n    op.execute('DROP TABLE u')\n"
    fn = ast.parse(body).body[0]
    assert isinstance(fn, ast.FunctionDef)
    analyser = Analyser({"downgrade": fn}, {})
    code = analyser.function("downgrade")
    assert code is not None
    assert [o.op for o in code.ops] == [s.DROP_TABLE]
    (unread,) = code.unknown
    assert (unread.line, unread.statement) == (2, "FROB TABLE t")
    again = analyser.function("downgrade")  # each function read starts afresh
    assert again is not None and len(again.unknown) == 1


def test_a_postgresql_folder_read_without_a_dialect_is_read_as_postgresql(tmp_path: Path) -> None:
    """``--static`` without --dialect/--db-url: the files' marks say PostgreSQL (a `$$` body),
    so the multi-clause ALTER is read in full, not named unread by SQLite's reading."""
    from compatcheck.migrations import inspect_migrations
    from compatcheck.migrations.sources.sqlfiles import guess_dialect

    folder = _write(
        tmp_path / "pg",
        {
            "1_a.up.sql": "CREATE TABLE t (id int PRIMARY KEY, a bytea, b bytea);\n"
            "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;",
            "1_a.down.sql": "DROP FUNCTION f(); DROP TABLE t;",
            "2_b.up.sql": "ALTER TABLE t ALTER COLUMN a TYPE json USING NULL, "
            "ALTER COLUMN b TYPE json USING NULL;",
            "2_b.down.sql": "ALTER TABLE t ALTER COLUMN a TYPE bytea USING NULL, "
            "ALTER COLUMN b TYPE bytea USING NULL;",
        },
    )
    assert guess_dialect(folder) == "postgresql"
    my = _write(tmp_path / "my", {"1_a.up.sql": "CREATE TABLE `t` (id int) ENGINE=InnoDB;"})
    assert guess_dialect(my) == "mysql"
    plain = _write(tmp_path / "plain", {"1_a.up.sql": "CREATE TABLE t (id int);"})
    assert guess_dialect(plain) == "sqlite"
    result = inspect_migrations(folder, "1", "2", static=True, framework="golang-migrate")
    found = {(f.kind, f.subject): f for f in result.findings}
    assert ("migrations/statement-unread", "2") not in found
    destroyed = found[("migrations/upgrade-destructive", "2")].evidence["columns"]
    assert destroyed == ["t.a", "t.b"]
