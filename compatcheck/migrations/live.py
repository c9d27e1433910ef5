"""Read-only counts on a live database: how much data the downgrade would destroy there.

Safety (the public contract): a read-only transaction with a statement timeout; nothing is
written, the transaction is rolled back, and the URL is only ever shown with its password masked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from compatcheck.errors import InputError, UnavailableError
from compatcheck.masking import mask_secrets
from compatcheck.migrations.scratch import engine_for, one_line

#: Milliseconds any one count may take on the live database.
STATEMENT_TIMEOUT_MS = 5000


def _read_only(conn: Connection) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
    elif dialect in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        # MariaDB spells the timeout max_statement_time (seconds), MySQL max_execution_time (ms).
        for stmt in (
            f"SET SESSION max_statement_time = {STATEMENT_TIMEOUT_MS / 1000}",
            f"SET SESSION max_execution_time = {STATEMENT_TIMEOUT_MS}",
        ):
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.exec_driver_sql(stmt)
    elif dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


@contextlib.contextmanager
def _live(url: str) -> Iterator[Connection]:
    """A read-only connection to the live database at ``url``: a bad URL is an input error, a
    database error while it is open is "unavailable" (the URL masked), the engine is disposed."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise InputError(f"live database URL {mask_secrets(url)} is not valid: {exc}") from exc
    engine = engine_for(parsed)
    try:
        with engine.connect() as conn:
            _read_only(conn)
            yield conn
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        raise UnavailableError(
            f"cannot read live database {mask_secrets(parsed)}: {one_line(exc)}"
        ) from exc
    finally:
        engine.dispose()


def live_counts(url: str, objects: Iterable[str]) -> dict[str, int | None]:
    """Rows per ``table`` and non-NULL values per ``table.column``; None when absent there."""
    out: dict[str, int | None] = {}
    with _live(url) as conn:
        insp = sa.inspect(conn)
        tables = set(insp.get_table_names())
        columns: dict[str, set[str]] = {}
        for obj in sorted(set(objects)):
            table, _, column = obj.partition(".")
            if table not in tables:
                out[obj] = None
                continue
            if table not in columns:
                columns[table] = {c["name"] for c in insp.get_columns(table)}
            if column and column not in columns[table]:
                out[obj] = None
                continue
            t = sa.table(table, *([sa.column(column)] if column else []))
            what = sa.func.count(t.c[column]) if column else sa.func.count()
            out[obj] = int(conn.execute(sa.select(what).select_from(t)).scalar_one())
    return out


def live_rows(url: str, table: str, columns: Iterable[str]) -> list[tuple[object, ...]] | None:
    """Every row of ``table`` (those ``columns``) on the live database, read-only; None when
    the table is not there."""
    with _live(url) as conn:
        if table not in sa.inspect(conn).get_table_names():
            return None
        t = sa.table(table, *(sa.column(c) for c in columns))
        return [tuple(r) for r in conn.execute(sa.select(*t.c))]
