"""Migration sources: how a framework's folder becomes steps the core can judge and run.

A :class:`Source` reads a migrations folder into a :class:`~compatcheck.migrations.graph.History`
(ordered steps, each with an up, an optional down, its transaction mode and its static facts)
and, when the folder can be executed, gives a
:class:`~compatcheck.migrations.roundtrip.Runner` for a scratch database. The core never looks
past this interface, so a new framework is a new entry in :data:`SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Connection

from compatcheck.errors import UsageError
from compatcheck.migrations.graph import History
from compatcheck.migrations.roundtrip import Runner
from compatcheck.migrations.scratch import Scratch
from compatcheck.migrations.sources.alembic import AlembicProject, AlembicSource
from compatcheck.migrations.sources.sqlfiles import FRAMEWORKS as SQL_FRAMEWORKS
from compatcheck.migrations.sources.sqlfiles import SqlFilesSource, detect
from compatcheck.model import Finding


class Source(Protocol):
    """One migrations folder of one framework."""

    #: The framework's name as the report's ``migrations.framework`` gives it.
    framework: str
    location: Path
    #: Why the folder can only be read, never executed (a bare versions folder); None when a
    #: round trip can run it.
    not_executable: str | None

    def history(self) -> History:
        """Every step, read as source (never imported or executed)."""
        ...

    def runner(self, scratch: Scratch, conn: Connection) -> Runner:
        """A runner on ``conn``; :class:`~compatcheck.migrations.roundtrip.RunnerUnavailable`
        when the framework cannot load the folder."""
        ...

    def notes(self, revisions: Sequence[str]) -> list[Finding]:
        """Findings about what the source could read only as written or not at all, for the
        steps ``revisions`` (and the folder's other files)."""
        ...

    def live_findings(self, url: str) -> list[Finding]:
        """Findings about the framework's own state on the live database (read-only)."""
        ...


def _sql(framework: str) -> Callable[[Path | AlembicProject, str], Source]:
    def make(location: Path | AlembicProject, dialect: str) -> Source:
        if isinstance(location, AlembicProject):
            raise UsageError(f"--framework {framework} reads a folder (--script-location)")
        return SqlFilesSource(framework, location, dialect)

    return make


#: Every framework compatcheck reads, by the name ``--framework`` takes; each is given the
#: location and the scratch database's dialect (SQL is split and read by its rules).
SOURCES: dict[str, Callable[[Path | AlembicProject, str], Source]] = {
    "alembic": lambda location, _dialect: AlembicSource(location),
    **{name: _sql(name) for name in SQL_FRAMEWORKS},
}
#: What ``--framework`` takes: a framework, or ``auto`` (detected from the folder).
FRAMEWORK_CHOICES = ("auto", *SOURCES)


def open_source(
    location: str | Path | AlembicProject, framework: str = "auto", dialect: str = "sqlite"
) -> Source:
    """The source for a folder (``auto``: the framework its files belong to);
    :class:`~compatcheck.errors.InputError` when it is not one."""
    folder = _folder(location)
    if framework == "auto":
        framework = "alembic" if folder is None else detect(folder)
    if framework not in SOURCES:
        raise UsageError(
            f"unknown migrations framework `{framework}` (known: {', '.join(FRAMEWORK_CHOICES)})"
        )
    if framework == "alembic" or folder is None:
        return SOURCES[framework](
            location if isinstance(location, AlembicProject) else Path(location), dialect
        )
    return SOURCES[framework](folder, dialect)


def _folder(location: str | Path | AlembicProject) -> Path | None:
    """The plain folder a location names; None for an Alembic project given by its ini or
    run in another interpreter (only Alembic reads those)."""
    if not isinstance(location, AlembicProject):
        return Path(location)
    if location.config_file is None and location.python is None:
        return location.script_location
    return None
