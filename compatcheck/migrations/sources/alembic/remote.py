"""Alembic in the application's own interpreter (``--python PATH``), driven over JSON lines.

An application whose revisions import it (``from app.models import ...``) cannot run in
compatcheck's environment, and installing compatcheck into the application's would change what is
tested. So the one process that imports revision files and ``env.py`` is the application's
interpreter running :mod:`.helper` *by path* (the file imports only the standard library, Alembic
and SQLAlchemy); compatcheck keeps seeding, inspecting and judging on its own connection to the
same scratch database. The scratch URL goes to the helper on stdin, never in ``argv``.

Trap: two connections share the scratch database, so compatcheck ends its own transaction before
every request (SQLite's file lock, PostgreSQL's table locks taken by a read would otherwise block
the helper's DDL), and the helper commits after each phase.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import IO, Any, cast

from sqlalchemy.engine import Connection

from compatcheck.apphelper import HELPER, QUIT_GRACE, Started, claim, start_helper
from compatcheck.errors import UnavailableError
from compatcheck.interrupts import Cancelled
from compatcheck.masking import mask_secrets
from compatcheck.migrations.roundtrip import Failed
from compatcheck.migrations.section import OnlineOnly
from compatcheck.migrations.sources.alembic.project import AlembicProject

__all__ = ["HELPER", "QUIT_GRACE", "HelperDied", "HelperPool", "HelperProcess", "RemoteRunner"]


class HelperDied(UnavailableError):
    """The helper process ended without answering (its interpreter crashed or could not start)."""


class HelperProcess:
    """One helper child for the length of a round trip (or one question)."""

    def __init__(
        self, project: AlembicProject, url: str | None, started: Started | None = None
    ) -> None:
        """Start the helper, or take ``started`` (the CLI's, started before its heavy imports:
        :mod:`compatcheck.apphelper`)."""
        assert project.python is not None
        self.python = project.python
        self.started = started or start_helper(project, url)
        self.process = self.started.process
        #: Requests sent ahead whose replies were not read yet (:meth:`send_ahead`).
        self._ahead = self.started.ahead
        #: False from a :meth:`request` until its reply is read (see :attr:`in_step`).
        self._answered = True

    def __enter__(self) -> HelperProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.started.send(message)
        except (BrokenPipeError, ValueError):
            raise self._died() from None

    def send_ahead(self, message: dict[str, Any]) -> None:
        """Send a request whose reply nobody waits for: the helper works on it while compatcheck
        does something else; the next :meth:`request` reads (and drops) its reply first."""
        self._send(message)
        self._ahead.append(message)

    @property
    def in_step(self) -> bool:
        """Every request answered and read: an interrupt between a request and its reply, or a
        ``load`` sent ahead and not read yet, leaves the helper busy and a reply behind (maybe
        still migrating or importing), so it is stopped, never reused or asked to quit."""
        return self._answered and not self._ahead

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its one-line reply; the replies to requests sent ahead
        are read and dropped first. The very request sent last ahead is not sent again: its
        reply is this one's (the CLI's early helper was sent ``locations`` at its start)."""
        self._answered = False
        if self._ahead[-1:] != [message]:
            self._send(message)
            self._ahead.append(message)
        stdout = cast(IO[str], self.process.stdout)
        line = ""
        while self._ahead:
            line = stdout.readline()
            if not line:
                raise self._died()
            del self._ahead[0]
        reply = json.loads(line)
        assert isinstance(reply, dict)
        self._answered = True
        return reply

    def refused(self, reply: dict[str, Any]) -> UnavailableError:
        """The error for a request the helper answered with an error instead."""
        return UnavailableError(f"--python {self.python}: {reply.get('error')}")

    def _died(self) -> HelperDied:
        self.process.wait(timeout=QUIT_GRACE)
        self.started.stderr.seek(0)
        lines = [
            ln.strip()
            for ln in self.started.stderr.read()[-8192:].decode("utf-8", "replace").splitlines()
            if ln.strip()
        ]
        last = mask_secrets(lines[-1]) if lines else "no output"
        return HelperDied(
            f"--python {self.python}: the Alembic helper exited "
            f"(code {self.process.returncode}): {last}"
        )

    def close(self) -> None:
        if self.process.poll() is None and self.in_step:
            try:
                self._send({"op": "quit"})
                self.process.wait(timeout=QUIT_GRACE)
            except (UnavailableError, subprocess.TimeoutExpired):
                pass
        self.started.stop()


