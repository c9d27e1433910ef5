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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url

from compatcheck.errors import InputError, UnavailableError
from compatcheck.interrupts import Cancelled
from compatcheck.migrations.roundtrip import Failed
from compatcheck.migrations.scratch import engine_for, one_line
from compatcheck.migrations.section import OnlineOnly

#: Serialises everything that runs Alembic in this process (see the module's Trap).
ALEMBIC_LOCK = threading.RLock()

Steps = Sequence[tuple[str, MigrationStep]]


def alembic_config(script_location: Path, url: str | None = None) -> Config:
    """Alembic's config for a script location (and a database), its output captured."""
    cfg = Config(output_buffer=io.StringIO())
    cfg.set_main_option("script_location", str(script_location))
    if url is not None:
        # Trap: Alembic config values go through ConfigParser interpolation; a `%` in a password
        # would be read as a reference.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def current_heads(conn: Connection) -> tuple[str, ...]:
    """The revisions the database's ``alembic_version`` table records (``alembic current``)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    if conn.in_transaction():
        conn.commit()
    return tuple(heads)


class AlembicRunner:
    """Runs migration steps in-process on one connection, naming the step that fails.

    Implements :class:`~compatcheck.migrations.roundtrip.Runner`.
    """

    version_tables = ("alembic_version",)

    def __init__(
        self,
        script_location: Path,
        url: str,
        conn: Connection,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = alembic_config(script_location, url)
        self.cfg.attributes["connection"] = conn
        self.conn = conn
        self.cancelled = cancelled
        with ALEMBIC_LOCK:
            self.script = ScriptDirectory.from_config(self.cfg)

    def upgrade(self, target: str) -> Failed | None:
        heads = current_heads(self.conn)
        with ALEMBIC_LOCK:  # the first use of the map imports every revision file
            revs = list(self.script.iterate_revisions(target, heads, implicit_base=True))
            rmap = self.script.revision_map
        steps = [(s.revision, MigrationStep.upgrade_from_script(rmap, s)) for s in reversed(revs)]
        return self._run(steps)

    def downgrade(self, path: Sequence[str]) -> Failed | None:
        return self._run(self._downgrade_steps(path))

    def _downgrade_steps(self, path: Iterable[str]) -> Steps:
        out: list[tuple[str, MigrationStep]] = []
        with ALEMBIC_LOCK:
            rmap = self.script.revision_map
            for rev in path:
                script = self.script.get_revision(rev)
                if script is None:  # pragma: no cover - graph and Alembic disagree
                    raise InputError(f"Alembic does not know revision `{rev}`")
                out.append((rev, MigrationStep.downgrade_from_script(rmap, script)))
        return out

    def offline_sql(self, path: Sequence[str], new: str) -> tuple[str, tuple[OnlineOnly, ...]]:
        """The downgrade rendered as SQL (Alembic ``--sql``), and the revisions that need a
        database. A revision that inspects the database or reads rows cannot render offline;
        rendering resumes after it so the rest of the script is still shown."""
        buffer = self.cfg.output_buffer
        assert isinstance(buffer, io.StringIO)
        online: list[OnlineOnly] = []
        chunks: list[str] = []
        remaining = list(path)
        while remaining:
            buffer.seek(0)
            buffer.truncate()
            steps = self._downgrade_steps(remaining)
            failed = self._run(steps, as_sql=True, starting_rev=remaining[0])
            chunks.append(buffer.getvalue())
            if not failed:
                break
            if failed.revision is None:
                online.append(OnlineOnly(remaining[0], failed.error))
                break
            online.append(OnlineOnly(failed.revision, failed.error))
            note = f"-- revision {failed.revision} cannot be rendered offline: {failed.error}\n"
            chunks.append(note)
            remaining = remaining[remaining.index(failed.revision) + 1 :]
        return "".join(chunks), tuple(online)

    def _run(
        self, steps: Steps, *, as_sql: bool = False, starting_rev: str | None = None
    ) -> Failed | None:
        """Run the steps in one ``env.py`` run; None on success."""
        current: list[str | None] = [None]

        def fn(rev: Any, context: Any) -> Iterator[MigrationStep]:
            for rev_id, step in steps:
                if self.cancelled():
                    raise Cancelled(f"stopped before `{rev_id}`: the run is closing")
                current[0] = rev_id
                yield step
            current[0] = None

        if self.conn.in_transaction():
            self.conn.commit()
        try:
            with (
                ALEMBIC_LOCK,
                EnvironmentContext(
                    self.cfg, self.script, fn=fn, as_sql=as_sql, starting_rev=starting_rev
                ),
            ):
                self.script.run_env()
        except Exception as exc:
            if not as_sql:
                self.conn.rollback()
            return Failed(current[0], one_line(exc), exc)
        finally:
            if not as_sql and self.conn.in_transaction():
                self.conn.commit()
        return None


def migrate_to_head(script_location: Path, url: str) -> str | None:
    """Upgrade a release's scratch database to its head(s) with Alembic; return the new head."""
    if not (script_location / "env.py").is_file():
        raise UnavailableError(f"{script_location}: not an Alembic script location (no env.py)")
    failed: Failed | None
    try:
        engine = engine_for(make_url(url))
        try:
            with engine.connect() as conn:
                failed = AlembicRunner(script_location, url, conn).upgrade("heads")
        finally:
            engine.dispose()
    except Exception as exc:
        failed = Failed(None, one_line(exc), exc)
    if failed is not None:
        cause = failed.cause or Exception(failed.error)
        first = (str(cause).splitlines() or [type(cause).__name__])[0]
        raise UnavailableError(
            f"{script_location}: upgrade to head failed: {type(cause).__name__}: {first}"
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


def script_heads(script_location: Path) -> str | None:
    """Head revision(s) of a script location without touching a database."""
    with ALEMBIC_LOCK:
        try:
            heads = ScriptDirectory.from_config(alembic_config(script_location)).get_heads()
        except Exception:
            return None
    return ",".join(sorted(heads)) or None
