"""The Alembic source: revision files read as source, the graph Alembic builds from them, and the
one in-process Alembic runner (with the lock that serialises Alembic's process-wide ``context``).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

from compatcheck.errors import InputError
from compatcheck.migrations.graph import History
from compatcheck.migrations.roundtrip import RunnerUnavailable
from compatcheck.migrations.scratch import Scratch, one_line
from compatcheck.migrations.sources.alembic.history import load_history
from compatcheck.migrations.sources.alembic.runner import AlembicRunner


class AlembicSource:
    """An Alembic script location (``env.py`` + ``versions/``) or a bare versions folder."""

    framework = "alembic"

    def __init__(self, location: Path) -> None:
        if not location.is_dir():
            raise InputError(f"migrations folder {location}: no such directory")
        self.location = location
        self.not_executable: str | None = None
        if (location / "env.py").is_file():
            self.versions = location / "versions"
            if not self.versions.is_dir():
                raise InputError(
                    f"migrations folder {location}: has env.py but no versions/ folder"
                )
            return
        if not any(p.suffix == ".py" for p in location.iterdir()):
            raise InputError(
                f"migrations folder {location}: not an Alembic script location (env.py + "
                "versions/) nor a versions folder"
            )
        self.versions = location
        self.not_executable = "no env.py: a bare versions folder"

    def history(self) -> History:
        return load_history(self.versions)

    def runner(self, scratch: Scratch, conn: Connection) -> AlembicRunner:
        url = scratch.url.render_as_string(hide_password=False)
        try:
            return AlembicRunner(self.location, url, conn, scratch.cancelled)
        except Exception as exc:
            error = one_line(exc)
            raise RunnerUnavailable(
                f"Alembic could not load the scripts in `{self.location}`: {error}", error
            ) from exc
