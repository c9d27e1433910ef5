"""Rows for the round trip: type-aware, foreign-key ordered, above every key migrations wrote.

The round trip seeds OLD's tables before upgrading and NEW's afterwards, then reads the rows back
after the downgrade: what is gone or changed is data the downgrade lost. Rows are keyed by
primary key (or by the whole row for a table without one).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from compatcheck.errors import InputError
from compatcheck.migrations.schema import Schema
from compatcheck.migrations.scratch import one_line
from compatcheck.migrations.sql import split_sql

#: Rows seeded per OLD table, and NEW-era rows added per table.
OLD_ROWS = 3
NEW_ROWS = 2
#: NEW-era rows use indexes from here, so their keys never collide with OLD-era rows.
NEW_OFFSET = 1000

Row = tuple[Any, ...]


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


#: ``col IN ('a', 'b')`` (SQLite, MariaDB) and ``col::text = ANY (ARRAY['a'::..., ...])``
#: (PostgreSQL), as the database gives CHECK constraints (on one line).
_CHECK_LIST = re.compile(
    r"(?i)^\(*[`\"\[]?(\w+)[`\"\]]?\)*(?:::[\w ]+?)?\s*(?:\bin\s*\(|=\s*any\s*\(\s*array\[)"
)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def _check_choices(schema: Schema, table: str) -> dict[str, list[str]]:
    """Per column, the values a CHECK constraint with a value list allows (rows seeded with
    ``lifecycle_stage_0`` would be rejected by ``lifecycle_stage IN ('active', 'deleted')``)."""
    out: dict[str, list[str]] = {}
    names = {str(c["name"]).lower(): str(c["name"]) for c in schema.raw[table]}
    for check in schema.checks.get(table, ()):
        m = _CHECK_LIST.match(check.strip("( "))
        lower = check.lower()
        if m is None or m.group(1).lower() not in names or " or " in lower or " and " in lower:
            continue
        values = [v.replace("''", "'") for v in _QUOTED.findall(check[m.end() :])]
        if values:
            out[names[m.group(1).lower()]] = values
    return out


def _small_int(col: dict[str, Any], value: int) -> int:
    """Keep an integer inside a TINYINT/SMALLINT (MariaDB reflects a BOOLEAN as TINYINT(1))."""
    kind = type(col["type"]).__name__.upper()
    if kind == "TINYINT":
        return value % 2 if getattr(col["type"], "display_width", None) == 1 else value % 127
    if kind == "SMALLINT":
        return value % 32767
    return value


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
        choices: Mapping[str, list[str]] | None = None,
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
            if choices and name in choices:
                row[name] = choices[name][i % len(choices[name])]
                continue
            row[name] = _value(col, i)
            if floors and name in floors:
                row[name] += floors[name]
            if isinstance(row[name], int) and not isinstance(row[name], bool):
                row[name] = _small_int(col, row[name])
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
        t = schema.table(table)
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
            choices = _check_choices(schema, table)
            rows = [
                self._row(schema, table, i, floors=floors, choices=choices)
                for i in range(start, start + count)
            ]
            try:
                self.conn.execute(schema.table(table).insert(), rows)
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
        t = schema.table(table)
        choices = _check_choices(schema, table)
        done = 0
        for n, key in enumerate(keys):
            values = self._row(schema, table, NEW_OFFSET + 100 + n, set(columns), choices=choices)
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
    if not pk:
        # Trap: without a primary key the whole row is the key; selecting only ``columns``
        # (none, to list the keys) would be an empty SELECT.
        pk = [c["name"] for c in schema.raw[table] if not c.get("computed")]
    t = schema.table(table)
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"seed file {path}: cannot read: {exc.strerror}") from exc
    for stmt in split_sql(text):
        try:
            conn.exec_driver_sql(stmt)
        except sa.exc.SQLAlchemyError as exc:
            conn.rollback()
            raise InputError(f"seed file {path}: {one_line(exc)}") from exc
    conn.commit()
