"""The SQL reader: each statement kind per dialect, type widenings, rebuilds, unknowns.

Expected ops are written from the statements' meaning (what the database does when it runs
them), not from running the reader.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compatcheck.migrations import steps as s
from compatcheck.migrations.sqlstatic import ANY, Reader, analyse, parse_sql
from compatcheck.migrations.typechange import widens

DIALECTS = ("postgresql", "mysql", "sqlite")
Row = tuple[str, str | None, str | None, str | None]


def ops(sql: str, dialect: str) -> list[Row]:
    """(op, table, column, name) of every op of ``sql``'s statements (one per ``;``)."""
    code = analyse([(stmt, i + 1) for i, stmt in enumerate(sql.split(";")) if stmt], dialect)
    assert not code.unknown, code.unknown
    return [(o.op, o.table, o.column, o.name) for o in code.ops]


def one(sql: str, dialect: str) -> s.Op:
    code = analyse([(sql, 7)], dialect)
    assert not code.unknown, code.unknown
    assert len(code.ops) == 1, code.ops
    return code.ops[0]


# --- tables -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_create_drop_rename_table(dialect: str) -> None:
    assert ops("CREATE TABLE IF NOT EXISTS t (id INT)", dialect) == [
        ("create_table", "t", None, None)
    ]
    assert ops("CREATE TABLE t2 AS SELECT id FROM t", dialect) == [
        ("create_table", "t2", None, None)
    ]
    assert ops("DROP TABLE IF EXISTS t", dialect) == [("drop_table", "t", None, None)]
    assert one("DROP TABLE IF EXISTS t", dialect).guarded
    assert not one("DROP TABLE t", dialect).guarded
    assert ops("ALTER TABLE t RENAME TO t2", dialect) == [("rename_table", "t", None, "t2")]


def test_drop_several_tables_and_mysql_rename_table() -> None:
    assert ops("DROP TABLE a, b", "postgresql") == [
        ("drop_table", "a", None, None),
        ("drop_table", "b", None, None),
    ]
    assert ops("RENAME TABLE a TO b, `db`.`c` TO d", "mysql") == [
        ("rename_table", "a", None, "b"),
        ("rename_table", "c", None, "d"),
    ]


def test_temporary_table_is_nothing_to_undo() -> None:
    assert ops("CREATE TEMPORARY TABLE scratch (id INT)", "postgresql") == []


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ('ALTER TABLE "public"."Users" DROP COLUMN "Email"', "postgresql"),
        ("ALTER TABLE `Users` DROP COLUMN `Email`", "mysql"),
        ('ALTER TABLE "Users" DROP COLUMN "Email"', "sqlite"),
        ("ALTER TABLE users DROP email", "mysql"),
    ],
)
def test_quoting_and_schema_prefix_do_not_matter(sql: str, dialect: str) -> None:
    assert ops(sql, dialect) == [("drop_column", "users", "email", None)]


# --- columns ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", ANY])
def test_rename_without_the_column_keyword_renames_a_column(dialect: str) -> None:
    # sqlglot reads "rename the table to a" and drops "TO b"; PostgreSQL and SQLite rename a.
    assert ops("ALTER TABLE t RENAME a TO b", dialect) == [("rename_column", "t", "a", "b")]


def test_rename_without_column_is_no_mysql() -> None:
    (unknown,) = analyse([("ALTER TABLE t RENAME a TO b", 2)], "mysql").unknown
    assert unknown.line == 2 and "MySQL" in unknown.reason


def test_drop_key_is_mysql_only() -> None:
    assert ops("ALTER TABLE t DROP KEY k", "mysql") == [("drop_index", "t", None, "k")]
    assert ops("ALTER TABLE t DROP KEY k", ANY) == [("drop_index", "t", None, "k")]
    (unknown,) = analyse([("ALTER TABLE t DROP KEY k", 1)], "postgresql").unknown
    assert unknown.reason == "ALTER TABLE action `DROP KEY k` the SQL parser does not read"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_add_column_nullability_default_generated(dialect: str) -> None:
    nn = one("ALTER TABLE t ADD COLUMN c INT NOT NULL", dialect)
    assert (nn.op, nn.table, nn.column, nn.nullable, nn.server_default) == (
        "add_column",
        "t",
        "c",
        False,
        False,
    )
    with_default = one("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0", dialect)
    assert (with_default.nullable, with_default.server_default) == (False, True)
    assert one("ALTER TABLE t ADD COLUMN c TEXT", dialect).nullable is True
    fk = one("ALTER TABLE t ADD COLUMN u INT REFERENCES users (id)", dialect)
    assert fk.references == ("users",)


