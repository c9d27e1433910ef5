"""The one Alembic runner: every in-process upgrade, downgrade, ``heads`` and ``current``.

Trap: Alembic's ``context`` module is a process-wide proxy installed while ``env.py`` runs, so two
``env.py`` runs in two threads (OLD's and NEW's scratch databases in ``check``, the round trip
beside them) trample each other. Every ``env.py`` run and every script load takes
:data:`ALEMBIC_LOCK`; nothing else in compatcheck runs Alembic.

Speed matters (a 50-revision history must beat pytest-alembic's up/down test), so a runner keeps
one :class:`~alembic.script.ScriptDirectory` (scripts imported once) and one database connection,
handed to ``env.py`` as ``config.attributes["connection"]`` (the Alembic cookbook pattern; an
``env.py`` that ignores it opens its own connection from ``sqlalchemy.url``); each phase is one
``env.py`` run whose migration function yields one revision step at a time, so the step in
progress when an error is raised names the culprit.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url

from compatcheck.errors import UnavailableError
from compatcheck.interrupts import Cancelled
from compatcheck.migrations.roundtrip import Failed
from compatcheck.migrations.scratch import engine_for, one_line
from compatcheck.migrations.section import OnlineOnly
from compatcheck.migrations.sources.alembic import helper
from compatcheck.migrations.sources.alembic.project import AlembicProject, as_project

#: Serialises everything that runs Alembic in this process (see the module's Trap).
ALEMBIC_LOCK = threading.RLock()


def alembic_config(script_location: Path | AlembicProject, url: str | None = None) -> Config:
    """Alembic's config for a project (the ini ``alembic -c`` reads, or a bare script
    location) and a database, its output captured."""
    project = as_project(script_location)
    cfg: Config = helper.make_config(project.spec(), url, io.StringIO())
    return cfg


def current_heads(conn: Connection) -> tuple[str, ...]:
    """The revisions the database's ``alembic_version`` table records (``alembic current``)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    if conn.in_transaction():
        conn.commit()
    return tuple(heads)


class AlembicRunner:
    """Runs migration steps in-process on one connection, naming the step that fails.

    Implements :class:`~compatcheck.migrations.roundtrip.Runner` on :class:`.helper.Session`
    (the code the ``--python`` helper runs too), under :data:`ALEMBIC_LOCK`.
    """

    version_tables = ("alembic_version",)

    def __init__(
        self,
        script_location: Path | AlembicProject,
        url: str,
        conn: Connection,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = alembic_config(script_location, url)
        self.url = url
        self.conn = conn
        self.cancelled = cancelled
        self.session = helper.Session(self.cfg, conn, self._before_step, ALEMBIC_LOCK)
        self.script = self.session.script

    def _before_step(self, rev: str) -> None:
        if self.cancelled():
            raise Cancelled(f"stopped before `{rev}`: the run is closing")

    def close(self) -> None:
        """Nothing to stop: everything ran in this process."""

    def load_ahead(self) -> None:
        """Nothing: the scripts load in this process, under the Alembic lock, as they run."""

    def release(self) -> None:
        """Nothing: ``env.py`` is handed compatcheck's own connection."""

    def app_url(self) -> str:
        """The scratch URL as given: the migrations run in this interpreter, with its driver."""
        return self.url

    @staticmethod
    def _failed(failure: helper.Failure | None) -> Failed | None:
        if failure is None:
            return None
        rev, exc = failure
        cause = exc if isinstance(exc, Exception) else None
        return Failed(rev, helper.describe(exc), cause)

    def upgrade(self, target: str) -> Failed | None:
        return self._failed(self.session.upgrade(target))

    def downgrade(self, path: Sequence[str]) -> Failed | None:
        return self._failed(self.session.downgrade(path))

    def offline_sql(self, path: Sequence[str], new: str) -> tuple[str, tuple[OnlineOnly, ...]]:
        """The downgrade rendered as SQL (Alembic ``--sql``), and the revisions that need a
        database. A revision that inspects the database or reads rows cannot render offline;
        rendering resumes after it so the rest of the script is still shown."""
        sql, online = self.session.offline_sql(path)
        return sql, tuple(OnlineOnly(rev, why) for rev, why in online)


def migrate_to_head(script_location: Path | AlembicProject, url: str) -> str | None:
    """Upgrade a release's scratch database to its head(s) with Alembic; return the new head.
    A project with ``python`` runs Alembic in that interpreter (:mod:`.remote`)."""
    project = as_project(script_location)
    if project.config_file is None:
        assert project.script_location is not None
        if not (project.script_location / "env.py").is_file():
            raise UnavailableError(
                f"{project.script_location}: not an Alembic script location (no env.py)"
            )
    failed: Failed | None
    try:
        engine = engine_for(make_url(url))
        try:
            with engine.connect() as conn:
                if project.python is not None:
                    from compatcheck.migrations.sources.alembic.remote import RemoteRunner

                    remote = RemoteRunner(project, url, conn, lambda: False)
                    try:
                        failed = remote.upgrade("heads")
                    finally:
                        remote.close()
                else:
                    failed = AlembicRunner(project, url, conn).upgrade("heads")
        finally:
            engine.dispose()
    except Exception as exc:
        failed = Failed(None, one_line(exc), exc)
    if failed is not None:
        cause = failed.cause
        if cause is None:
            raise UnavailableError(
                f"{project.shown}: upgrade to head failed: {failed.error}"
            ) from None
        first = (str(cause).splitlines() or [type(cause).__name__])[0]
        raise UnavailableError(
            f"{project.shown}: upgrade to head failed: {type(cause).__name__}: {first}"
        ) from None
    return read_alembic_head(url)


def read_alembic_head(url: str) -> str | None:
    """The revision(s) recorded in ``alembic_version`` (comma-joined when several heads); None
    when there are none or the database cannot be read."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            heads = current_heads(conn)
    except Exception:
        return None
    finally:
        engine.dispose()
    return ",".join(sorted(heads)) or None


def script_heads(script_location: Path | AlembicProject) -> str | None:
    """Head revision(s) of a script location (or a project's ini) without touching a database.
    A project is read as source (never imported: its revisions may need the application)."""
    if isinstance(script_location, AlembicProject):
        from compatcheck.migrations.sources.alembic import AlembicSource

        try:
            found = AlembicSource(script_location).history().heads
        except Exception:
            return None
        return ",".join(sorted(found)) or None
    with ALEMBIC_LOCK:
        try:
            heads = ScriptDirectory.from_config(alembic_config(script_location)).get_heads()
        except Exception:
            return None
    return ",".join(sorted(heads)) or None
