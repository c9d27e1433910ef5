"""The SQL reader over every published SQL migration under fixtures/realworld/sql.

Every statement of every file is read in its project's dialect(s), each history in order; no
statement may raise, and every statement the parser rejects must be named with its line (or be
one of the few whose first words say they change nothing we model). The "parser traps" each
project's EXPECTED.md lists (file:line) are each checked against what reading the file says the
statement does; and the downgrade the replay predicts to fail is the one the real tools failed
on (EXPECTED.md's measured ground truth).

Statements are split here by sqlglot's tokenizer at top-level semicolons, within each
framework section (dbmate ``-- migrate:up/down``, goose ``-- +goose Up/Down``, golang-migrate
``.up.sql``/``.down.sql``): a reference split for this test, not a framework's splitter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlglot
import yaml
from sqlglot import TokenType
from sqlglot.errors import ParseError, TokenError

from compatcheck.migrations.simulate import failing_downgrades
from compatcheck.migrations.sqlstatic import DIALECTS, Reader
from compatcheck.migrations.steps import Code

ROOT = Path(__file__).parent.parent / "fixtures" / "realworld" / "sql"
#: Folder (relative to ROOT) → its dialects, and the project it belongs to.
FOLDERS = {
    "cfssl/1.6.5/postgres": ("postgresql",),
    "cfssl/1.6.5/mysql": ("mysql",),
    "cfssl/1.6.5/sqlite": ("sqlite",),
    "goiardi/0.11.10/postgres": ("postgresql",),
    "goiardi/0.11.10/mysql": ("mysql",),
    "rebuilderd/0.24.0/sqlite": ("sqlite",),
    "sematic/0.41.0/migrations": ("sqlite", "postgresql"),
}
MARKERS = (("-- migrate:up", "-- migrate:down"), ("-- +goose Up", "-- +goose Down"))

Statements = list[tuple[str, int]]


def statements(text: str, dialect: str, first_line: int = 1) -> Statements:
    """``(statement, line)`` for each statement of ``text`` (which starts at ``first_line``)."""
    found = sqlglot.tokenize(text, read=DIALECTS[dialect])
    out: Statements = []
    start = None
    for token in found:
        if token.token_type == TokenType.SEMICOLON:
            if start is not None:
                out.append((text[start.start : token.start], start.line + first_line - 1))
            start = None
        elif start is None:
            start = token
    if start is not None:
        out.append((text[start.start :], start.line + first_line - 1))
    return out


@dataclass
class Step:
    file: str
    up: Statements
    down: Statements | None
    up_code: Code
    down_code: Code | None


def _sections(path: Path, dialect: str) -> tuple[Statements, Statements | None]:
    text = path.read_text()
    if path.name.endswith(".up.sql"):
        down = path.with_name(path.name[: -len(".up.sql")] + ".down.sql")
        down_text = down.read_text() if down.exists() else None
        return statements(text, dialect), (
            statements(down_text, dialect) if down_text is not None else None
        )
    for up_mark, down_mark in MARKERS:
        if up_mark in text:
            up, _, down_text = text.partition(down_mark)
            return statements(up, dialect), statements(down_text, dialect, up.count("\n") + 1)
    return statements(text, dialect), None


def read_history(folder: str, dialect: str) -> list[Step]:
    reader = Reader(dialect)
    out = []
    for path in sorted((ROOT / folder).glob("*.sql")):
        if path.name.endswith(".down.sql"):
            continue
        up, down = _sections(path, dialect)
        up_code, down_code = reader.step(up, down)
        out.append(Step(path.name, up, down, up_code, down_code))
    return out


CASES = [(folder, dialect) for folder, dialects in FOLDERS.items() for dialect in dialects]


@pytest.fixture(scope="module")
def histories() -> dict[tuple[str, str], list[Step]]:
    return {case: read_history(*case) for case in CASES}


def test_the_fixture_folders_are_all_here() -> None:
    on_disk = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("*/*/*/*.sql")}
    assert on_disk == set(FOLDERS)


#: Statements sqlglot rejects that are judged by their first words (read in goiardi's reverts:
#: ``DROP FUNCTION f(name type, ...)``, named arguments sqlglot does not accept).
NEUTRAL_BY_WORDS = ("DROP FUNCTION",)


@pytest.mark.parametrize(("folder", "dialect"), CASES)
def test_every_statement_is_read_or_named_with_its_line(
    folder: str, dialect: str, histories: dict[tuple[str, str], list[Step]]
) -> None:
    for step in histories[(folder, dialect)]:
        for stmts, code in ((step.up, step.up_code), (step.down, step.down_code)):
            if stmts is None or code is None:
                continue
            starts = {line for _, line in stmts}
            named = {u.line for u in code.unknown}
            assert named <= starts, (step.file, named - starts)
            for text, line in stmts:
                try:
                    sqlglot.parse(text, read=DIALECTS[dialect])
                except (ParseError, TokenError):
                    words = " ".join(text.split()[:2]).upper()
                    assert line in named or words in NEUTRAL_BY_WORDS, (step.file, line, text)
    # Read by hand: every statement of these projects is one the reader can judge.
    unknown = [
        (s.file, u.line, u.reason)
        for s in histories[(folder, dialect)]
        for code in (s.up_code, s.down_code)
        if code
        for u in code.unknown
    ]
    assert unknown == []


def _ops(code: Code | None) -> list[tuple[str, str | None, str | None, str | None]]:
    assert code is not None
    assert code.unknown == ()
    return [(o.op, o.table, o.column, o.name) for o in code.ops]


def _step(histories: dict[tuple[str, str], list[Step]], folder: str, name: str) -> list[Step]:
    """The step of that file in every dialect the folder is read in."""
    return [
        step
        for (f, _), steps in histories.items()
        if f == folder
        for step in steps
        if step.file == name
    ]


Check = Callable[[Step], None]


def _cfssl_mysql_001(step: Step) -> None:
    assert _ops(step.up_code) == [
        ("create_table", "certificates", None, None),
        ("create_table", "ocsp_responses", None, None),
    ]


def _cfssl_002_up(step: Step) -> None:
    columns = ["issued_at", "not_before", "metadata", "sans", "common_name"]
    assert _ops(step.up_code) == [("add_column", "certificates", c, None) for c in columns]
    assert all(o.nullable for o in step.up_code.ops)


def _cfssl_postgres_002(step: Step) -> None:
    columns = ["issued_at", "not_before", "metadata", "sans", "common_name"]
    assert _ops(step.down_code) == [("drop_column", "certificates", c, None) for c in columns]


def _empty_down(step: Step) -> None:
    assert step.down_code is not None and step.down_code.empty and step.down_code.ops == ()


def _empty_up(step: Step) -> None:
    assert step.up_code.empty and step.up_code.ops == ()


def _nothing_modelled(step: Step) -> None:
    """Functions, views, BEGIN/COMMIT: no op (an UPDATE inside a $$ body is not one)."""
    assert _ops(step.up_code) == []
    assert not step.up_code.empty


def _goiardi_json(step: Step) -> None:
    got = _ops(step.up_code)
    retyped = [r for r in got if r[0] == "alter_type"]
    assert len(retyped) == 26
    assert {r[0] for r in got} == {"alter_type", "clear_values"}  # USING NULL wipes them


def _goiardi_jsonb(step: Step) -> None:
    got = _ops(step.up_code)
    assert len([r for r in got if r[0] == "alter_type"]) == 26
    assert not [r for r in got if r[0] in ("drop_table", "drop_column")]


def _goiardi_ltree(step: Step) -> None:
    got = _ops(step.up_code)
    assert got[:2] == [
        ("create_table", "search_collections", None, None),
        ("create_table", "search_items", None, None),
    ]
    assert ("create_index", "search_items", None, "search_gist_idx") in got


def _one_table(name: str) -> Check:
    def check(step: Step) -> None:
        assert _ops(step.up_code) == [("create_table", name, None, None)]

    return check


def _goiardi_mysql_0016(step: Step) -> None:
    got = _ops(step.up_code)
    assert ("rename_column", "file_checksums", "org_id", "organization_id") in got


def _goiardi_mysql_0017(step: Step) -> None:
    got = _ops(step.up_code)
    assert got[:3] == [
        ("add_column", "cookbooks", "organization_id", None),
        ("drop_index", "cookbooks", None, "name"),
        ("create_index", "cookbooks", None, "organization_name"),
    ]


def _goiardi_mysql_0019(step: Step) -> None:
    got = _ops(step.up_code)
    assert len(got) == 26 and {r[0] for r in got} == {"alter_type"}  # blob -> mediumtext


def _not_a_dropped_or_renamed_table(step: Step, *, down: bool = True) -> None:
    for code in (step.up_code, step.down_code) if down else (step.up_code,):
        assert not [r for r in _ops(code) if r[0] in ("drop_table", "rename_table")]


def _added_not_null(table: str, column: str, *, down: bool = True) -> Check:
    """The up adds ``table.column`` NOT NULL without default; neither direction reads as a
    dropped or renamed table (with ``down=False``: the up does not)."""

    def check(step: Step) -> None:
        _not_a_dropped_or_renamed_table(step, down=down)
        (op,) = [
            o
            for o in step.up_code.ops
            if (o.op, o.table, o.column) == ("add_column", table, column)
        ]
        assert op.nullable is False and not op.server_default

    return check


def _no_unknown(step: Step) -> None:
    _ops(step.up_code)
    _ops(step.down_code)


def _rebuilderd_setup(step: Step) -> None:
    (queue,) = [o for o in step.up_code.ops if o.table == "queue"]
    assert queue.references == ("packages", "workers")


def _sematic_notes(step: Step) -> None:
    _not_a_dropped_or_renamed_table(step)
    got = _ops(step.up_code)
    assert ("drop_column", "notes", "author_id", None) in got
    assert ("add_column", "notes", "user_id", None) in got


def _sematic_comment_down(step: Step) -> None:
    assert _ops(step.down_code) == [("drop_index", None, None, "jobs_run_id")]


def _sematic_runs(step: Step) -> None:
    assert _ops(step.up_code) == [("create_table", "runs", None, None)]


#: (project, file as expected.yaml names it, line) → what the statement there must read as.
TRAPS: dict[tuple[str, str, int], Check] = {
    ("cfssl", "mysql/001_CreateCertificates.sql", 11): _cfssl_mysql_001,
    ("cfssl", "mysql/002_AddMetadataToCertificates.sql", 4): _cfssl_002_up,
    ("cfssl", "postgres/002_AddMetadataToCertificates.sql", 14): _cfssl_postgres_002,
    ("cfssl", "sqlite/002_AddMetadataToCertificates.sql", 13): _empty_down,
    ("goiardi", "postgres/0016_client_insert_duplicate.up.sql", 7): _nothing_modelled,
    ("goiardi", "postgres/0030_bytea_to_json.up.sql", 59): _goiardi_json,
    ("goiardi", "postgres/0041_jsonb.up.sql", 116): _goiardi_jsonb,
    ("goiardi", "postgres/0036_node_latest_statuses.up.sql", 1): _nothing_modelled,
    ("goiardi", "postgres/0038_ltree.up.sql", 4): _goiardi_ltree,
    ("goiardi", "postgres/0001_goiardi_schema.up.sql", 3): _nothing_modelled,
    ("goiardi", "mysql/0001_environments.up.sql", 17): _one_table("environments"),
    ("goiardi", "mysql/0006_cookbook_versions.up.sql", 10): _one_table("cookbook_versions"),
    ("goiardi", "mysql/0016_file_checksum_org.up.sql", 1): _goiardi_mysql_0016,
    ("goiardi", "mysql/0017_all_org_ids.up.sql", 1): _goiardi_mysql_0017,
    ("goiardi", "mysql/0019_grow_json_columns.up.sql", 3): _goiardi_mysql_0019,
    ("rebuilderd", "sqlite/20210804171946_queue-per-distro.up.sql", 19): _added_not_null(
        "queue", "required_backend"
    ),
    ("rebuilderd", "sqlite/20211121134730_build-groups.up.sql", 37): _added_not_null(
        "pkgbases", "artifacts"
    ),
    ("rebuilderd", "sqlite/20200527160242_retries.up.sql", 1): _no_unknown,
    ("rebuilderd", "sqlite/20191205202101_setup.up.sql", 22): _rebuilderd_setup,
    ("rebuilderd", "sqlite/20200527160242_retries.up.sql", 3): _added_not_null(
        "packages", "retries"
    ),
    ("sematic", "migrations/20221004183943_remove_exception_from_runs.sql", 3): _empty_up,
    ("sematic", "migrations/20221202221000_resolution_versions.sql", 5): _empty_down,
    ("sematic", "migrations/20230403153220_replace_external_jobs.sql", 15): _sematic_comment_down,
    (
        "sematic",
        "migrations/20230221004041_swap_users.sql",
        7,
    ):  # The down renames users back to users_tmp (its rows live on there): a real rename.
    _added_not_null("users", "id", down=False),
    ("sematic", "migrations/20230223020405_add_user_id_to_notes.sql", 37): _sematic_notes,
    ("sematic", "migrations/20220424062956_create_runs_table.sql", 3): _sematic_runs,
}


def test_every_listed_trap_has_an_expectation() -> None:
    listed = {
        (project.name, trap["file"], trap["line"])
        for project in ROOT.iterdir()
        if (project / "expected.yaml").exists()
        for trap in yaml.safe_load((project / "expected.yaml").read_text())["parser_traps"]
    }
    assert listed == set(TRAPS)


@pytest.mark.parametrize("trap", sorted(TRAPS), ids=lambda t: f"{t[1]}:{t[2]}")
def test_parser_trap_is_read_right(
    trap: tuple[str, str, int], histories: dict[tuple[str, str], list[Step]]
) -> None:
    project, file, _ = trap
    sub, name = file.rsplit("/", 1)
    (folder,) = [f for f in FOLDERS if f.startswith(f"{project}/") and f.endswith(f"/{sub}")]
    steps = _step(histories, folder, name)
    assert steps, name
    for step in steps:
        TRAPS[trap](step)


#: Per folder and dialect: the downgrades the real tools failed on (EXPECTED.md's measured
#: ground truth; every Up, then every Down in reverse, stopping at the first failure).
GROUND_TRUTH = {
    ("sematic/0.41.0/migrations", "sqlite"): ["20221004183943_remove_exception_from_runs.sql"],
    ("sematic/0.41.0/migrations", "postgresql"): ["20221004183943_remove_exception_from_runs.sql"],
}


@pytest.mark.parametrize(("folder", "dialect"), CASES)
def test_the_failing_downgrade_is_the_one_the_tools_failed_on(
    folder: str, dialect: str, histories: dict[tuple[str, str], list[Step]]
) -> None:
    steps = histories[(folder, dialect)]
    path = [(s.file, "upgrade", s.up_code.ops) for s in steps] + [
        (s.file, "downgrade", s.down_code.ops if s.down_code else ()) for s in reversed(steps)
    ]
    failing = failing_downgrades(path, foreign_keys=dialect != "sqlite")
    first = [failing[0][0]] if failing else []
    assert first == GROUND_TRUTH.get((folder, dialect), [])


def test_throughput_over_every_file() -> None:
    """Not a timing assertion: every file read once more, to report statements per second."""
    count, started = 0, time.perf_counter()
    for folder, dialect in CASES:
        for step in read_history(folder, dialect):
            count += len(step.up) + len(step.down or [])
    elapsed = time.perf_counter() - started
    assert count > 900
    print(f"\nsqlstatic: {count} statements in {elapsed:.2f}s ({count / elapsed:.0f}/s)")
