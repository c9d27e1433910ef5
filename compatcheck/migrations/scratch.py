"""Databases compatcheck owns for the length of a run, and nothing else (the one scratch module).

Two uses, one way of making them: :func:`scratch_database` for a round trip (an engine on a
temporary SQLite file, a database created on a server, or an existing empty one) and
:func:`release_database` for a release that ``check`` launches on a database of its own.

The safety rule of the public contract: migrations run only on a temporary SQLite file or on a
database created on the given server, dropped afterwards even on failure, Ctrl-C or SIGTERM.
There is no fallback: without the right to create one the round trip is unavailable, unless
the caller explicitly asks for ``use_existing_empty`` (``--use-existing-empty-database``); then a
database holding any table, view, sequence, type or routine in any schema is refused, and
everything the run creates in it is dropped afterwards.

``--use-existing-empty-database`` (the database the URL names, refused unless empty, restored to
empty) is :mod:`.existing`.

Who drops what: every database is created inside ``holder.creating(drop)`` (a
:class:`~compatcheck.targets.Workspace`), which records the drop *before* ``CREATE DATABASE`` and
makes the workspace's close wait for a creation in flight, so no database is created after its
owner closed. Names carry the owner's mark (:mod:`compatcheck.leftovers`), so what a killed run
left is recognised and removed by the next one. Passwords never leave this module unmasked:
:attr:`Scratch.display` is what messages show.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from compatcheck import leftovers
from compatcheck.errors import InputError, UnavailableError
from compatcheck.interrupts import deferred, pause_point
from compatcheck.masking import mask_secrets as mask
from compatcheck.targets import Workspace

__all__ = [
    "CONNECT_TIMEOUT",
    "Holder",
    "Scratch",
    "ScratchDatabase",
    "ScratchUnavailable",
    "ServerError",
    "create_server_database",
    "engine_for",
    "list_scratch",
    "mask",
    "new_sqlite",
    "one_line",
    "release_database",
    "scratch_database",
    "server_drop",
    "sqlite_path",
    "throwaway_sqlite",
]

#: Seconds to wait for a server to accept a connection.
CONNECT_TIMEOUT = 10
#: Seconds ``CREATE DATABASE`` may take (it runs with Ctrl-C held back until it ends).
CREATE_TIMEOUT = 30
#: Seconds a drop waits for locks before giving up (a drop must not hang the exit).
DROP_LOCK_TIMEOUT = 30
#: Names compatcheck gives scratch databases, marked or (before owner marks) not.
SCRATCH_NAME = re.compile(r"^compatcheck_[a-z0-9_]{1,52}$")
SERVER_BACKENDS = ("postgresql", "mysql", "mariadb")


@dataclass
class Scratch:
    """One scratch database for a round trip: the engine, its URL, and how to name it safely."""

    url: URL
    engine: Engine
    display: str
    dialect: str
    #: True when compatcheck created the database (or temp file) and will remove it.
    owned: bool
    #: True once the run is closing (Ctrl-C in ``check``): the round trip stops between steps.
    cancelled: Callable[[], bool] = lambda: False
    #: The workspace that owns it, where the round trip's own commands (``--base-command``) run.
    workspace: Workspace | None = None


@dataclass(frozen=True)
class ScratchDatabase:
    """A database a release runs on; ``url`` holds credentials, ``shown`` not."""

    url: str
    shown: str
    kind: str  # "sqlite" | "server"


class Holder(Protocol):
    """Who runs the cleanup of what is created (a :class:`~compatcheck.targets.Workspace`)."""

    #: The run's temp folder (SQLite scratch files go there, removed with it).
    dir: Path | None

    def creating(self, cleanup: Callable[[], None]) -> AbstractContextManager[None]: ...

    def closing(self) -> bool: ...


class ServerError(Exception):
    """A database server refused or failed an operation; ``str()`` is one line."""


class ScratchUnavailable(UnavailableError):
    """No scratch database could be made: the round trip cannot run (``check/unavailable``), but
    the rest of the inspection stands. ``privilege`` names the missing right, when that is why."""

    def __init__(self, message: str, privilege: str | None = None) -> None:
        super().__init__(message)
        self.privilege = privilege


def one_line(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def engine_for(url: URL, **kw: Any) -> Engine:
    """An engine without a pool whose connections give up after :data:`CONNECT_TIMEOUT`; on a
    SQLite file this module made (:data:`_THROWAWAY`), connections that skip fsync."""
    args = {"connect_timeout": CONNECT_TIMEOUT} if url.get_backend_name() != "sqlite" else {}
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=args, **kw)
    if url.get_backend_name() == "sqlite" and url.database in _THROWAWAY:
        sa.event.listen(engine, "connect", throwaway_sqlite)
    return engine


def _parse(db_url: str | URL, what: str = "database URL") -> URL:
    try:
        return make_url(db_url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise InputError(f"{what} {mask(db_url)} is not valid: {exc}") from exc


def throwaway_sqlite(dbapi_conn: Any, _record: Any = None) -> None:
    """No fsync for a file deleted in a minute: each of Alembic's per-revision commits would
    otherwise wait for the disk (most of a round trip's time, and of a release's migration
    before its launch: tens of milliseconds a commit on a busy disk). Rollback still works.
    Per connection: the release that runs on the file later keeps SQLite's defaults."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.execute("PRAGMA journal_mode = MEMORY")
    cursor.close()