def test_generated_column() -> None:
    op = one("ALTER TABLE t ADD COLUMN g INT GENERATED ALWAYS AS (a + 1) STORED", "postgresql")
    assert op.generated and op.server_default


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rename_and_drop_column(dialect: str) -> None:
    assert ops("ALTER TABLE t RENAME COLUMN a TO b", dialect) == [("rename_column", "t", "a", "b")]
    assert ops("ALTER TABLE t DROP COLUMN a", dialect) == [("drop_column", "t", "a", None)]


def test_several_actions_in_one_alter() -> None:
    sql = "ALTER TABLE t ADD COLUMN c int NOT NULL, DROP COLUMN d, ADD COLUMN e text"
    assert ops(sql, "postgresql") == [
        ("add_column", "t", "c", None),
        ("drop_column", "t", "d", None),
        ("add_column", "t", "e", None),
    ]


def test_set_and_drop_not_null() -> None:
    code = analyse(
        [("ALTER TABLE t ALTER COLUMN a SET NOT NULL, ALTER COLUMN b DROP NOT NULL", 1)],
        "postgresql",
    )
    assert [(o.op, o.column, o.nullable) for o in code.ops] == [
        ("alter_nullable", "a", False),
        ("alter_nullable", "b", True),
    ]


def test_set_not_null_on_a_column_with_a_default_is_no_surprise() -> None:
    reader = Reader("postgresql")
    reader.read([("CREATE TABLE t (a int DEFAULT 0)", 1)])
    (op,) = reader.read([("ALTER TABLE t ALTER COLUMN a SET NOT NULL", 2)]).ops
    assert (op.nullable, op.server_default) == (False, True)


# --- type changes -------------------------------------------------------------------------------

#: (dialect, the column's type, the change, whether OLD's code survives it: a widening)
TYPE_CHANGES = [
    # widenings
    ("postgresql", "varchar(50)", "ALTER TABLE t ALTER COLUMN c TYPE varchar(100)", True),
    ("postgresql", "varchar(50)", "ALTER TABLE t ALTER COLUMN c TYPE text", True),
    ("postgresql", "integer", "ALTER TABLE t ALTER COLUMN c TYPE bigint", True),
    ("postgresql", "numeric(10, 2)", "ALTER TABLE t ALTER COLUMN c TYPE numeric(12, 2)", True),
    ("mysql", "text", "ALTER TABLE t MODIFY c mediumtext", True),
    ("mysql", "mediumtext", "ALTER TABLE t MODIFY COLUMN c longtext", True),
    ("mysql", "int(11)", "ALTER TABLE t MODIFY c bigint(20)", True),
    ("mysql", "blob", "ALTER TABLE t MODIFY c mediumblob", True),
    # narrowings, or another type
    ("postgresql", "varchar(100)", "ALTER TABLE t ALTER COLUMN c TYPE varchar(50)", False),
    ("postgresql", "text", "ALTER TABLE t ALTER COLUMN c TYPE varchar(50)", False),
    ("postgresql", "bigint", "ALTER TABLE t ALTER COLUMN c TYPE integer", False),
    ("postgresql", "bytea", "ALTER TABLE t ALTER COLUMN c TYPE json USING NULL", False),
    ("postgresql", "numeric(12, 2)", "ALTER TABLE t ALTER COLUMN c TYPE numeric(12, 4)", False),
    ("mysql", "longtext", "ALTER TABLE t MODIFY c text", False),
    ("mysql", "blob", "ALTER TABLE t MODIFY c mediumtext", False),
]


@pytest.mark.parametrize(("dialect", "before", "change", "widens"), TYPE_CHANGES)
def test_a_widening_is_widen_type_anything_else_alter_type(
    dialect: str, before: str, change: str, widens: bool
) -> None:
    reader = Reader(dialect)
    reader.read([(f"CREATE TABLE t (c {before})", 1)])
    ops = [(o.op, o.table, o.column) for o in reader.read([(change, 2)]).ops]
    if widens:
        assert ops == [("widen_type", "t", "c")]
    else:
        # One type change (``USING NULL`` also clears the values: its own op).
        assert [o for o in ops if o[0] != "clear_values"] == [("alter_type", "t", "c")]


