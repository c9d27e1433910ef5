"""The core judges and runs steps of any framework; the one Alembic runner never overlaps itself.

The first tests feed the core a history that is not Alembic's: plain SQL steps in the SQL
tools' linear order (:class:`LinearOrder`, the one the sources use) and a runner written here, as
a source for such files would be, that applies them on a real SQLite database and keeps its own
version table. Expected values are worked out from the
SQL: step 002 adds ``users.nickname`` and its down drops it again, so a downgrade loses NEW's
nicknames (3 filled in OLD's rows), nothing of OLD's.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from compatcheck.errors import UsageError
from compatcheck.migrations import inspect_migrations
from compatcheck.migrations.checks import static_findings
from compatcheck.migrations.findings import FindingSet, roundtrip_findings
from compatcheck.migrations.graph import History, UnknownRevision, downgrade_path, resolve
from compatcheck.migrations.plans import judge_plans, new_data_finding
from compatcheck.migrations.roundtrip import Failed, round_trip
from compatcheck.migrations.scratch import one_line, scratch_database
from compatcheck.migrations.section import OnlineOnly
from compatcheck.migrations.sources import open_source
from compatcheck.migrations.sources.alembic.runner import migrate_to_head, read_alembic_head
from compatcheck.migrations.sources.sqlfiles import LinearOrder
from compatcheck.migrations.sql import split_sql
from compatcheck.migrations.sqlstatic import parse_sql
from compatcheck.migrations.steps import Code, Step, Wording

WORDING = Wording(step="Migration", up="up section", down="down section", upgrade_all="`up`")

#: version → (up SQL, down SQL or None)
SQL_STEPS = {
    "001": (
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        "DROP TABLE users;",
    ),
    "002": (
        "ALTER TABLE users ADD COLUMN nickname TEXT;",
        "ALTER TABLE users DROP COLUMN nickname;",
    ),
    "003": ("CREATE INDEX ix_users_name ON users (name);", None),
}


def _code(sql: str | None, transaction: str = "") -> Code | None:
    if sql is None:
        return None
    ops = tuple(parse_sql(sql, 1))
    return Code(
        empty=not split_sql(sql), raises=False, ops=ops, line=1, non_transactional=transaction
    )


def sql_history(tmp: Path, steps: dict[str, tuple[str, str | None]] = SQL_STEPS) -> History:
    order = list(steps)
    return History(
        location=tmp,
        steps={
            v: Step(
                id=v,
                path=tmp / f"{v}.sql",
                parents=(order[i - 1],) if i else (),
                up=_code(up),
                down=_code(down),
            )
            for i, (v, (up, down)) in enumerate(steps.items())
        },
        heads=(order[-1],),
        order=LinearOrder(order),
        wording=WORDING,
    )


class SqlRunner:
    """Applies SQL steps one at a time and records them in ``schema_migrations``."""

    version_tables = ("schema_migrations",)

    def __init__(self, conn: Connection, steps: dict[str, tuple[str, str | None]]) -> None:
        self.conn = conn
        self.steps = steps
        conn.exec_driver_sql("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
        conn.commit()

    def cancelled(self) -> bool:
        return False

    def _apply(self, version: str, sql: str | None, record: str) -> Failed | None:
        try:
            for stmt in split_sql(sql or ""):
                self.conn.exec_driver_sql(stmt)
            self.conn.execute(sa.text(record), {"v": version})
            self.conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            self.conn.rollback()
            return Failed(version, one_line(exc))
        return None

    def upgrade(self, target: str) -> Failed | None:
        done = set(self.conn.exec_driver_sql("SELECT version FROM schema_migrations").scalars())
        self.conn.commit()
        order = list(self.steps)
        for version in order[: order.index(target) + 1]:
            if version not in done:
                insert = "INSERT INTO schema_migrations VALUES (:v)"
                failed = self._apply(version, self.steps[version][0], insert)
                if failed:
                    return failed
        return None

    def downgrade(self, path: Sequence[str]) -> Failed | None:
        for version in path:
            delete = "DELETE FROM schema_migrations WHERE version = :v"
            failed = self._apply(version, self.steps[version][1], delete)
            if failed:
                return failed
        return None

    def offline_sql(self, path: Sequence[str], new: str) -> tuple[str, tuple[OnlineOnly, ...]]:
        return "".join(self.steps[v][1] or "" for v in path), ()


def test_the_static_checks_speak_the_frameworks_words(tmp_path: Path) -> None:
    history = sql_history(tmp_path)
    assert (resolve(history, "head"), resolve(history, "002"), resolve(history, "base")) == (
        "003",
        "002",
        None,
    )
    with pytest.raises(UnknownRevision):
        resolve(history, "9")
    path = downgrade_path(history, "003", "001")
    assert path is not None and path.revisions == ("003", "002")
    found = {(f.kind, f.subject): f for f in static_findings(history, path, "postgresql")}
    assert set(found) == {
        ("migrations/downgrade-missing", "003"),
        ("migrations/downgrade-destructive", "002"),
    }
    assert found[("migrations/downgrade-missing", "003")].message == (
        "Migration `003` has no down section, so a downgrade cannot undo it."
    )
    assert found[("migrations/downgrade-destructive", "002")].evidence["columns"] == [
        "users.nickname"
    ]


def test_a_step_the_framework_runs_outside_a_transaction_is_named(tmp_path: Path) -> None:
    history = sql_history(tmp_path)
    steps = dict(history.steps)
    steps["003"] = Step(
        "003",
        tmp_path / "003.sql",
        ("002",),
        up=_code(SQL_STEPS["003"][0], "-- +goose NO TRANSACTION"),
        down=_code("DROP INDEX ix_users_name;"),
    )
    history = History(tmp_path, steps, ("003",), LinearOrder(list(steps)), WORDING)
    path = downgrade_path(history, "003", "002")
    assert path is not None
    (finding,) = [
        f for f in static_findings(history, path, "postgresql") if f.kind.endswith("transactional")
    ]
    assert finding.subject == "003"
    assert finding.evidence["statements"] == [
        {"function": "upgrade", "statement": "-- +goose NO TRANSACTION", "line": 1}
    ]
    assert "outside a transaction in up section:" in finding.message


def test_the_round_trip_runs_a_framework_it_does_not_know(
    tmp_path: Path, isolated_tmp: Path
) -> None:
    steps = {k: v for k, v in SQL_STEPS.items() if k != "003"}
    history = sql_history(tmp_path, steps)
    path = downgrade_path(history, "002", "001")
    assert path is not None
    with scratch_database(None) as scratch, scratch.engine.connect() as conn:
        runner = SqlRunner(conn, steps)
        trip = round_trip(runner, "001", "002", path.revisions)
    assert trip.status == "completed"
    assert (trip.failure, trip.schema_differences, trip.reupgrade_differences) == (None, (), ())
    # OLD's 3 users keep their names; NEW's nicknames (3, filled into OLD's rows) are gone; the
    # 2 NEW-era users survive. The version table is the framework's, never seeded or compared.
    assert trip.seeded == {"users": 3}
    assert dict(trip.old_data_lost) == {}
    assert dict(trip.new_data_removed) == {"users.nickname": 3}
    found = FindingSet(static_findings(history, path, "postgresql"))
    roundtrip_findings(found, history, path, trip, "sqlite")
    (destructive,) = found.findings()
    assert destructive.kind == "migrations/downgrade-destructive" and destructive.subject == "002"
    assert destructive.evidence["removed_in_roundtrip"] == {"users.nickname": 3}
    plans, recommended = judge_plans(found.findings())
    assert recommended == "code-only"
    removal = new_data_finding(plans, "002")
    assert removal is not None and removal.evidence["removed"] == [
        {"object": "users.nickname", "unit": "values", "count": 3}
    ]
    assert list(isolated_tmp.iterdir()) == []


def test_an_unknown_framework_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown migrations framework `liquibase`"):
        open_source(tmp_path, "liquibase")
    assert open_source(Path(__file__).parent.parent / "fixtures/alembic/batch_mode").framework == (
        "alembic"
    )


# --- the one Alembic runner, under contention ----------------------------------------------

ENV_PY = """
import time