# --- databases on a server ---------------------------------------------------------------------


def _quoted(dialect: str, name: str) -> str:
    # Trap: the name goes into DDL, which takes no bind parameters; only our own names pass.
    if not SCRATCH_NAME.match(name):
        raise ValueError(f"not a scratch database name: {name!r}")
    return f'"{name}"' if dialect == "postgresql" else f"`{name}`"


def dialect_of(url: URL) -> str:
    return "postgresql" if url.get_backend_name() == "postgresql" else "mysql"


def _admin(url: URL) -> Engine:
    """An autocommit engine for CREATE/DROP DATABASE on the server behind ``url``.

    On MariaDB/MySQL it connects to no database in particular: an account allowed only
    ``compatcheck\\_%`` databases cannot open the ``mysql`` database an admin URL often names.
    """
    if dialect_of(url) == "mysql":
        # Trap: ``url.set(database=None)`` keeps the database (None means "unchanged").
        url = URL.create(
            url.drivername, url.username, url.password, url.host, url.port, None, url.query
        )
    return engine_for(url, isolation_level="AUTOCOMMIT")


def _drop(admin: Engine, dialect: str, name: str) -> None:
    """End the sessions still on the database, then drop it (it may not exist)."""
    quoted = _quoted(dialect, name)
    with admin.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SET lock_timeout = '{DROP_LOCK_TIMEOUT}s'")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
            return
        # Trap: MariaDB's DROP DATABASE waits (lock_wait_timeout: a year) for the metadata locks
        # of a session still inside a transaction there, e.g. a worker interrupted mid-migration.
        conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {DROP_LOCK_TIMEOUT}")
        sessions = conn.execute(
            sa.text(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = :n AND ID <> CONNECTION_ID()"
            ),
            {"n": name},
        ).scalars()
        for session in list(sessions):
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.exec_driver_sql(f"KILL CONNECTION {int(session)}")
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")


def server_drop(server_url: str | URL, name: str) -> None:
    """Drop one scratch database on the server behind ``server_url``; :class:`ServerError`."""
    url = _parse(server_url)
    admin = _admin(url)
    try:
        _drop(admin, dialect_of(url), name)
    except sa.exc.SQLAlchemyError as exc:
        raise ServerError(one_line(exc)) from exc
    finally:
        admin.dispose()


def list_scratch(server_url: str | URL) -> list[str]:
    """Names of the ``compatcheck_*`` databases on the server; :class:`ServerError`."""
    url = _parse(server_url)
    if url.get_backend_name() not in SERVER_BACKENDS:
        return []
    engine = _admin(url)
    if dialect_of(url) == "postgresql":
        query = "SELECT datname FROM pg_database WHERE datname LIKE 'compatcheck\\_%'"
    else:
        query = (
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME LIKE 'compatcheck\\_%'"
        )
    try:
        with engine.connect() as conn:
            return sorted(str(r) for r in conn.execute(sa.text(query)).scalars())
    except sa.exc.SQLAlchemyError as exc:
        raise ServerError(one_line(exc)) from exc
    finally:
        engine.dispose()