def test_type_change_of_an_unknown_column_counts() -> None:
    assert ops("ALTER TABLE t ALTER COLUMN c TYPE bigint", "postgresql") == [
        ("alter_type", "t", "c", None)
    ]


def test_using_a_constant_overwrites_every_value() -> None:
    assert ops("ALTER TABLE t ALTER COLUMN c TYPE json USING NULL", "postgresql") == [
        ("alter_type", "t", "c", None),
        ("clear_values", "t", "c", None),
    ]
    assert ops("ALTER TABLE t ALTER COLUMN c TYPE bigint USING c::bigint", "postgresql") == [
        ("alter_type", "t", "c", None)
    ]


def test_mysql_modify_and_change_column() -> None:
    reader = Reader("mysql")
    reader.read([("CREATE TABLE t (a varchar(10) NULL, b int NOT NULL)", 1)])
    code = reader.read([("ALTER TABLE t MODIFY a varchar(10) NOT NULL", 2)])
    assert [(o.op, o.column, o.nullable) for o in code.ops] == [("alter_nullable", "a", False)]
    code = reader.read([("ALTER TABLE t CHANGE COLUMN b c int NOT NULL", 3)])
    assert [(o.op, o.column, o.name) for o in code.ops] == [("rename_column", "b", "c")]
    code = reader.read([("ALTER TABLE t MODIFY c int NULL", 4)])
    assert code.ops == ()  # NOT NULL dropped: nothing OLD's code can trip over


@given(st.integers(1, 500), st.integers(1, 500))
def test_varchar_length_decides(old: int, new: int) -> None:
    assert widens(("varchar", (old,)), ("varchar", (new,))) is (new >= old)


@given(
    st.sampled_from(["tinyint", "smallint", "mediumint", "int", "bigint"]),
    st.sampled_from(["tinyint", "smallint", "mediumint", "int", "bigint"]),
)
def test_integer_order(old: str, new: str) -> None:
    order = ["tinyint", "smallint", "mediumint", "int", "bigint"]
    assert widens((old, ()), (new, ())) is (order.index(new) >= order.index(old))


# --- indexes, constraints, enums, data --------------------------------------------------------


