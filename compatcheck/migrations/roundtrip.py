"""Run the history for real on a scratch database: up to OLD, seed, up to NEW, down, up again.

Why run at all when the static analysis exists: a downgrade can be syntactically fine and still
fail (a constraint, a dialect quirk), leave a PostgreSQL enum behind, or overwrite OLD's rows.
Only a real run on the real engine shows that.

The round trip is framework-neutral: a source's :class:`Runner` executes the steps (one step at a
time, so the step in progress when an error is raised names the culprit); this module seeds,
inspects and compares. The schema is inspected three times (A, B, A') plus once after the
re-upgrade (B').
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Connection

from compatcheck.interrupts import Cancelled, pause_point
from compatcheck.migrations.schema import Schema, diff_schema, inspect_schema
from compatcheck.migrations.section import (
    ERA_ROWS,
    OnlineOnly,
    RoundTrip,
    SchemaDifference,
    StepFailure,
)
from compatcheck.migrations.seeding import (
    NEW_OFFSET,
    NEW_ROWS,
    OLD_ROWS,
    Row,
    Seeder,
    read_rows,
    run_seed_sql,
)
from compatcheck.progress import heartbeat


@dataclass(frozen=True)
class Failed:
    """A run of steps that failed: the revision in progress (None: before any), one line."""

    revision: str | None
    error: str
    #: The exception itself, for callers that report it in their own words.
    cause: Exception | None = field(default=None, compare=False)


class RunnerUnavailable(Exception):
    """The framework could not load the folder: the round trip cannot run. ``str()`` is the
    message for the finding, ``error`` the one-line cause."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error


class Runner(Protocol):
    """Executes a framework's steps on one connection to the scratch database."""

    conn: Connection

    @property
    def version_tables(self) -> Collection[str]:
        """Tables the framework keeps its own bookkeeping in: not part of the compared schema."""
        ...

    def cancelled(self) -> bool:
        """True once the run is closing: stop between two steps."""
        ...

    def upgrade(self, target: str) -> Failed | None:
        """Apply every step up to ``target`` from where the database is."""
        ...

    def downgrade(self, path: Sequence[str]) -> Failed | None:
        """Undo ``path``, in that order."""
        ...

    def offline_sql(self, path: Sequence[str], new: str) -> tuple[str, tuple[OnlineOnly, ...]]:
        """The downgrade of ``path`` as SQL text, and the steps that need a live database."""
        ...

    def app_url(self) -> str:
        """The scratch database's URL as the migrations' own interpreter reaches it (its
        driver), for the user's commands (``--base-command``);
        :class:`~compatcheck.errors.UnavailableError` when it cannot say."""
        ...

    def load_ahead(self) -> None:
        """Start loading the migrations' code (the application's modules that ``env.py`` and the
        revisions import) without waiting, while the user's init command runs in its own
        process; nothing for a runner whose code is already loaded or loads cheaply."""
        ...

    def close(self) -> None:
        """Stop what the runner started (a helper process); nothing for an in-process one."""
        ...

    def release(self) -> None:
        """Close the runner's own connection to the database, if it has one (the database is
        being copied); the next request opens it again."""
        ...


@dataclass
class _Trip:
    """What one round trip has seen so far (assembled into a :class:`RoundTrip`)."""

    runner: Runner
    seeder: Seeder
    clock: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    seeded: dict[str, int] = field(default_factory=dict)
    #: Per table, OLD-era rows (key → values in OLD's column order).
    old_rows: dict[str, dict[Row, Row]] = field(default_factory=dict)
    #: NEW-era values written per object (``table`` → rows, ``table.column`` → values).
    written_new: dict[str, int] = field(default_factory=dict)
    #: Per table that OLD had too, the keys of the NEW-era rows added to it.
    new_era_keys: dict[str, list[Row]] = field(default_factory=dict)
    #: OLD's tables that got no rows, and why (set once OLD's seeding is done; the seeder's
    #: later errors are the NEW era's).
    old_seed_errors: dict[str, str] | None = None
    #: Tables that get no generated rows at all, OLD-era or NEW-era (their data made a step fail).
    skip: frozenset[str] = frozenset()

    @property
    def conn(self) -> Connection:
        return self.runner.conn

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.clock, 4)
        self.clock = now

    def inspect(self) -> Schema:
        return inspect_schema(self.conn, self.runner.version_tables)

    def record(
        self,
        status: str,
        failure: StepFailure | None = None,
        checked: _Checked | None = None,
        reupgrade: tuple[SchemaDifference, ...] = (),
    ) -> RoundTrip:
        return RoundTrip(
            status=status,
            failure=failure,
            schema_differences=checked.differences if checked else (),
            reupgrade_differences=reupgrade,
            old_data_lost=checked.old_lost if checked else {},
            new_data_removed=checked.new_removed if checked else {},
            seeded=dict(self.seeded),
            seed_errors=dict(
                self.seeder.errors if self.old_seed_errors is None else self.old_seed_errors
            ),
            new_seed_errors={} if self.old_seed_errors is None else dict(self.seeder.errors),
            timings=dict(self.timings),
        )


