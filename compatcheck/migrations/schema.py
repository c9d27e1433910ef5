"""A database's schema as a comparable value, and the differences between two of them.

The round trip inspects the scratch database after each phase (A: OLD, B: NEW, A': after the
downgrade, B': after upgrading again) with SQLAlchemy's ``get_multi_*`` inspector calls (one query
per aspect on PostgreSQL, not one per table) and compares A with A' and B with B'.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from compatcheck.migrations.section import SchemaDifference


@dataclass(frozen=True)
class Schema:
    """A comparable description of every user table, plus enum types (PostgreSQL)."""

    tables: dict[str, dict[str, Any]]
    enums: dict[str, tuple[str, ...]]
    #: Reflected column dicts per table (types included), to build insert/select statements.
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: CHECK constraints' SQL as the database gives it (case kept: the values they allow).
    checks: dict[str, list[str]] = field(default_factory=dict)
    #: Tables the comparison and the seeding do not cover (``schema.table``: PostgreSQL tables
    #: outside the connection's default schema), so that coverage says so instead of nothing.
    elsewhere: tuple[str, ...] = ()
    #: SQLAlchemy tables built from ``raw`` for statements, one per table (see :meth:`table`).
    built: dict[str, sa.Table] = field(default_factory=dict, repr=False, compare=False)

    def table(self, name: str) -> sa.Table:
        """``name`` as a SQLAlchemy table of its stored columns (computed ones left out), built
        once: seeding and the data checks ask for it hundreds of times a run."""
        found = self.built.get(name)
        if found is None:
            columns = [
                sa.Column(c["name"], c["type"]) for c in self.raw[name] if not c.get("computed")
            ]
            found = self.built[name] = sa.Table(name, sa.MetaData(), *columns)
        return found


def _text(value: Any) -> str | None:
    return None if value is None else " ".join(str(value).split()).strip("()").lower()


#: PostgreSQL's user tables outside the connection's default schema.
_PG_ELSEWHERE = sa.text(
    "SELECT table_schema, table_name FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema <> current_schema() "
    "AND table_schema <> 'information_schema' AND table_schema NOT LIKE 'pg\\_%' "
    "ORDER BY 1, 2"
)


def inspect_schema(conn: Connection, ignore: Collection[str] = ()) -> Schema:
    """Every user table of the default schema (but the framework's own ``ignore``-d version
    table) and enum type; the tables of other schemas are named in ``elsewhere``."""
    insp = sa.inspect(conn)
    names = [t for t in insp.get_table_names() if t not in ignore]
    elsewhere: tuple[str, ...] = ()
    if conn.dialect.name == "postgresql":
        found = conn.execute(_PG_ELSEWHERE).all()
        elsewhere = tuple(f"{s}.{t}" for s, t in found if t not in ignore)
    if not names:
        conn.commit()
        return Schema({}, {}, elsewhere=elsewhere)
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
    schema = Schema({}, enums, elsewhere=elsewhere)
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
        schema.tables[name] = {
            "columns": described,
            "primary_key": list(pk),
            # PostgreSQL names the key's index after the table it was made on and keeps the
            # name when the table is renamed: a rebuild undone by rename leaves `x_tmp_pkey`.
            "primary_key_name": pk_info.get("name"),
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
        schema.checks[name] = [" ".join(str(ck["sqltext"]).split()) for ck in cks.get(key, [])]
    conn.commit()
    return schema


def diff_schema(before: Schema, after: Schema) -> list[SchemaDifference]:
    """Differences from ``before`` to ``after``, sorted by object."""
    out: list[SchemaDifference] = []
    for table in sorted(set(before.tables) | set(after.tables)):
        a, b = before.tables.get(table), after.tables.get(table)
        if a is None:
            out.append(SchemaDifference(table, "table added"))
            continue
        if b is None:
            out.append(SchemaDifference(table, "table missing"))
            continue
        for col in sorted(set(a["columns"]) | set(b["columns"])):
            ca, cb = a["columns"].get(col), b["columns"].get(col)
            obj = f"{table}.{col}"
            if ca is None:
                out.append(SchemaDifference(obj, "column added"))
            elif cb is None:
                out.append(SchemaDifference(obj, "column missing"))
            else:
                for key in ("type", "nullable", "default"):
                    if ca[key] != cb[key]:
                        out.append(SchemaDifference(obj, f"{key} {ca[key]} -> {cb[key]}"))
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
                out.append(SchemaDifference(f"{table} {key.replace('_', ' ')}", change))
        named = a.get("primary_key_name"), b.get("primary_key_name")
        if all(named) and named[0] != named[1]:  # SQLite often names none: not a difference
            out.append(SchemaDifference(f"{table} primary key", f"named {named[0]} -> {named[1]}"))
    for enum in sorted(set(before.enums) | set(after.enums)):
        ea, eb = before.enums.get(enum), after.enums.get(enum)
        if ea is None:
            out.append(SchemaDifference(enum, "enum type added (left behind)"))
        elif eb is None:
            out.append(SchemaDifference(enum, "enum type missing"))
        elif ea != eb:
            out.append(SchemaDifference(enum, f"enum labels {list(ea)} -> {list(eb)}"))
    return out