def test_create_index_concurrently_is_non_transactional() -> None:
    code = analyse(
        [("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON t (a, b)", 3)], "postgresql"
    )
    assert [(o.op, o.table, o.name, o.columns) for o in code.ops] == [
        ("non_transactional", "t", "ix", ()),
        ("create_index", "t", "ix", ("a", "b")),
    ]
    assert code.ops[0].line == 3
    assert ops("DROP INDEX CONCURRENTLY IF EXISTS ix", "postgresql") == [
        ("non_transactional", None, None, "ix"),
        ("drop_index", None, None, "ix"),
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_plain_index(dialect: str) -> None:
    assert ops("CREATE INDEX ix ON t (a)", dialect) == [("create_index", "t", None, "ix")]


def test_mysql_index_forms() -> None:
    assert ops("DROP INDEX ix ON t", "mysql") == [("drop_index", "t", None, "ix")]
    sql = "ALTER TABLE t ADD UNIQUE INDEX uq (a, b), DROP INDEX old, ADD INDEX ix (c)"
    assert ops(sql, "mysql") == [
        ("create_index", "t", None, "uq"),
        ("drop_index", "t", None, "old"),
        ("create_index", "t", None, "ix"),
    ]


def test_constraints() -> None:
    sql = "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id)"
    op = one(sql, "postgresql")
    assert (op.op, op.table, op.name, op.columns, op.references) == (
        "create_constraint",
        "t",
        "fk",
        ("u",),
        ("users",),
    )
    assert ops("ALTER TABLE t DROP CONSTRAINT IF EXISTS fk", "postgresql") == [
        ("drop_constraint", "t", None, "fk")
    ]
    assert ops("ALTER TABLE t DROP FOREIGN KEY fk", "mysql") == [
        ("drop_constraint", "t", None, "fk")
    ]


def test_enum_types() -> None:
    assert ops("CREATE TYPE mood AS ENUM ('a', 'b')", "postgresql") == [
        ("create_enum", None, None, "mood")
    ]
    assert ops("DROP TYPE IF EXISTS mood", "postgresql") == [("drop_enum", None, None, "mood")]
    assert [o.op for o in analyse([("ALTER TYPE mood ADD VALUE 'c'", 1)], "postgresql").ops] == [
        "non_transactional"
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_data_statements(dialect: str) -> None:
    assert ops("DELETE FROM t WHERE id = 1", dialect) == [("delete_rows", "t", None, None)]
    assert ops("UPDATE t SET a = 1, b = 'x' WHERE id = 2", dialect) == [
        ("update_rows", "t", "a", None),
        ("update_rows", "t", "b", None),
    ]
    assert ops("INSERT INTO t (a) VALUES (1)", dialect) == []


def test_truncate_lists_every_table() -> None:
    assert ops("TRUNCATE a, b", "postgresql") == [
        ("delete_rows", "a", None, None),
        ("delete_rows", "b", None, None),
    ]


def test_filling_a_column_added_here_overwrites_nothing() -> None:
    sql = "ALTER TABLE t ADD COLUMN c int; UPDATE t SET c = 0; UPDATE t SET d = 0"
    assert ops(sql, "postgresql") == [
        ("add_column", "t", "c", None),
        ("update_rows", "t", "d", None),
    ]


# --- empty, neutral, unknown ------------------------------------------------------------------


def test_empty_sections() -> None:
    assert analyse([], "sqlite").empty
    assert analyse([("-- nothing to undo", 4)], "sqlite").empty
    assert analyse([("BEGIN", 1), ("COMMIT", 2)], "postgresql").empty
    assert analyse([("SELECT 'down SQL query'", 1)], "postgresql").empty  # goose's template
    assert not analyse([("SELECT setval('s', 1)", 1)], "postgresql").empty


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE VIEW v AS SELECT DISTINCT ON (a) a FROM t",
        "CREATE OR REPLACE FUNCTION f() RETURNS void AS $$ BEGIN DELETE FROM t; END $$"
        " LANGUAGE plpgsql",
        "DROP FUNCTION goiardi.f(m_name text, m_id bigint)",
        "CREATE EXTENSION ltree SCHEMA goiardi",
        "ALTER TABLE t ALTER c SET STORAGE EXTERNAL",
        "COMMENT ON TABLE t IS 'x'",
        "GRANT SELECT ON t TO reader",
    ],
)
def test_statements_that_change_nothing_we_model(sql: str) -> None:
    code = analyse([(sql, 1)], "postgresql")
    assert (code.ops, code.unknown, code.empty) == ((), (), False)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CHECKPOINT", "CHECKPOINT statement the SQL parser does not read"),
        ("LISTEN chan", "LISTEN CHAN statement the SQL parser does not read"),
        ("FROB a", "FROB A statement the SQL parser does not read"),
    ],
)
def test_a_statement_read_only_as_an_expression_is_named_by_its_words(
    sql: str, reason: str
) -> None:
    """sqlglot reads ``CHECKPOINT`` as a column and ``LISTEN chan`` as an alias: the reason
    names the statement, not the expression the parser made of it."""
    code = analyse([(sql, 4)], "postgresql")
    assert (code.ops, code.empty) == ((), False)
    assert [(u.line, u.statement, u.reason) for u in code.unknown] == [(4, sql, reason)]


def test_unparsable_statement_is_unknown_with_its_line() -> None:
    code = analyse([("CREATE TABLE t (id INT)", 3), ("ALTER TABLE t FROBNICATE c", 9)], "sqlite")
    assert [o.op for o in code.ops] == ["create_table"]
    (unknown,) = code.unknown
    assert unknown.line == 9
    assert unknown.statement == "ALTER TABLE t FROBNICATE c"
    assert "\n" not in unknown.reason and unknown.reason


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("DO $$ BEGIN DROP TABLE t; END $$", "postgresql"),
        ("DROP SCHEMA app CASCADE", "postgresql"),
        ("ALTER TABLE t ALTER c SET STORAGE EXTERNAL, ALTER d TYPE int", "postgresql"),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "postgresql"),
        ("CREATE TABLE t (id INT", "mysql"),
    ],
)
def test_what_could_do_anything_is_unknown(sql: str, dialect: str) -> None:
    code = analyse([(sql, 5)], dialect)
    assert code.ops == ()
    assert [u.line for u in code.unknown] == [5]


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="oracle"):
        Reader("oracle")


def test_parse_sql_tries_every_dialect() -> None:
    got = [(o.op, o.table) for o in parse_sql("DROP TABLE IF EXISTS `orders`; TRUNCATE a", 4)]
    assert got == [("drop_table", "orders"), ("delete_rows", "a")]
    assert Reader(ANY).parse("SELECT 1")


# --- rebuilds ---------------------------------------------------------------------------------

