"""Databases compatcheck owns for the length of one round trip, and nothing else.

DESIGN.md's safety rule: migrations run only on a temporary SQLite file or on a
``compatcheck_<random>`` database created on the given server, dropped afterwards even on failure,
Ctrl-C or SIGTERM; a database that already has tables is refused unless the caller says
``allow_existing``. Passwords never leave this module unmasked: :attr:`Scratch.display` is what
messages show.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from compatcheck.errors import InputError, UnavailableError
from compatcheck.masking import mask_secrets as mask

#: Seconds to wait for a server to accept a connection.
CONNECT_TIMEOUT = 10


@dataclass
class Scratch:
    """One scratch database: the engine, the URL to give Alembic, and how to name it safely."""

    url: URL
    engine: Engine
    display: str
    dialect: str
    #: True when compatcheck created the database (or temp file) and will remove it.
    owned: bool


def one_line(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _connect_args(url: URL) -> dict[str, Any]:
    if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": CONNECT_TIMEOUT}
    return {}


def _engine(url: URL, **kw: Any) -> Engine:
    return sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(url), **kw)


def _throwaway_sqlite(dbapi_conn: Any, _record: Any) -> None:
    """No fsync for a file deleted in a minute: each of Alembic's per-revision commits would
    otherwise wait for the disk (most of a round trip's time). Rollback still works."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.execute("PRAGMA journal_mode = MEMORY")
    cursor.close()


def user_tables(conn: Connection) -> list[str]:
    return [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]


def _refuse_if_used(engine: Engine, display: str, allow_existing: bool) -> None:
    try:
        with engine.connect() as conn:
            tables = user_tables(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise UnavailableError(f"cannot connect to {display}: {one_line(exc)}") from exc
    if tables and not allow_existing:
        raise InputError(
            f"{display} already has {len(tables)} table(s) ({', '.join(sorted(tables)[:5])}); "
            "compatcheck only migrates databases it owns (pass allow_existing / --allow-existing)"
        )


@contextlib.contextmanager
def _cleanup_shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up, so a second Ctrl-C cannot leave a database."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C; ``signum`` lets the CLI exit 143 rather than 130."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks run (the default skips them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def scratch_database(
    db_url: str | None,
    *,
    allow_existing: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Scratch]:
    """Yield a database to migrate, and remove it afterwards whatever happens.

    - ``None``, ``sqlite://`` or ``sqlite:///:memory:``: a temp file (a file, because Alembic and
      compatcheck share it across connections), its folder removed afterwards.
    - ``sqlite:///path``: that file, refused when it has tables unless ``allow_existing``.
    - a PostgreSQL/MySQL/MariaDB URL: ``CREATE DATABASE compatcheck_<random>`` on that server,
      dropped afterwards (``WITH (FORCE)`` on PostgreSQL, so a stuck session cannot keep it).
    """
    say = progress or (lambda _msg: None)
    cleanups: list[Callable[[], None]] = []
    with _sigterm_as_interrupt():
        try:
            scratch = _create(db_url, allow_existing, cleanups, say)
            cleanups.append(scratch.engine.dispose)
            yield scratch
        finally:
            with _cleanup_shielded():
                for fn in reversed(cleanups):
                    with contextlib.suppress(Exception):
                        fn()


def _create(
    db_url: str | None,
    allow_existing: bool,
    cleanups: list[Callable[[], None]],
    say: Callable[[str], None],
) -> Scratch:
    if db_url is not None:
        try:
            url = make_url(db_url)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise InputError(f"database URL {mask(db_url)} is not valid: {exc}") from exc
    backend = url.get_backend_name() if db_url is not None else "sqlite"
    if backend == "sqlite":
        database = url.database if db_url is not None else None
        if database and database != ":memory:" and not database.startswith("file:"):
            engine = _engine(url)
            display = mask(url)
            _refuse_if_used(engine, display, allow_existing)
            return Scratch(url, engine, display, "sqlite", owned=False)
        folder = tempfile.mkdtemp(prefix="compatcheck_")
        cleanups.append(lambda: shutil.rmtree(folder, ignore_errors=True))
        path = Path(folder) / "scratch.sqlite"
        url = URL.create("sqlite", database=str(path))
        say(f"scratch database: temporary SQLite file {path}")
        engine = _engine(url)
        sa.event.listen(engine, "connect", _throwaway_sqlite)
        return Scratch(url, engine, f"sqlite:///{path}", "sqlite", owned=True)
    if backend not in ("postgresql", "mysql", "mariadb"):
        raise InputError(f"database URL {mask(url)}: unsupported backend `{backend}`")
    admin = _engine(url, isolation_level="AUTOCOMMIT")
    cleanups.append(admin.dispose)
    name = f"compatcheck_{secrets.token_hex(6)}"
    quoted = f'"{name}"' if backend == "postgresql" else f"`{name}`"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    except sa.exc.OperationalError as exc:
        raise UnavailableError(f"cannot connect to {mask(url)}: {one_line(exc)}") from exc
    except sa.exc.DBAPIError as exc:
        # No CREATE DATABASE privilege: fall back to the given database if it is empty.
        say(f"cannot create a scratch database on {mask(url)} ({one_line(exc)}); using it")
        engine = _engine(url)
        _refuse_if_used(engine, mask(url), allow_existing)
        return Scratch(url, engine, mask(url), backend, owned=False)

    def drop() -> None:
        suffix = " WITH (FORCE)" if backend == "postgresql" else ""
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{suffix}")

    cleanups.append(drop)
    target = url.set(database=name)
    say(f"scratch database: {name} on {mask(url)}")
    dialect = "postgresql" if backend == "postgresql" else "mysql"
    return Scratch(target, _engine(target), mask(target), dialect, owned=True)


def alembic_url(url: URL) -> str:
    """The URL as Alembic's config wants it: password kept, ``%`` escaped for ConfigParser."""
    return url.render_as_string(hide_password=False).replace("%", "%%")