def _missing_privilege(exc: sa.exc.SQLAlchemyError, url: URL, dialect: str) -> str | None:
    """The right the server says the user lacks to create a database, or None."""
    orig = getattr(exc, "orig", None)
    user = url.username or "(default user)"
    if dialect == "postgresql" and getattr(orig, "sqlstate", None) == "42501":
        return f"the role `{user}` lacks the CREATEDB privilege"
    args = getattr(orig, "args", ())
    # ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR.
    if dialect == "mysql" and args and args[0] in (1044, 1142, 1227):
        return f"the user `{user}` lacks the CREATE privilege on databases named `compatcheck_%`"
    return None


def create_server_database(
    server_url: str | URL,
    holder: Holder,
    say: Callable[[str], None],
    *,
    template: str | None = None,
    moment: str = "create-database",
) -> tuple[URL, str]:
    """``CREATE DATABASE compatcheck_<mark>_<random>`` on the server; (its URL, its name).

    The drop is in ``holder`` before the statement is sent, and Ctrl-C/SIGTERM wait until both
    are done (:func:`~compatcheck.interrupts.deferred`). No right to create a database is
    :class:`ScratchUnavailable` naming the missing privilege; there is no fallback.
    ``template`` (PostgreSQL): a copy of that scratch database (``CREATE DATABASE ... TEMPLATE``,
    a file copy in the server: faster than migrating a new one); ``moment`` names the pause
    points (``moment:before`` ...), so a test can interrupt a copy apart from a creation.
    """
    url = _parse(server_url)
    backend = url.get_backend_name()
    if backend not in SERVER_BACKENDS:
        raise InputError(f"database URL {mask(url)}: unsupported backend `{backend}`")
    dialect = dialect_of(url)
    name = leftovers.database_name()
    quoted = _quoted(dialect, name)
    if template is not None:
        assert dialect == "postgresql", "only PostgreSQL copies a database"
        quoted += f" TEMPLATE {_quoted(dialect, template)}"
    admin = _admin(url)
    sent = [False]

    def drop() -> None:
        try:
            if sent[0]:
                _drop(admin, dialect, name)
        finally:
            admin.dispose()

    pause_point(f"{moment}:before")
    with deferred(), holder.creating(drop):
        pause_point(f"{moment}:registered")
        try:
            with admin.connect() as conn:
                if dialect == "postgresql":
                    conn.exec_driver_sql(f"SET statement_timeout = '{CREATE_TIMEOUT}s'")
                sent[0] = True
                conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
                if dialect == "postgresql":
                    # Scratch data need not survive a crash: every session on it (compatcheck's,
                    # the helper's, the starting-schema command's) commits without waiting for
                    # the WAL to reach the disk (1.2 ms a commit here, 0.1 ms without).
                    with contextlib.suppress(sa.exc.SQLAlchemyError):  # only a speed-up
                        conn.exec_driver_sql(
                            f"ALTER DATABASE {_quoted(dialect, name)} SET synchronous_commit = off"
                        )
        except sa.exc.SQLAlchemyError as exc:
            if not sent[0]:
                raise UnavailableError(f"cannot connect to {mask(url)}: {one_line(exc)}") from exc
            lacking = _missing_privilege(exc, url, dialect)
            if lacking is not None:
                sent[0] = False  # refused outright: there is nothing to drop
            raise ScratchUnavailable(
                f"cannot create a scratch database on {mask(url)}: "
                f"{lacking + ' (' + one_line(exc) + ')' if lacking else one_line(exc)}",
                privilege=lacking,
            ) from exc
        pause_point(f"{moment}:created")
    pause_point(f"{moment}:after")
    say(f"scratch database: {name} on {mask(url)}")
    return url.set(database=name), name