from alembic import context

import cc_lock_probe

cc_lock_probe.enter()
try:
    time.sleep(0.15)  # long enough for a second thread to arrive while this run is in progress
    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"))
    else:
        context.configure(connection=context.config.attributes["connection"])
    with context.begin_transaction():
        context.run_migrations()
finally:
    cc_lock_probe.leave()
"""

REVISION = """
from alembic import op
import sqlalchemy as sa

revision = "a1"
down_revision = None


def upgrade():
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("t")
"""


@pytest.fixture
def probe() -> Iterator[types.SimpleNamespace]:
    """A module every env.py run reports to: how many runs are in progress at once."""
    state = types.SimpleNamespace(active=0, most=0, runs=0)
    lock = threading.Lock()
    module = types.ModuleType("cc_lock_probe")

    def enter() -> None:
        with lock:
            state.active += 1
            state.runs += 1
            state.most = max(state.most, state.active)

    def leave() -> None:
        with lock:
            state.active -= 1

    module.enter = enter  # type: ignore[attr-defined]
    module.leave = leave  # type: ignore[attr-defined]
    sys.modules["cc_lock_probe"] = module
    try:
        yield state
    finally:
        del sys.modules["cc_lock_probe"]


def test_alembic_runs_in_threads_never_overlap(
    tmp_path: Path, isolated_tmp: Path, probe: types.SimpleNamespace
) -> None:
    """``check`` migrates OLD's and NEW's databases and runs the round trip in three threads:
    each ``env.py`` run must have Alembic's process-wide ``context`` to itself."""
    loc = tmp_path / "migrations"
    (loc / "versions").mkdir(parents=True)
    (loc / "env.py").write_text(textwrap.dedent(ENV_PY))
    (loc / "versions" / "a1.py").write_text(textwrap.dedent(REVISION))
    urls = [f"sqlite:///{tmp_path / name}.sqlite" for name in ("old", "new")]
    heads: dict[str, str | None] = {}
    status: list[str] = []
    start = threading.Barrier(3)

    def migrate(url: str) -> None:
        start.wait()
        heads[url] = migrate_to_head(loc, url)

    def inspect() -> None:
        start.wait()
        roundtrip = inspect_migrations(loc, None, "a1").section.roundtrip
        status.append(roundtrip.status if roundtrip else "none")

    threads = [threading.Thread(target=migrate, args=(u,)) for u in urls]
    threads.append(threading.Thread(target=inspect))
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert heads == {u: "a1" for u in urls}
    assert [read_alembic_head(u) for u in urls] == ["a1", "a1"]
    assert status == ["completed"]
    # Two upgrades, then the round trip's upgrade, downgrade, re-upgrade and offline rendering.
    assert probe.runs == 6
    assert probe.most == 1
    assert time.monotonic() - began >= 6 * 0.15
