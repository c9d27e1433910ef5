"""A database's schema as a comparable value, and the differences between two of them.

The round trip inspects the scratch database after each phase (A: OLD, B: NEW, A': after the
downgrade, B': after upgrading again) with SQLAlchemy's ``get_multi_*`` inspector calls (one query
per aspect on PostgreSQL, not one per table) and compares A with A' and B with B'.
"""

from __future__ import annotations

import warnings
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
    #: ``schema.table`` keys → (database schema, table name): tables outside the default schema.
    homes: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: SQLAlchemy tables built from ``raw`` for statements, one per table (see :meth:`table`).
    built: dict[str, sa.Table] = field(default_factory=dict, repr=False, compare=False)

    def table(self, name: str) -> sa.Table:
        """``name`` as a SQLAlchemy table of its stored columns (computed ones left out), built
        once: seeding and the data checks ask for it hundreds of times a run."""
        found = self.built.get(name)
        if found is None:
            stored = [c for c in self.raw[name] if not c.get("computed")]
            columns = [sa.Column(c["name"], c["type"]) for c in stored]
            home, table = self.homes.get(name, (None, name))
            found = self.built[name] = sa.Table(table, sa.MetaData(), *columns, schema=home)
        return found


def _text(value: Any) -> str | None:
    return None if value is None else " ".join(str(value).split()).strip("()").lower()


# A column of a type SQLAlchemy does not know (an extension's: ltree, citext) is reflected as
# NullType with a warning on stderr, once per table and run: noise in a report's terminal output.
warnings.filterwarnings("ignore", message="Did not recognize type", category=sa.exc.SAWarning)

#: PostgreSQL's schemas holding user tables, but the connection's default one and those
#: holding only an extension's own tables (pg_cron's `cron.job`, PostGIS's `topology`).
_PG_OTHER_SCHEMAS = sa.text(
    "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname <> current_schema() "
    "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1"
)


def inspect_schema(conn: Connection, ignore: Collection[str] = ()) -> Schema:
    """Every user table (but the framework's own ``ignore``-d version table) and enum type. On
    PostgreSQL the tables of other schemas too, keyed ``schema.table`` (goiardi keeps every
    table in schema ``goiardi``); the default schema's are keyed by their bare name."""
    insp = sa.inspect(conn)
    schema = Schema({}, {})
    others: list[str] = []
    if conn.dialect.name == "postgresql":
        others = [str(n) for (n,) in conn.execute(_PG_OTHER_SCHEMAS)]
    for name in (None, *others):
        _reflect(conn, insp, schema, name, ignore)
    conn.commit()
    return schema


def _key(schema: str | None, table: str) -> str:
    return table if schema is None else f"{schema}.{table}"


def _reflect(
    conn: Connection, insp: Any, schema: Schema, home: str | None, ignore: Collection[str]
) -> None:
    """Add the tables (and enum types) of the database schema ``home`` (None: the default)."""
    names = [t for t in insp.get_table_names(schema=home) if t not in ignore]
    if conn.dialect.name == "postgresql":
        for e in insp.get_enums(schema=home):
            schema.enums[_key(home, e["name"])] = tuple(e["labels"])
    if not names:
        return
    cols = insp.get_multi_columns(schema=home, filter_names=names)
    pks = insp.get_multi_pk_constraint(schema=home, filter_names=names)
    fks = insp.get_multi_foreign_keys(schema=home, filter_names=names)
    idx = insp.get_multi_indexes(schema=home, filter_names=names)
    uqs = insp.get_multi_unique_constraints(schema=home, filter_names=names)
    cks: dict[Any, Any]
    try:
        cks = dict(insp.get_multi_check_constraints(schema=home, filter_names=names))
    except NotImplementedError:
        cks = {}
    default = insp.default_schema_name
    for key, columns in cols.items():
        name = _key(home, key[1])
        if home is not None:
            schema.homes[name] = (home, key[1])
        # A key's referred table as this Schema names it (the default schema's: bare).
        refs = [
            {
                **f,
                "referred_table": _key(
                    _other(f.get("referred_schema"), default), f["referred_table"]
                ),
            }
            for f in fks.get(key, [])
        ]
        parts = (
            dict(pks.get(key) or {}),
            refs,
            idx.get(key, []),
            uqs.get(key, []),
            cks.get(key, []),
        )
        schema.tables[name] = _describe(conn, columns, *parts)
        schema.raw[name] = [dict(c) for c in columns]
        schema.pks[name] = tuple(schema.tables[name]["primary_key"])
        schema.fks[name] = refs
        schema.checks[name] = [" ".join(str(ck["sqltext"]).split()) for ck in cks.get(key, [])]


def _other(schema: str | None, default: str | None) -> str | None:
    """``schema``, or None for the default one (its tables are keyed by their bare name)."""
    return None if schema in (None, default) else schema


def _describe(
    conn: Connection,
    columns: list[dict[str, Any]],
    pk_info: dict[str, Any],
    fks: list[dict[str, Any]],
    indexes: list[dict[str, Any]],
    uniques: list[dict[str, Any]],
    checks: list[dict[str, Any]],
) -> dict[str, Any]:
    """One table as the comparison sees it."""
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
    return {
        "columns": described,
        "primary_key": list(pk_info.get("constrained_columns") or ()),
        # PostgreSQL names the key's index after the table it was made on and keeps the
        # name when the table is renamed: a rebuild undone by rename leaves `x_tmp_pkey`.
        "primary_key_name": pk_info.get("name"),
        "foreign_keys": sorted(
            f"({','.join(f['constrained_columns'])}) -> {f['referred_table']}"
            f"({','.join(f['referred_columns'])})"
            for f in fks
        ),
        "indexes": sorted(
            f"{i['name']}({','.join(str(x) for x in i['column_names'])})"
            + (" unique" if i.get("unique") else "")
            for i in indexes
        ),
        "unique": sorted(f"({','.join(u['column_names'])})" for u in uniques),
        "checks": sorted(str(_text(ck["sqltext"])) for ck in checks),
    }


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