@dataclass(frozen=True)
class _Checked:
    """What the database looked like after the downgrade, compared with before."""

    differences: tuple[SchemaDifference, ...]
    old_lost: dict[str, int]
    new_removed: dict[str, int]


def _up_to_old(
    trip: _Trip,
    old: str | None,
    base: Callable[[], str | None] | None,
    say: Callable[[str], None],
    at_old: Callable[[], None] | None,
) -> RoundTrip | None:
    """The starting schema, then OLD's revisions, then ``at_old``; the failed trip, or None."""
    if base is not None:
        say("creating the starting schema")
        error = base()
        trip.lap("base")
        if error is not None:
            return _failed(trip, "upgrade-failed", "starting schema", Failed(None, error))
    if old is not None:
        say(f"upgrading to OLD's head {old}")
        with heartbeat(say, f"waiting for the upgrade to OLD's head {old}"):
            failed = trip.runner.upgrade(old)
        if failed:
            return _failed(trip, "upgrade-failed", "upgrade to OLD", failed)
    trip.lap("upgrade_old")
    if at_old is not None:
        at_old()
        trip.lap("template")
    return None


def round_trip(
    runner: Runner,
    old: str | None,
    new: str,
    path: Sequence[str],
    *,
    seed_sql: Path | None = None,
    renamed: frozenset[str] = frozenset(),
    say: Callable[[str], None] = lambda _m: None,
    base: Callable[[], str | None] | None = None,
    seed: bool = True,
    unseeded_tables: Mapping[str, str] | None = None,
    at_old: Callable[[], None] | None = None,
) -> RoundTrip:
    """Up to OLD → A, seed, up to NEW → B, NEW-era rows, down the path → A', checks, up → B'.

    ``renamed`` lists rename targets (``table``, ``table.column``) of the path's upgrades: they
    hold OLD's data under a new name, so they are not "new" and get no NEW-era values. ``base``
    creates the schema that exists before the first revision (``--base-sql``,
    ``--base-command``) on the empty database; it returns why it failed, or None. ``seed=False``
    runs the history on the schema alone (after seeded rows made an upgrade fail);
    ``unseeded_tables`` (table → why) get no rows, and are named in the coverage. ``at_old`` runs
    once OLD is reached, before any row is written (the template of later fresh databases).
    """
    trip = _Trip(runner, Seeder(runner.conn))
    stopped = _up_to_old(trip, old, base, say, at_old)
    if stopped is not None:
        return stopped
    schema_a = _seed_old(trip, seed_sql, unseeded_tables or {}) if seed else trip.inspect()
    pause_point("roundtrip:seeded")
    if runner.cancelled():
        raise Cancelled("the run is closing")

    say(f"upgrading to NEW's head {new}")
    with heartbeat(say, f"waiting for the upgrade to NEW's head {new}"):
        failed = runner.upgrade(new)
    if failed:
        return _failed(trip, "upgrade-failed", "upgrade to NEW", failed)
    schema_b = trip.inspect()
    trip.lap("upgrade_new")
    if seed:
        trip.old_seed_errors = dict(trip.seeder.errors)
        trip.seeder.errors.clear()
        _seed_new(trip, schema_a, schema_b, renamed)
    trip.lap("seed_new")

    say(f"downgrading {len(path)} revision(s) one at a time")
    with heartbeat(say, f"waiting for the downgrade of {len(path)} revision(s)"):
        failed = runner.downgrade(path)
    trip.lap("downgrade")
    if failed:
        return _failed(trip, "downgrade-failed", "downgrade", failed)
    schema_a2 = trip.inspect()
    checked = _Checked(
        tuple(diff_schema(schema_a, schema_a2)),
        _old_data_lost(trip, schema_a, schema_a2),
        _new_data_removed(trip, schema_a2),
    )
    trip.lap("check_downgrade")

    say("upgrading again to NEW's head")
    with heartbeat(say, f"waiting for the upgrade again to NEW's head {new}"):
        failed = runner.upgrade(new)
    if failed:
        trip.lap("reupgrade")
        return _failed(trip, "reupgrade-failed", "re-upgrade", failed, checked)
    reupgrade = tuple(diff_schema(schema_b, trip.inspect()))
    trip.lap("reupgrade")
    return trip.record("completed", checked=checked, reupgrade=reupgrade)