class HelperPool:
    """One helper kept for a whole inspection: the folders' locations, the round trip, and each
    fresh scratch database after (the walk past a broken downgrade, the rerun without seeded
    rows) reuse it, so the application and its revisions are imported once, not once per
    database. :meth:`close` stops it."""

    def __init__(self, project: AlembicProject) -> None:
        self.project = project
        started = claim(project)  # the CLI's, started before its heavy imports
        self.idle = None if started is None else HelperProcess(project, None, started)

    def _get(self) -> HelperProcess:
        helper, self.idle = self.idle, None
        if helper is not None and helper.process.poll() is None:
            return helper
        if helper is not None:
            helper.close()
        return HelperProcess(self.project, None)

    def locations(self) -> dict[str, Any]:
        helper = self._get()
        try:
            return helper.request({"op": "locations"})
        finally:
            self.give_back(helper)

    def take(self, url: str) -> HelperProcess:
        helper = self._get()
        try:
            reply = helper.request({"op": "connect", "url": url})
        except UnavailableError:
            helper.close()
            raise
        if "ok" not in reply:
            helper.close()
            raise helper.refused(reply)
        return helper

    def give_back(self, helper: HelperProcess) -> None:
        """Keep ``helper`` for the next database, its connection closed; or stop it when it is
        out of step (Ctrl-C came while it worked: waiting for that reply could take as long as
        the migration, where :meth:`HelperProcess.close` waits :data:`QUIT_GRACE` at most)."""
        if self.idle is not None or helper.process.poll() is not None or not helper.in_step:
            helper.close()
            return
        try:
            helper.request({"op": "connect", "url": None})  # its connection closed
        except UnavailableError:
            helper.close()
            return
        self.idle = helper

    def close(self) -> None:
        helper, self.idle = self.idle, None
        if helper is not None:
            helper.close()


class RemoteRunner:
    """The :class:`~compatcheck.migrations.roundtrip.Runner` whose Alembic runs in the helper;
    ``conn`` is compatcheck's own connection (seeding and inspection)."""

    version_tables = ("alembic_version",)

    def __init__(
        self,
        project: AlembicProject,
        url: str,
        conn: Connection,
        cancelled: Any,
        pool: HelperPool | None = None,
    ) -> None:
        self.conn = conn
        self._cancelled = cancelled
        self.pool = pool
        self.helper = pool.take(url) if pool is not None else HelperProcess(project, url)

    def cancelled(self) -> bool:
        return bool(self._cancelled())

    def close(self) -> None:
        """Stop the helper, or give it back to its pool for the next scratch database."""
        if self.pool is not None:
            self.pool.give_back(self.helper)
        else:
            self.helper.close()

    def release(self) -> None:
        """The helper closes its connection (keeping the scripts it imported); its next request
        opens it again."""
        reply = self._ask({"op": "release"})
        if "ok" not in reply:
            raise self.helper.refused(reply)

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.cancelled():
            raise Cancelled("the run is closing")
        if self.conn.in_transaction():
            self.conn.commit()
        return self.helper.request(message)

    def _phase(self, message: dict[str, Any]) -> Failed | None:
        try:
            reply = self._ask(message)
        except HelperDied as exc:
            return Failed(None, str(exc), exc)
        if "error" in reply:
            return Failed(None, mask_secrets(str(reply["error"])))
        failed = reply.get("failed")
        if failed is None:
            return None
        return Failed(failed.get("revision"), mask_secrets(str(failed.get("error"))))

    def app_url(self) -> str:
        """The scratch URL with the driver the application's interpreter has (the helper falls
        back from compatcheck's driver to one installed there): for ``--base-command``."""
        reply = self._ask({"op": "url"})
        if "url" not in reply:
            raise self.helper.refused(reply)
        return str(reply["url"])

    def load_ahead(self) -> None:
        """The helper imports what ``env.py`` and the revisions import now, not at the first
        upgrade; whatever fails there fails again, and is reported, where it really runs."""
        self.helper.send_ahead({"op": "load"})

    def upgrade(self, target: str) -> Failed | None:
        return self._phase({"op": "upgrade", "target": target})

    def downgrade(self, path: Sequence[str]) -> Failed | None:
        return self._phase({"op": "downgrade", "path": list(path)})

    def offline_sql(self, path: Sequence[str], new: str) -> tuple[str, tuple[OnlineOnly, ...]]:
        try:
            reply = self._ask({"op": "offline_sql", "path": list(path)})
        except HelperDied as exc:
            return "", (OnlineOnly(path[0] if path else new, str(exc)),)
        if "error" in reply:
            return "", (OnlineOnly(path[0] if path else new, mask_secrets(str(reply["error"]))),)
        online = tuple(OnlineOnly(str(r), mask_secrets(str(e))) for r, e in reply["online"])
        return str(reply["sql"]), online
