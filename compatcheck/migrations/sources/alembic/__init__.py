"""The Alembic source: revision files read as source, the graph Alembic builds from them, and the
one in-process Alembic runner (with the lock that serialises Alembic's process-wide ``context``),
or the ``--python`` helper that runs Alembic in the application's own interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from compatcheck.errors import InputError
from compatcheck.migrations.graph import History
from compatcheck.migrations.roundtrip import Runner, RunnerUnavailable
from compatcheck.migrations.scratch import Scratch, one_line
from compatcheck.migrations.sources.alembic.history import load_history
from compatcheck.migrations.sources.alembic.project import (
    AlembicProject,
    Locations,
    as_project,
    resolve_locations,
)
from compatcheck.migrations.sources.alembic.runner import AlembicRunner
from compatcheck.model import Finding

if TYPE_CHECKING:
    from compatcheck.migrations.sources.alembic.remote import HelperPool

__all__ = ["AlembicProject", "AlembicSource"]


class AlembicSource:
    """An Alembic project (``alembic.ini`` or a script location: ``env.py`` + ``versions/``) or
    a bare versions folder."""

    framework = "alembic"

    def __init__(self, location: Path | AlembicProject) -> None:
        project = as_project(location)
        self.project = project
        self.not_executable: str | None = None
        #: The ``--python`` helper kept for the whole inspection (see :meth:`close`).
        self.pool: HelperPool | None = None
        if project.python is not None:
            from compatcheck.migrations.sources.alembic.remote import HelperPool

            self.pool = HelperPool(project)
        if project.config_file is not None:
            try:
                self.locations = resolve_locations(project, self.pool)
                self.location = self.locations.script_location
                if not (self.location / "env.py").is_file():
                    raise InputError(
                        f"{project.shown}: script_location {self.location} has no env.py"
                    )
            except BaseException:  # nobody gets the source, so nobody would stop its helper
                self.close()
                raise
            return
        loc = project.script_location
        assert loc is not None
        if not loc.is_dir():
            raise InputError(f"migrations folder {loc}: no such directory")
        self.location = loc
        if (loc / "env.py").is_file():
            if not (loc / "versions").is_dir():
                raise InputError(f"migrations folder {loc}: has env.py but no versions/ folder")
            self.locations = Locations(loc, (loc / "versions",))
            return
        if not any(p.suffix == ".py" for p in loc.iterdir()):
            raise InputError(
                f"migrations folder {loc}: not an Alembic script location (env.py + "
                "versions/) nor a versions folder"
            )
        self.locations = Locations(loc, (loc,))
        self.not_executable = "no env.py: a bare versions folder"

    def close(self) -> None:
        """Stop the ``--python`` helper kept between scratch databases."""
        if self.pool is not None:
            self.pool.close()

    @property
    def versions(self) -> Path:
        return self.locations.version_locations[0]

    def history(self) -> History:
        first, *more = self.locations.version_locations
        return load_history(first, more, recursive=self.locations.recursive)

    def notes(self, revisions: Sequence[str]) -> list[Finding]:
        """Nothing: every revision is read as Python source."""
        return []

    def live_findings(self, url: str) -> list[Finding]:
        """Nothing: ``alembic_version`` has no state of its own to judge."""
        return []

    def runner(self, scratch: Scratch, conn: Connection) -> Runner:
        url = scratch.url.render_as_string(hide_password=False)
        try:
            if self.project.python is not None:
                from compatcheck.migrations.sources.alembic.remote import RemoteRunner

                return RemoteRunner(self.project, url, conn, scratch.cancelled, self.pool)
            return AlembicRunner(self.project, url, conn, scratch.cancelled)
        except Exception as exc:
            error = one_line(exc)
            raise RunnerUnavailable(
                f"Alembic could not load the scripts in `{self.project.shown}`: {error}", error
            ) from exc
