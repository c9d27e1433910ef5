"""Run the history for real on a scratch database: up to OLD, seed, up to NEW, down, up again.

Why run at all when the static analysis exists: a downgrade can be syntactically fine and still
fail (a constraint, a dialect quirk), leave a PostgreSQL enum behind, or overwrite OLD's rows.
Only a real run on the real engine shows that.

Speed matters (a 50-revision history must beat pytest-alembic's up/down test), so:

- one Alembic :class:`~alembic.script.ScriptDirectory` (scripts imported once) and one database
  connection, handed to ``env.py`` as ``config.attributes["connection"]`` (the Alembic cookbook
  pattern; an ``env.py`` that ignores it opens its own connection from ``sqlalchemy.url``);
- each phase is one ``env.py`` run whose migration function yields one revision step at a time,
  so the step in progress when an error is raised names the culprit;
- the schema is inspected three times (A, B, A') plus once after the re-upgrade (B'), with the
  ``get_multi_*`` inspector calls (one query per aspect on PostgreSQL, not one per table).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from compatcheck.errors import InputError
from compatcheck.interrupts import Cancelled, pause_point
from compatcheck.migrations.scratch import Scratch, alembic_url, one_line

#: Rows seeded per OLD table, and NEW-era rows added per table.
OLD_ROWS = 3
NEW_ROWS = 2
#: NEW-era rows use indexes from here, so their keys never collide with OLD-era rows.
NEW_OFFSET = 1000

Row = tuple[Any, ...]


# --------------------------------------------------------------------------------------------
# Alembic


class Alembic:
    """Runs migration steps in-process on one connection, naming the step that fails."""

    def __init__(self, script_location: Path, scratch: Scratch, conn: Connection) -> None:
        self.buffer = io.StringIO()
        self.cfg = Config(output_buffer=self.buffer)
        self.cfg.set_main_option("script_location", str(script_location))
        self.cfg.set_main_option("sqlalchemy.url", alembic_url(scratch.url))
        self.cfg.attributes["connection"] = conn
        self.conn = conn
        self.cancelled = scratch.cancelled
        self.script = ScriptDirectory.from_config(self.cfg)

    def heads(self) -> tuple[str, ...]:
        heads = MigrationContext.configure(self.conn).get_current_heads()
        self._settle()
        return tuple(heads)

    def _settle(self) -> None:
        if self.conn.in_transaction():
            self.conn.commit()

    def upgrade_steps(self, target: str) -> list[tuple[str, MigrationStep]]:
        revs = self.script.iterate_revisions(target, self.heads(), implicit_base=True)
        rmap = self.script.revision_map
        return [
            (s.revision, MigrationStep.upgrade_from_script(rmap, s)) for s in reversed(list(revs))
        ]

    def downgrade_steps(self, path: Iterable[str]) -> list[tuple[str, MigrationStep]]:
        rmap = self.script.revision_map
        out: list[tuple[str, MigrationStep]] = []
        for rev in path:
            script = self.script.get_revision(rev)
            if script is None:  # pragma: no cover - graph and Alembic disagree
                raise InputError(f"Alembic does not know revision `{rev}`")
            out.append((rev, MigrationStep.downgrade_from_script(rmap, script)))
        return out

    def run(
        self,
        steps: list[tuple[str, MigrationStep]],
        *,
        as_sql: bool = False,
        starting_rev: str | None = None,
    ) -> tuple[str | None, str] | None:
        """Run the steps; None on success, else (revision in progress or None, error line)."""
        current: list[str | None] = [None]

        def fn(rev: Any, context: Any) -> Iterator[MigrationStep]:
            for rev_id, step in steps:
                if self.cancelled():
                    raise Cancelled(f"stopped before `{rev_id}`: the run is closing")
                current[0] = rev_id
                yield step
            current[0] = None

        self._settle()
        try:
            with EnvironmentContext(
                self.cfg, self.script, fn=fn, as_sql=as_sql, starting_rev=starting_rev
            ):
                self.script.run_env()
        except Exception as exc:
            if not as_sql:
                self.conn.rollback()
            return current[0], one_line(exc)
        finally:
            if not as_sql and self.conn.in_transaction():
                self.conn.commit()
        return None


# --------------------------------------------------------------------------------------------
# Schema


@dataclass
class Schema:
    """A comparable description of every user table, plus enum types (PostgreSQL)."""

    tables: dict[str, dict[str, Any]]
    enums: dict[str, tuple[str, ...]]
    #: Reflected column dicts per table (types included), to build insert/select statements.
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    return None if value is None else " ".join(str(value).split()).strip("()").lower()


def inspect_schema(conn: Connection) -> Schema:
    insp = sa.inspect(conn)
    names = [t for t in insp.get_table_names() if t != "alembic_version"]
    if not names:
        conn.commit()
        return Schema({}, {})
    cols = insp.get_multi_columns(filter_names=names)
    pks = insp.get_multi_pk_constraint(filter_names=names)
    fks = insp.get_multi_foreign_keys(filter_names=names)
    idx = insp.get_multi_indexes(filter_names=names)
    uqs = insp.get_multi_unique_constraints(filter_names=names)
    cks: dict[Any, Any]
    try:
        cks = dict(insp.get_multi_check_constraints(filter_names=names))
    except NotImplementedError:
        cks = {}
    enums: dict[str, tuple[str, ...]] = {}
    if conn.dialect.name == "postgresql":
        enums = {e["name"]: tuple(e["labels"]) for e in insp.get_enums()}  # type: ignore[attr-defined]
    tables: dict[str, dict[str, Any]] = {}
    schema = Schema(tables, enums)
    for (_, name), columns in cols.items():
        key = (None, name)
        described = {}
        for c in columns:
            try:
                type_ = str(c["type"].compile(dialect=conn.dialect))
            except Exception:
                type_ = repr(c["type"])
            described[c["name"]] = {
                "type": type_.upper().replace(" ", ""),
                "nullable": bool(c["nullable"]),
                "default": _text(c.get("default")),
            }
        pk_info: dict[str, Any] = dict(pks.get(key) or {})
        pk = tuple(pk_info.get("constrained_columns") or ())
        tables[name] = {
            "columns": described,
            "primary_key": list(pk),
            "foreign_keys": sorted(
                f"({','.join(f['constrained_columns'])}) -> {f['referred_table']}"
                f"({','.join(f['referred_columns'])})"
                for f in fks.get(key, [])
            ),
            "indexes": sorted(
                f"{i['name']}({','.join(str(x) for x in i['column_names'])})"
                + (" unique" if i.get("unique") else "")
                for i in idx.get(key, [])
            ),
            "unique": sorted(f"({','.join(u['column_names'])})" for u in uqs.get(key, [])),
            "checks": sorted(str(_text(ck["sqltext"])) for ck in cks.get(key, [])),
        }
        schema.raw[name] = [dict(c) for c in columns]
        schema.pks[name] = pk
        schema.fks[name] = [dict(f) for f in fks.get(key, [])]
    conn.commit()
    return schema


def diff_schema(before: Schema, after: Schema) -> list[dict[str, str]]:
    """Differences from ``before`` to ``after``, each ``{"object", "change"}``, sorted."""
    out: list[dict[str, str]] = []
    for table in sorted(set(before.tables) | set(after.tables)):
        a, b = before.tables.get(table), after.tables.get(table)
        if a is None:
            out.append({"object": table, "change": "table added"})
            continue
        if b is None:
            out.append({"object": table, "change": "table missing"})
            continue
        for col in sorted(set(a["columns"]) | set(b["columns"])):
            ca, cb = a["columns"].get(col), b["columns"].get(col)
            obj = f"{table}.{col}"
            if ca is None:
                out.append({"object": obj, "change": "column added"})
            elif cb is None:
                out.append({"object": obj, "change": "column missing"})
            else:
                for key in ("type", "nullable", "default"):
                    if ca[key] != cb[key]:
                        out.append({"object": obj, "change": f"{key} {ca[key]} -> {cb[key]}"})
        for key in ("primary_key", "foreign_keys", "indexes", "unique", "checks"):
            if a[key] != b[key]:
                extra = sorted(set(map(str, b[key])) - set(map(str, a[key])))
                gone = sorted(set(map(str, a[key])) - set(map(str, b[key])))
                change = (
                    "; ".join(
                        p
                        for p in (
                            f"added {', '.join(extra)}" if extra else "",
                            f"missing {', '.join(gone)}" if gone else "",
                        )
                        if p
                    )
                    or f"{a[key]} -> {b[key]}"
                )
                out.append({"object": f"{table} {key.replace('_', ' ')}", "change": change})
    for enum in sorted(set(before.enums) | set(after.enums)):
        ea, eb = before.enums.get(enum), after.enums.get(enum)
        if ea is None:
            out.append({"object": enum, "change": "enum type added (left behind)"})
        elif eb is None:
            out.append({"object": enum, "change": "enum type missing"})
        elif ea != eb:
            out.append({"object": enum, "change": f"enum labels {list(ea)} -> {list(eb)}"})
    return out


# --------------------------------------------------------------------------------------------
# Data


def _value(col: dict[str, Any], i: int) -> Any:
    """A value for row ``i`` of a column that fits its type and is unique per row."""
    t = col["type"]
    name = str(col["name"])
    if isinstance(t, sa.Enum) and t.enums:
        return t.enums[i % len(t.enums)]
    if isinstance(t, sa.Boolean):
        return i % 2 == 0
    if isinstance(t, sa.Integer):
        return i + 1
    if isinstance(t, sa.Float):
        return i + 1.5
    if isinstance(t, sa.Numeric):
        return decimal.Decimal(i + 1) + decimal.Decimal("0.25")
    if isinstance(t, sa.DateTime):
        return dt.datetime(2024, 1, 1, 12, 0, 0) + dt.timedelta(days=i)
    if isinstance(t, sa.Date):
        return dt.date(2024, 1, 1) + dt.timedelta(days=i)
    if isinstance(t, sa.Time):
        return dt.time(i % 24, i % 60)
    if isinstance(t, sa.Interval):
        return dt.timedelta(minutes=i + 1)
    if isinstance(t, sa.LargeBinary):
        return f"b{i}".encode()
    if isinstance(t, sa.JSON):
        return {"i": i}
    if isinstance(t, sa.Uuid):
        return uuid.UUID(int=i + 1)
    text = f"{name}_{i}"
    length = getattr(t, "length", None)
    if isinstance(length, int) and 0 < length < len(text):
        text = text[-length:]
    return text


def _fk_order(schema: Schema, tables: Iterable[str]) -> list[str]:
    """Parents before children; cycles broken by name order."""
    todo = sorted(tables)
    done: list[str] = []
    while todo:
        for t in todo:
            parents = {f["referred_table"] for f in schema.fks.get(t, [])} - {t}
            if not (parents & set(todo)):
                break
        else:
            t = todo[0]
        done.append(t)
        todo.remove(t)
    return done


def _table(schema: Schema, name: str, columns: Iterable[str] | None = None) -> sa.Table:
    keep = set(columns) if columns is not None else None
    return sa.Table(
        name,
        sa.MetaData(),
        *[
            sa.Column(c["name"], c["type"])
            for c in schema.raw[name]
            if (keep is None or c["name"] in keep) and not c.get("computed")
        ],
    )


def _unique_columns(schema: Schema, table: str) -> set[str]:
    """Columns of the primary key, of a unique constraint or of a unique index."""
    described = schema.tables[table]
    out = set(schema.pks.get(table) or ())
    for u in described["unique"]:
        out.update(u.strip("()").split(","))
    for i in described["indexes"]:
        if i.endswith(" unique"):
            out.update(i[i.index("(") + 1 : i.rindex(")")].split(","))
    return out


@dataclass
class Seeder:
    """Type-aware, FK-ordered, unique-respecting rows; remembers what it wrote."""

    conn: Connection
    errors: dict[str, str] = field(default_factory=dict)
    #: Values written per (table, column) and row index, to feed foreign keys.
    written: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def _row(
        self,
        schema: Schema,
        table: str,
        i: int,
        only: set[str] | None = None,
        floors: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        fk_of: dict[str, tuple[str, str]] = {}
        for fk in schema.fks.get(table, []):
            for lc, rc in zip(fk["constrained_columns"], fk["referred_columns"], strict=False):
                fk_of[lc] = (fk["referred_table"], rc)
        row: dict[str, Any] = {}
        for col in schema.raw[table]:
            name = col["name"]
            if col.get("computed") or (only is not None and name not in only):
                continue
            if name in fk_of:
                parent = self.written.get(fk_of[name])
                if parent:
                    row[name] = parent[i % len(parent)]
                    continue
                if col["nullable"]:
                    row[name] = None
                    continue
            row[name] = _value(col, i)
            if floors and name in floors:
                row[name] += floors[name]
        return row

    def _floors(self, schema: Schema, table: str) -> dict[str, int]:
        """The largest value of each unique integer column (key, unique constraint or index).

        Trap: migrations insert rows of their own (a catalogue, a default tenant) with ids 1, 2,
        3...; seeding the same ids fails on the primary key, and a table the seeder could not
        fill is a table whose data the round trip never checks. Seeding above the maximum avoids
        them all.
        """
        fk_cols = {c for fk in schema.fks.get(table, []) for c in fk["constrained_columns"]}
        unique = _unique_columns(schema, table)
        ints = [
            c["name"]
            for c in schema.raw[table]
            if isinstance(c["type"], sa.Integer)
            and not c.get("computed")
            and c["name"] in unique
            and c["name"] not in fk_cols
        ]
        if not ints:
            return {}
        t = _table(schema, table, ints)
        try:
            top = self.conn.execute(sa.select(*[sa.func.max(t.c[c]) for c in ints])).one()
            self.conn.commit()
        except sa.exc.SQLAlchemyError:
            self.conn.rollback()
            return {}
        return {c: int(v) for c, v in zip(ints, top, strict=True) if v is not None}

    def insert(
        self, schema: Schema, tables: Iterable[str], start: int, count: int
    ) -> dict[str, int]:
        """Insert ``count`` rows per table (FK order); returns rows inserted per table."""
        inserted: dict[str, int] = {}
        for table in _fk_order(schema, tables):
            floors = self._floors(schema, table)
            rows = [self._row(schema, table, i, floors=floors) for i in range(start, start + count)]
            try:
                self.conn.execute(_table(schema, table).insert(), rows)
                self.conn.commit()
            except sa.exc.SQLAlchemyError as exc:
                self.conn.rollback()
                self.errors[table] = one_line(exc)
                continue
            inserted[table] = count
            for row in rows:
                for col, value in row.items():
                    self.written.setdefault((table, col), []).append(value)
        return inserted

    def fill(self, schema: Schema, table: str, columns: list[str], keys: list[Row]) -> int:
        """Set NEW columns on existing rows (by primary key); returns values written."""
        pk = schema.pks.get(table) or ()
        if not pk or not keys:
            return 0
        t = _table(schema, table, [*pk, *columns])
        done = 0
        for n, key in enumerate(keys):
            values = self._row(schema, table, NEW_OFFSET + 100 + n, set(columns))
            cond = sa.and_(*[t.c[k] == v for k, v in zip(pk, key, strict=True)])
            try:
                self.conn.execute(t.update().where(cond).values(**values))
                self.conn.commit()
            except sa.exc.SQLAlchemyError as exc:
                self.conn.rollback()
                self.errors[table] = one_line(exc)
                return done
            done += len(columns)
        return done


def read_rows(conn: Connection, schema: Schema, table: str, columns: list[str]) -> dict[Row, Row]:
    """Rows keyed by primary key (or by the whole row when there is none), values in order."""
    pk = list(schema.pks.get(table) or ())
    t = _table(schema, table, set(columns) | set(pk))
    cols = [t.c[c] for c in columns if c in t.c]
    rows = conn.execute(sa.select(*[t.c[k] for k in pk], *cols)).all()
    conn.commit()
    n = len(pk)
    out: dict[Row, Row] = {}
    for r in rows:
        key = tuple(r[:n]) if n else tuple(r)
        out[key] = tuple(r[n:])
    return out


def run_seed_sql(conn: Connection, path: Path) -> None:
    """Execute a user seed file statement by statement; a failure names the file."""
    from compatcheck.migrations.static import _split_sql

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"seed file {path}: cannot read: {exc.strerror}") from exc
    for stmt in _split_sql(text):
        try:
            conn.exec_driver_sql(stmt)
        except sa.exc.SQLAlchemyError as exc:
            conn.rollback()
            raise InputError(f"seed file {path}: {one_line(exc)}") from exc
    conn.commit()


# --------------------------------------------------------------------------------------------
# The round trip


@dataclass
class Observation:
    """What the round trip saw, before attribution to revisions."""

    status: str = "not-run"
    #: (stage, revision or None, error) when a phase failed.
    failure: tuple[str, str | None, str] | None = None
    mismatch: list[dict[str, str]] = field(default_factory=list)
    reupgrade_mismatch: list[dict[str, str]] = field(default_factory=list)
    #: OLD-era values lost per object (``table`` → rows, ``table.column`` → values).
    old_lost: dict[str, int] = field(default_factory=dict)
    #: NEW-era data the downgrade removed, same keys.
    new_removed: dict[str, int] = field(default_factory=dict)
    seed_errors: dict[str, str] = field(default_factory=dict)
    seeded: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def round_trip(
    alembic: Alembic,
    old: str | None,
    new: str,
    path: list[str],
    *,
    seed_sql: Path | None = None,
    renamed: frozenset[str] = frozenset(),
    say: Callable[[str], None] = lambda _m: None,
) -> Observation:
    """Up to OLD → A, seed, up to NEW → B, NEW-era rows, down the path → A', checks, up → B'.

    ``renamed`` lists rename targets (``table``, ``table.column``) of the path's upgrades: they
    hold OLD's data under a new name, so they are not "new" and get no NEW-era values.
    """
    obs = Observation()
    conn = alembic.conn
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        obs.timings[name] = round(now - clock, 4)
        clock = now

    if old is not None:
        say(f"upgrading to OLD's head {old}")
        failed = alembic.run(alembic.upgrade_steps(old))
        if failed:
            obs.status, obs.failure = "upgrade-failed", ("upgrade to OLD", *failed)
            return obs
    lap("upgrade_old")
    schema_a = inspect_schema(conn)
    if seed_sql is not None:
        run_seed_sql(conn, seed_sql)
    seeder = Seeder(conn)
    obs.seeded = seeder.insert(schema_a, schema_a.tables, 0, OLD_ROWS)
    old_rows = {
        t: read_rows(conn, schema_a, t, list(schema_a.tables[t]["columns"]))
        for t in schema_a.tables
    }
    lap("seed_old")
    pause_point("roundtrip:seeded")
    if alembic.cancelled():
        raise Cancelled("the run is closing")

    say(f"upgrading to NEW's head {new}")
    failed = alembic.run(alembic.upgrade_steps(new))
    if failed:
        obs.status, obs.failure = "upgrade-failed", ("upgrade to NEW", *failed)
        obs.seed_errors = seeder.errors
        return obs
    schema_b = inspect_schema(conn)
    lap("upgrade_new")
    new_tables = [t for t in schema_b.tables if t not in schema_a.tables and t not in renamed]
    written_new: dict[str, int] = {}
    for t, n in seeder.insert(schema_b, new_tables, NEW_OFFSET, NEW_ROWS).items():
        written_new[t] = n
    new_era_keys: dict[str, list[Row]] = {}
    for t in schema_b.tables:
        if t not in schema_a.tables:
            continue
        added = [
            c
            for c in schema_b.tables[t]["columns"]
            if c not in schema_a.tables[t]["columns"] and f"{t}.{c}" not in renamed
        ]
        if added:
            keys = list(old_rows.get(t, {}))
            if seeder.fill(schema_b, t, added, keys):
                for c in added:
                    written_new[f"{t}.{c}"] = len(keys)
        before = set(read_rows(conn, schema_b, t, []))
        if seeder.insert(schema_b, [t], NEW_OFFSET, NEW_ROWS):
            new_era_keys[t] = [k for k in read_rows(conn, schema_b, t, []) if k not in before]
    obs.seed_errors = seeder.errors
    lap("seed_new")

    say(f"downgrading {len(path)} revision(s) one at a time")
    failed = alembic.run(alembic.downgrade_steps(path))
    lap("downgrade")
    if failed:
        obs.status, obs.failure = "downgrade-failed", ("downgrade", *failed)
        return obs
    schema_a2 = inspect_schema(conn)
    obs.mismatch = diff_schema(schema_a, schema_a2)
    for t, rows in old_rows.items():
        if t not in schema_a2.tables:
            if rows:
                obs.old_lost[t] = len(rows)
            continue
        cols = list(schema_a.tables[t]["columns"])
        present = [c for c in cols if c in schema_a2.tables[t]["columns"]]
        now = read_rows(conn, schema_a2, t, present)
        missing_rows = [k for k in rows if k not in now]
        if missing_rows:
            obs.old_lost[t] = len(missing_rows)
        for ci, c in enumerate(cols):
            if c not in present:
                lost = sum(1 for r in rows.values() if r[ci] is not None)
            else:
                pi = present.index(c)
                lost = sum(1 for k, r in rows.items() if k in now and now[k][pi] != r[ci])
            if lost:
                obs.old_lost[f"{t}.{c}"] = lost
    for obj, n in written_new.items():
        table, _, col = obj.partition(".")
        if table not in schema_a2.tables or (col and col not in schema_a2.tables[table]["columns"]):
            obs.new_removed[obj] = n
    for t, keys in new_era_keys.items():
        if t in schema_a2.tables:
            survivors = read_rows(conn, schema_a2, t, [])
            gone = sum(1 for k in keys if k not in survivors)
            if gone:
                obs.new_removed[f"{t} (NEW-era rows)"] = gone
    lap("check_downgrade")

    say("upgrading again to NEW's head")
    failed = alembic.run(alembic.upgrade_steps(new))
    if failed:
        stage, rev, err = "re-upgrade", *failed
        obs.failure = (stage, rev, err)
        obs.status = "reupgrade-failed"
        lap("reupgrade")
        return obs
    obs.reupgrade_mismatch = diff_schema(schema_b, inspect_schema(conn))
    lap("reupgrade")
    obs.status = "completed"
    return obs


def offline_sql(alembic: Alembic, path: list[str], new: str) -> tuple[str, list[dict[str, str]]]:
    """The downgrade rendered as SQL (Alembic ``--sql``), and the revisions that need a database.

    A revision that inspects the database or reads rows cannot render offline; rendering resumes
    after it so the rest of the script is still shown.
    """
    online: list[dict[str, str]] = []
    chunks: list[str] = []
    remaining = list(path)
    while remaining:
        alembic.buffer.seek(0)
        alembic.buffer.truncate()
        failed = alembic.run(
            alembic.downgrade_steps(remaining), as_sql=True, starting_rev=remaining[0]
        )
        chunks.append(alembic.buffer.getvalue())
        if not failed:
            break
        rev, err = failed
        if rev is None:
            online.append({"revision": remaining[0], "error": err})
            break
        online.append({"revision": rev, "error": err})
        chunks.append(f"-- revision {rev} cannot be rendered offline: {err}\n")
        remaining = remaining[remaining.index(rev) + 1 :]
    return "".join(chunks), online
