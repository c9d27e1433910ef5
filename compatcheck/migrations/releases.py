"""What ``check`` asks of a release's migrations, whatever the framework: its head, and a
database migrated to it (each release's scratch database, the code-only trial's).

Alembic keeps its own paths (``alembic.ini`` projects, the ``--python`` helper); every other
framework goes through its source's runner on one connection.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from compatcheck.errors import CompatcheckError, UnavailableError
from compatcheck.migrations.scratch import Scratch, engine_for, mask, one_line
from compatcheck.migrations.sources import open_source
from compatcheck.migrations.sources.alembic import AlembicProject
from compatcheck.migrations.sources.sqlfiles import SqlFilesSource


def framework_of(location: Path | AlembicProject, framework: str) -> str:
    """The framework ``auto`` stands for at ``location`` (``alembic`` when none is told)."""
    if framework != "auto" or isinstance(location, AlembicProject):
        return "alembic" if framework == "auto" else framework
    try:
        return open_source(location, "auto").framework
    except CompatcheckError:
        return "alembic"  # Alembic's own functions give the error they always gave


def release_head(location: Path | AlembicProject, framework: str = "auto") -> str | None:
    """The head of a release's migrations read as source; None when it cannot be told."""
    if framework_of(location, framework) == "alembic":
        from compatcheck.migrations.sources.alembic.runner import script_heads

        return script_heads(location)
    try:
        source = open_source(location, framework)
    except CompatcheckError:
        return None
    # Every framework but Alembic is a SQL-files source: its head needs no statement read.
    assert isinstance(source, SqlFilesSource)
    return ",".join(source.heads()) or None


def migrate_release(
    location: Path | AlembicProject, url: str, framework: str = "auto"
) -> str | None:
    """Migrate the database at ``url`` to the release's head; that head.
    :class:`UnavailableError` when a migration fails."""
    if framework_of(location, framework) == "alembic":
        from compatcheck.migrations.sources.alembic.runner import migrate_to_head

        return migrate_to_head(location, url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    dialect = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}.get(
        backend, "sqlite"
    )
    try:
        source = open_source(location, framework, dialect)
    except CompatcheckError as exc:
        raise UnavailableError(str(exc)) from exc
    assert isinstance(source, SqlFilesSource)  # every framework but Alembic
    head = source.heads()[0]
    engine = engine_for(parsed)
    try:
        with engine.connect() as conn:
            scratch = Scratch(parsed, engine, mask(parsed), dialect, owned=False)
            failed = source.runner(scratch, conn).upgrade(head)
    except sa.exc.SQLAlchemyError as exc:
        raise UnavailableError(f"{location}: upgrade to head failed: {one_line(exc)}") from exc
    finally:
        engine.dispose()
    if failed is not None:
        at = f" at {failed.revision}" if failed.revision else ""
        raise UnavailableError(f"{location}: upgrade to head failed{at}: {failed.error}")
    return head
