"""An existing empty database (``--use-existing-empty-database``): the database the URL names,
refused unless empty (nothing but its schemas and extensions), and brought back to empty
afterwards: every table, view, sequence, type and routine the round trip made is dropped, and a
SQLite file compatcheck created is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from compatcheck.errors import InputError, UnavailableError
from compatcheck.interrupts import deferred
from compatcheck.masking import mask_secrets as mask
from compatcheck.migrations.scratch import (
    DROP_LOCK_TIMEOUT,
    Holder,
    Scratch,
    ServerError,
    dialect_of,
    engine_for,
    one_line,
)

_PG_USER_SCHEMA = "{n}.nspname NOT IN ('information_schema') AND {n}.nspname NOT LIKE 'pg\\_%'"
_PG_INVENTORY = f"""
SELECT 'schema', quote_ident(n.nspname) FROM pg_namespace n WHERE {_PG_USER_SCHEMA.format(n="n")}
UNION ALL
SELECT 'extension', quote_ident(extname) FROM pg_extension
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                      WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE 'table' END,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_PG_USER_SCHEMA.format(n="n")}
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
       quote_ident(n.nspname) || '.' || quote_ident(t.typname)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('c', 'd', 'e', 'r') AND {_PG_USER_SCHEMA.format(n="n")}
   AND NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind <> 'c')
UNION ALL
SELECT 'routine', quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                  || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_PG_USER_SCHEMA.format(n="n")}
"""
_MYSQL_INVENTORY = """
SELECT CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' WHEN 'SEQUENCE' THEN 'sequence' ELSE 'table' END,
       TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
UNION ALL
SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES
 WHERE ROUTINE_SCHEMA = DATABASE()
UNION ALL
SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()
"""
_SQLITE_INVENTORY = (
    "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
)
#: Kinds that do not make a database "used": an empty schema, an extension such as plpgsql.
_CONTAINERS = ("schema", "extension")


def inventory(conn: Connection) -> set[tuple[str, str]]:
    """Every (kind, name) object in the database, in every schema (system schemas aside)."""
    dialect = conn.dialect.name
    query = {"postgresql": _PG_INVENTORY, "sqlite": _SQLITE_INVENTORY}.get(
        dialect, _MYSQL_INVENTORY
    )
    rows = {(str(k), str(n)) for k, n in conn.execute(sa.text(query)).all()}
    if conn.in_transaction():
        conn.rollback()
    return rows


#: Drop order per kind (dependents first; CASCADE where the engine has it).
_PG_DROP = {
    "extension": "DROP EXTENSION IF EXISTS {} CASCADE",
    "schema": "DROP SCHEMA IF EXISTS {} CASCADE",
    "materialized view": "DROP MATERIALIZED VIEW IF EXISTS {} CASCADE",
    "view": "DROP VIEW IF EXISTS {} CASCADE",
    "foreign table": "DROP FOREIGN TABLE IF EXISTS {} CASCADE",
    "table": "DROP TABLE IF EXISTS {} CASCADE",
    "sequence": "DROP SEQUENCE IF EXISTS {} CASCADE",
    "domain": "DROP DOMAIN IF EXISTS {} CASCADE",
    "type": "DROP TYPE IF EXISTS {} CASCADE",
    "routine": "DROP ROUTINE IF EXISTS {} CASCADE",
}
_MYSQL_DROP = {
    "event": "DROP EVENT IF EXISTS {}",
    "view": "DROP VIEW IF EXISTS {}",
    "table": "DROP TABLE IF EXISTS {}",
    "sequence": "DROP SEQUENCE IF EXISTS {}",
    "procedure": "DROP PROCEDURE IF EXISTS {}",
    "function": "DROP FUNCTION IF EXISTS {}",
}
_SQLITE_DROP = {
    "trigger": "DROP TRIGGER IF EXISTS {}",
    "view": "DROP VIEW IF EXISTS {}",
    "table": "DROP TABLE IF EXISTS {}",
    "index": "DROP INDEX IF EXISTS {}",
}


def _restore(engine: Engine, before: set[tuple[str, str]]) -> None:
    """Drop everything that is not in ``before``; :class:`ServerError` naming what remains."""
    try:
        with engine.connect() as conn:
            dialect = conn.dialect.name
            if dialect == "mysql":
                conn.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 0")
            elif dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            elif dialect == "postgresql":
                conn.exec_driver_sql(f"SET lock_timeout = '{DROP_LOCK_TIMEOUT}s'")
            conn.commit()
            created = inventory(conn) - before
            plan = {"postgresql": _PG_DROP, "mysql": _MYSQL_DROP, "sqlite": _SQLITE_DROP}[dialect]
            quote: Callable[[str], str] = conn.dialect.identifier_preparer.quote_identifier
            if dialect == "postgresql":
                quote = str  # the inventory query quote_ident-ed them already
            for kind, statement in plan.items():
                for k, name in sorted(created):
                    if k != kind:
                        continue
                    try:
                        conn.exec_driver_sql(statement.format(quote(name)))
                        conn.commit()
                    except sa.exc.DBAPIError:
                        conn.rollback()
            left = inventory(conn) - before
    except sa.exc.SQLAlchemyError as exc:
        raise ServerError(f"could not restore it: {one_line(exc)}") from exc
    if left:
        shown = ", ".join(f"{k} {n}" for k, n in sorted(left)[:5])
        raise ServerError(f"could not restore it: {len(left)} object(s) remain ({shown})")


def existing_empty(url: URL, holder: Holder, say: Callable[[str], None]) -> Scratch:
    """The database ``url`` names, when it is empty; cleaned back to empty afterwards."""
    display = mask(url)
    sqlite_file: Path | None = None
    existed = True
    if url.get_backend_name() == "sqlite":
        sqlite_file = Path(str(url.database))
        existed = sqlite_file.exists()
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            before = inventory(conn)
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise UnavailableError(f"cannot connect to {display}: {one_line(exc)}") from exc
    used = sorted(f"{k} {n}" for k, n in before if k not in _CONTAINERS)
    if used:
        engine.dispose()
        raise InputError(
            f"{display} is not empty: it has {len(used)} object(s) ({', '.join(used[:5])}); "
            "--use-existing-empty-database only runs in a database without tables, views, "
            "sequences, types or routines in any schema"
        )

    def restore() -> None:
        try:
            if sqlite_file is not None and not existed:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
            else:
                try:
                    _restore(engine, before)
                except ServerError as exc:
                    raise ServerError(f"{display}: {exc}") from exc
        finally:
            engine.dispose()

    with deferred(), holder.creating(restore):
        pass
    say(f"using the existing empty database {display}; what the round trip creates is dropped")
    return Scratch(
        url, engine, display, dialect_of(url) if sqlite_file is None else "sqlite", False
    )