# --- the one entry point ----------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(
    db_url: str | None,
    *,
    workspace: Workspace | None = None,
    use_existing_empty: bool = False,
    progress: Callable[[str], None] | None = None,
    make: Callable[[Workspace], Scratch] | None = None,
) -> Iterator[Scratch]:
    """Yield a database to migrate, and remove it afterwards whatever happens.

    - ``None``, ``sqlite://`` or ``sqlite:///:memory:``: a file in the workspace's temp folder (a
      file, because Alembic and compatcheck share it across connections);
    - a PostgreSQL/MySQL/MariaDB URL: a ``compatcheck_<mark>_<random>`` database on that server,
      dropped afterwards (sessions still on it ended first);
    - with ``use_existing_empty``: the database the URL names (a SQLite file too), refused unless
      empty, everything created in it dropped afterwards. A ``sqlite:///path`` without it is an
      error: that file is not compatcheck's.

    ``make``: how to make it instead, in the workspace (a copy of another, see :mod:`.template`).

    ``workspace`` runs the cleanup: with one (``check``), at its close, in the main thread; with
    none, a workspace of its own closes when the block ends.
    """
    if workspace is None:
        with (
            Workspace() as own,
            scratch_database(
                db_url,
                workspace=own,
                use_existing_empty=use_existing_empty,
                progress=progress,
                make=make,
            ) as scratch,
        ):
            yield scratch
        return
    say = progress or (lambda _msg: None)
    scratch = (
        _create(db_url, workspace, use_existing_empty, say) if make is None else make(workspace)
    )
    scratch.cancelled = workspace.closing
    scratch.workspace = workspace
    try:
        yield scratch
    finally:
        scratch.engine.dispose()


def _create(
    db_url: str | None, ws: Workspace, use_existing_empty: bool, say: Callable[[str], None]
) -> Scratch:
    # Imported here: that module builds on this one's primitives (a top-level import would be
    # circular), and only --use-existing-empty-database needs it.
    from compatcheck.migrations.existing import existing_empty as _existing_empty

    url = _parse(db_url) if db_url is not None else URL.create("sqlite")
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            if not use_existing_empty:
                raise InputError(
                    f"database URL {mask(url)} names a file compatcheck did not create: leave "
                    "out --db-url for a temporary SQLite file, or pass "
                    "--use-existing-empty-database to run in it (it must be empty)"
                )
            return _existing_empty(url, ws, say)
        return new_sqlite(ws, say)
    if backend not in SERVER_BACKENDS:
        raise InputError(f"database URL {mask(url)}: unsupported backend `{backend}`")
    if use_existing_empty:
        return _existing_empty(url, ws, say)
    target, _name = create_server_database(url, ws, say)
    return Scratch(target, engine_for(target), mask(target), dialect_of(url), owned=True)


#: The SQLite files :func:`sqlite_path` handed out and their holders have not yet removed: scratch
#: data, so :func:`engine_for` connects to them without fsync (:func:`throwaway_sqlite`).
_THROWAWAY: set[str] = set()


def new_sqlite(ws: Workspace, say: Callable[[str], None], copy_of: Path | None = None) -> Scratch:
    """A scratch SQLite file in the workspace's temp folder: empty, or a copy of ``copy_of``."""
    path = sqlite_path(ws, f"migrations-{secrets.token_hex(3)}")
    if copy_of is not None:
        shutil.copyfile(copy_of, path)
    url = URL.create("sqlite", database=str(path))
    say(f"scratch database: temporary SQLite file {path}")
    return Scratch(url, engine_for(url), f"sqlite:///{path}", "sqlite", owned=True)


def sqlite_path(holder: Holder, name: str) -> Path:
    """A new SQLite file's path in the holder's temp folder (removed with it); refused once the
    holder is closing."""
    assert holder.dir is not None, "Workspace used outside its with-block"
    path = holder.dir / f"{name}.sqlite"
    with holder.creating(lambda: _THROWAWAY.discard(str(path))):
        _THROWAWAY.add(str(path))
        return path


def release_database(holder: Holder, role: str, database: str = "sqlite") -> ScratchDatabase:
    """A fresh empty database for one release: a SQLite file in the temp folder, or one made on
    the server ``database`` names (dropped by ``holder``)."""
    if database == "sqlite":
        path = sqlite_path(holder, role)
        return ScratchDatabase(f"sqlite:///{path}", f"sqlite:///{path}", "sqlite")
    real, _name = create_server_database(database, holder, lambda _msg: None)
    return ScratchDatabase(real.render_as_string(hide_password=False), mask(real), "server")