def _failed(
    trip: _Trip, status: str, stage: str, failed: Failed, checked: _Checked | None = None
) -> RoundTrip:
    return trip.record(status, StepFailure(stage, failed.revision, failed.error), checked)


def _seed_old(trip: _Trip, seed_sql: Path | None, skip: Mapping[str, str]) -> Schema:
    """OLD's schema (A), the user's seed file, then generated rows in every table of it (but
    ``skip``'s, whose reasons become seeding errors)."""
    schema_a = trip.inspect()
    if seed_sql is not None:
        run_seed_sql(trip.conn, seed_sql)
    trip.skip = frozenset(skip)
    tables = [t for t in schema_a.tables if t not in skip]
    trip.seeder.errors.update({t: why for t, why in skip.items() if t in schema_a.tables})
    trip.seeded = trip.seeder.insert(schema_a, tables, 0, OLD_ROWS)
    trip.old_rows = {
        t: read_rows(trip.conn, schema_a, t, list(schema_a.tables[t]["columns"]))
        for t in schema_a.tables
    }
    trip.lap("seed_old")
    return schema_a


def _seed_new(trip: _Trip, schema_a: Schema, schema_b: Schema, renamed: frozenset[str]) -> None:
    """NEW-era data: rows in NEW's new tables, values in its new columns of OLD's rows, and
    NEW-era rows in the tables OLD had too."""
    seeder, conn = trip.seeder, trip.conn
    new_tables = [
        t
        for t in schema_b.tables
        if t not in schema_a.tables and t not in renamed and t not in trip.skip
    ]
    trip.written_new.update(seeder.insert(schema_b, new_tables, NEW_OFFSET, NEW_ROWS))
    for t in schema_b.tables:
        if t not in schema_a.tables or t in trip.skip:
            continue
        added = [
            c
            for c in schema_b.tables[t]["columns"]
            if c not in schema_a.tables[t]["columns"] and f"{t}.{c}" not in renamed
        ]
        if added:
            keys = list(trip.old_rows.get(t, {}))
            if seeder.fill(schema_b, t, added, keys):
                for c in added:
                    trip.written_new[f"{t}.{c}"] = len(keys)
        before = set(read_rows(conn, schema_b, t, []))
        if seeder.insert(schema_b, [t], NEW_OFFSET, NEW_ROWS):
            trip.new_era_keys[t] = [k for k in read_rows(conn, schema_b, t, []) if k not in before]


def _old_data_lost(trip: _Trip, schema_a: Schema, schema_a2: Schema) -> dict[str, int]:
    """OLD-era rows gone (``table``) and values changed or gone (``table.column``) after the
    downgrade."""
    lost_by: dict[str, int] = {}
    for t, rows in trip.old_rows.items():
        if t not in schema_a2.tables:
            if rows:
                lost_by[t] = len(rows)
            continue
        cols = list(schema_a.tables[t]["columns"])
        present = [c for c in cols if c in schema_a2.tables[t]["columns"]]
        now = read_rows(trip.conn, schema_a2, t, present)
        missing_rows = [k for k in rows if k not in now]
        if missing_rows:
            lost_by[t] = len(missing_rows)
        for ci, c in enumerate(cols):
            if c not in present:
                lost = sum(1 for r in rows.values() if r[ci] is not None)
            else:
                pi = present.index(c)
                lost = sum(1 for k, r in rows.items() if k in now and now[k][pi] != r[ci])
            if lost:
                lost_by[f"{t}.{c}"] = lost
    return lost_by


def _new_data_removed(trip: _Trip, schema_a2: Schema) -> dict[str, int]:
    """NEW-era data the downgrade took away: new tables and columns, NEW-era rows."""
    removed: dict[str, int] = {}
    for obj, n in trip.written_new.items():
        table, _, col = obj.partition(".")
        if table not in schema_a2.tables or (col and col not in schema_a2.tables[table]["columns"]):
            removed[obj] = n
    for t, keys in trip.new_era_keys.items():
        if t in schema_a2.tables:
            survivors = read_rows(trip.conn, schema_a2, t, [])
            gone = sum(1 for k in keys if k not in survivors)
            if gone:
                removed[f"{t}{ERA_ROWS}"] = gone
    return removed