SETUP = [("CREATE TABLE packages (id INTEGER PRIMARY KEY, url VARCHAR NOT NULL, old TEXT)", 1)]


def _rebuild(statements: list[str]) -> list[tuple[str, str | None, str | None, str | None]]:
    reader = Reader("sqlite")
    reader.read(SETUP)
    code = reader.read([(stmt, i + 10) for i, stmt in enumerate(statements)])
    assert not code.unknown
    return [(o.op, o.table, o.column, o.name) for o in code.ops]


def test_sqlite_rebuild_is_a_change_of_columns_not_a_dropped_table() -> None:
    got = _rebuild(
        [
            "CREATE TABLE _new (id INTEGER PRIMARY KEY, artifact_url VARCHAR NOT NULL,"
            " retries INTEGER NOT NULL)",
            "INSERT INTO _new (id, artifact_url, retries) SELECT id, url, 0 FROM packages",
            "DROP TABLE packages",
            "ALTER TABLE _new RENAME TO packages",
            "CREATE INDEX ix ON packages (retries)",
        ]
    )
    assert got == [
        ("rebuild_table", "packages", None, None),
        ("rename_column", "packages", "url", "artifact_url"),
        ("add_column", "packages", "retries", None),
        ("drop_column", "packages", "old", None),
        ("create_index", "packages", None, "ix"),
    ]


def test_rebuild_that_leaves_rows_behind_deletes_rows() -> None:
    got = _rebuild(
        [
            "CREATE TABLE tmp (id INTEGER PRIMARY KEY, url VARCHAR NOT NULL, old TEXT)",
            "INSERT INTO tmp SELECT id, url, old FROM packages WHERE old IS NOT NULL",
            "ALTER TABLE packages RENAME TO backup",
            "ALTER TABLE tmp RENAME TO packages",
            "DROP TABLE backup",
        ]
    )
    assert got == [
        ("rebuild_table", "packages", None, None),
        ("delete_rows", "packages", None, None),
    ]


def test_drop_and_create_again_without_copy_loses_every_row() -> None:
    got = _rebuild(["DROP TABLE packages", "CREATE TABLE packages (id INTEGER, url INTEGER)"])
    assert got == [
        ("rebuild_table", "packages", None, None),
        ("alter_type", "packages", "url", None),
        ("drop_column", "packages", "old", None),
        ("delete_rows", "packages", None, None),
    ]


@pytest.mark.parametrize(
    ("create", "dialect"),
    [
        ("CREATE TABLE packages (LIKE template)", "postgresql"),
        ("CREATE TABLE packages LIKE template", "mysql"),
        ("CREATE TABLE packages AS SELECT * FROM template", "sqlite"),
    ],
)
def test_a_table_whose_columns_are_not_listed_is_not_judged_when_rebuilt(
    create: str, dialect: str
) -> None:
    reader = Reader(dialect)
    reader.read([(create, 1)])
    code = reader.read(
        [
            ("CREATE TABLE tmp (id INT)", 2),
            ("DROP TABLE packages", 3),
            ("ALTER TABLE tmp RENAME TO packages", 4),
        ]
    )
    # A rebuild, but nothing says which of its columns went away: named, not guessed.
    assert [o.op for o in code.ops] == ["rebuild_table"]
    assert [(u.line, u.reason) for u in code.unknown] == [
        (4, "rebuild of packages: its columns before are not known")
    ]


def test_drop_and_create_of_a_table_never_seen_is_read_literally() -> None:
    assert ops("DROP TABLE IF EXISTS t; CREATE TABLE t (id INT)", "sqlite") == [
        ("drop_table", "t", None, None),
        ("create_table", "t", None, None),
    ]


def test_step_reads_the_down_against_the_up_and_forgets_it() -> None:
    reader = Reader("postgresql")
    reader.read([("CREATE TABLE t (c varchar(10))", 1)])
    up, down = reader.step(
        [("ALTER TABLE t ALTER COLUMN c TYPE varchar(20)", 1)],
        [("ALTER TABLE t ALTER COLUMN c TYPE varchar(10)", 1)],
    )
    assert [o.op for o in up.ops] == ["widen_type"]
    assert down is not None and [o.op for o in down.ops] == ["alter_type"]
    # The next step builds on the up (varchar(20)), not on the down.
    nxt = reader.read([("ALTER TABLE t ALTER COLUMN c TYPE varchar(15)", 1)])
    assert [o.op for o in nxt.ops] == ["alter_type"]
