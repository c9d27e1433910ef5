"""Predicting a downgrade that will fail, from the ops of a path alone.

Each case is a small history whose failure (or success) follows from what the database does:
a column dropped twice, a column added twice, a table dropped while another references it.
"""

from __future__ import annotations

from compatcheck.migrations import steps as s
from compatcheck.migrations.simulate import failing_downgrades
from compatcheck.migrations.sqlstatic import Reader
from compatcheck.migrations.steps import Op

UP, DOWN = "upgrade", "downgrade"


def test_down_re_adding_a_column_its_up_never_removed() -> None:
    # sematic 20221004183943: the up is commented out, the down adds `runs.exception` again.
    path = [
        ("1", UP, [Op(s.CREATE_TABLE, table="runs")]),
        ("2", UP, [Op(s.ADD_COLUMN, table="runs", column="exception")]),
        ("3", UP, []),
        ("3", DOWN, [Op(s.ADD_COLUMN, table="runs", column="exception", line=9)]),
        ("2", DOWN, [Op(s.DROP_COLUMN, table="runs", column="exception")]),
    ]
    ((step, op, reason),) = failing_downgrades(path)
    assert (step, op.line) == ("3", 9)
    assert reason == "column `runs.exception` already exists (created by the upgrade of `2`)"


def test_down_dropping_what_an_earlier_down_dropped() -> None:
    path = [
        ("1", UP, [Op(s.ADD_COLUMN, table="t", column="c")]),
        ("2", UP, [Op(s.CREATE_INDEX, table="t", name="ix")]),
        ("2", DOWN, [Op(s.DROP_COLUMN, table="t", column="c")]),
        ("1", DOWN, [Op(s.DROP_COLUMN, table="t", column="c"), Op(s.DROP_INDEX, name="ix")]),
    ]
    got = [(step, op.op, reason) for step, op, reason in failing_downgrades(path)]
    assert got == [
        ("1", s.DROP_COLUMN, "column `t.c` does not exist (removed by the downgrade of `2`)")
    ]


def test_if_exists_never_fails() -> None:
    path = [
        ("1", UP, [Op(s.DROP_TABLE, table="t")]),
        ("1", DOWN, [Op(s.DROP_TABLE, table="t", guarded=True)]),
    ]
    assert failing_downgrades(path) == []


def test_objects_the_path_never_mentioned_are_not_judged() -> None:
    path = [("1", DOWN, [Op(s.DROP_TABLE, table="legacy"), Op(s.DROP_INDEX, name="ix")])]
    assert failing_downgrades(path) == []


def test_dropping_a_referenced_table_first() -> None:
    path = [
        ("1", UP, [Op(s.CREATE_TABLE, table="users")]),
        ("2", UP, [Op(s.CREATE_TABLE, table="orders", references=("users",))]),
        ("2", DOWN, [Op(s.DROP_TABLE, table="users"), Op(s.DROP_TABLE, table="orders")]),
    ]
    ((step, op, reason),) = failing_downgrades(path)
    assert (step, op.op, op.table) == ("2", s.DROP_TABLE, "users")
    assert reason == "table `users` is still referenced by a foreign key of `orders`"
    assert failing_downgrades(path, foreign_keys=False) == []  # SQLite's default
    fine = [*path[:2], ("2", DOWN, [Op(s.DROP_TABLE, table="orders"), path[2][2][0]])]
    assert failing_downgrades(fine) == []


def test_a_dropped_foreign_key_column_no_longer_references() -> None:
    path = [
        ("1", UP, [Op(s.CREATE_TABLE, table="users"), Op(s.CREATE_TABLE, table="runs")]),
        ("2", UP, [Op(s.ADD_COLUMN, table="runs", column="user_id", references=("users",))]),
        ("2", DOWN, [Op(s.DROP_COLUMN, table="runs", column="user_id")]),
        ("1", DOWN, [Op(s.DROP_TABLE, table="users"), Op(s.DROP_TABLE, table="runs")]),
    ]
    assert failing_downgrades(path) == []


def test_renamed_table_carries_what_is_known() -> None:
    path = [
        ("1", UP, [Op(s.CREATE_TABLE, table="a"), Op(s.ADD_COLUMN, table="a", column="c")]),
        ("2", UP, [Op(s.RENAME_TABLE, table="a", name="b")]),
        ("2", DOWN, [Op(s.DROP_COLUMN, table="a", column="c")]),
    ]
    ((step, op, reason),) = failing_downgrades(path)
    assert (step, op.op, op.table, op.column) == ("2", s.DROP_COLUMN, "a", "c")
    assert reason == "table `a` does not exist (removed by the upgrade of `2`)"


def test_indexes_go_with_their_table_and_mysql_names_are_per_table() -> None:
    path = [
        ("1", UP, [Op(s.CREATE_TABLE, table="a"), Op(s.CREATE_TABLE, table="b")]),
        (
            "2",
            UP,
            [Op(s.CREATE_INDEX, table="a", name="ix"), Op(s.CREATE_INDEX, table="b", name="ix")],
        ),
        (
            "2",
            DOWN,
            [Op(s.DROP_INDEX, table="a", name="ix"), Op(s.DROP_INDEX, table="b", name="ix")],
        ),
    ]
    assert failing_downgrades(path) == []
    dropped_with_table = [
        ("1", UP, [Op(s.CREATE_TABLE, table="a")]),
        ("2", UP, [Op(s.CREATE_INDEX, table="a", name="ix")]),
        ("3", DOWN, [Op(s.DROP_TABLE, table="a")]),
        ("2", DOWN, [Op(s.DROP_INDEX, name="ix")]),
    ]
    ((step, op, reason),) = failing_downgrades(dropped_with_table)
    assert (step, op.op, op.name) == ("2", s.DROP_INDEX, "ix")
    assert reason == "index `ix` does not exist (removed by the downgrade of `3`)"


def test_upgrades_only_teach() -> None:
    path = [("1", UP, [Op(s.DROP_TABLE, table="t")]), ("2", UP, [Op(s.DROP_TABLE, table="t")])]
    assert failing_downgrades(path) == []


def test_a_swap_by_renames_read_from_sql_does_not_confuse_the_replay() -> None:
    # sematic 20230217235835 / 20230221004041: users_tmp swapped in for users, and back.
    reader = Reader("postgresql")
    steps = [
        ("1", ["CREATE TABLE users (email TEXT PRIMARY KEY)"], ["DROP TABLE users"]),
        ("2", ["CREATE TABLE users_tmp (id INT NOT NULL, email TEXT)"], ["DROP TABLE users_tmp"]),
        (
            "3",
            [
                "ALTER TABLE users RENAME TO users_backup",
                "ALTER TABLE users_tmp RENAME TO users",
                "DROP TABLE users_backup",
            ],
            ["ALTER TABLE users RENAME TO users_tmp", "CREATE TABLE users (email TEXT)"],
        ),
    ]
    path: list[tuple[str, str, tuple[Op, ...]]] = []
    downs: list[tuple[str, str, tuple[Op, ...]]] = []
    for step, up, down in steps:
        up_code, down_code = reader.step([(x, 1) for x in up], [(x, 1) for x in down])
        assert down_code is not None
        path.append((step, UP, up_code.ops))
        downs.insert(0, (step, DOWN, down_code.ops))
    assert failing_downgrades(path + downs) == []
