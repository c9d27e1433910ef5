"""Migration sources: how a framework's folder becomes steps the core can judge and run.

A :class:`Source` reads a migrations folder into a :class:`~compatcheck.migrations.graph.History`
(ordered steps, each with an up, an optional down, its transaction mode and its static facts)
and, when the folder can be executed, gives a
:class:`~compatcheck.migrations.roundtrip.Runner` for a scratch database. The core never looks
past this interface, so a new framework is a new entry in :data:`SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Connection

from compatcheck.errors import UsageError
from compatcheck.migrations.graph import History
from compatcheck.migrations.roundtrip import Runner
from compatcheck.migrations.scratch import Scratch
from compatcheck.migrations.sources.alembic import AlembicProject, AlembicSource


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


#: Every framework compatcheck reads, by the name ``--framework`` takes.
SOURCES: dict[str, Callable[[Path | AlembicProject], Source]] = {"alembic": AlembicSource}


def open_source(location: str | Path | AlembicProject, framework: str = "alembic") -> Source:
    """The source for a folder; :class:`~compatcheck.errors.InputError` when it is not one."""
    if framework not in SOURCES:
        raise UsageError(
            f"unknown migrations framework `{framework}` (known: {', '.join(SOURCES)})"
        )
    return SOURCES[framework](location if isinstance(location, AlembicProject) else Path(location))
