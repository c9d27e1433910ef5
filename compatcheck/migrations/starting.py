"""The schema that exists before the first revision, made on the empty scratch database.

Many applications ``create_all()`` their schema and stamp a revision instead of migrating from
nothing; the round trip starts from that schema: ``--base-sql FILE`` (run on the scratch
database) or ``--base-command "CMD {database_url}"`` (the application's own init, launched as the
workspace launches every command).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from compatcheck.errors import InputError, UnavailableError
from compatcheck.migrations.roundtrip import Runner
from compatcheck.migrations.scratch import Scratch, mask
from compatcheck.migrations.seeding import run_seed_sql


@dataclass(frozen=True)
class StartingSchema:
    """The schema that exists before the first revision, made on the empty scratch database:
    ``--base-sql FILE`` (run there) or ``--base-command "CMD {database_url}"`` (the
    application's own init, e.g. a ``create_all`` script)."""

    sql: Path | None = None
    command: str | None = None

    def __bool__(self) -> bool:
        return self.sql is not None or self.command is not None


#: No starting schema: the first revision starts from an empty database.
NO_STARTING_SCHEMA = StartingSchema()
#: Seconds ``--base-command`` may run.
BASE_COMMAND_TIMEOUT = 600


def make_base(
    start: StartingSchema, scratch: Scratch, conn: sa.Connection, runner: Runner
) -> Callable[[], str | None]:
    """The round trip's ``base`` step for ``start`` on ``scratch`` (its URL with the driver the
    runner's interpreter has, when it runs in the application's)."""

    def run() -> str | None:
        if conn.in_transaction():
            conn.commit()
        if start.sql is not None:
            try:
                run_seed_sql(conn, start.sql)
            except InputError as exc:
                return f"--base-sql {str(exc).removeprefix('seed file ')}"
        if start.command is not None:
            try:
                url = runner.app_url()
            except UnavailableError as exc:
                return str(exc)
            # The init command imports the application in its own process; the helper imports
            # it meanwhile on the other core instead of after (mlflow: 1.2 s each).
            runner.load_ahead()
            return _run_base_command(start.command, scratch, url)
        return None

    return run


def _run_base_command(command: str, scratch: Scratch, url: str) -> str | None:
    """Run the user's init command with ``{database_url}`` filled in (also in the environment as
    ``COMPATCHECK_DATABASE_URL``) as the workspace launches every command (its own process
    group, stopped by Ctrl-C, output in the run's temp folder); why it failed, or None."""
    import shlex
    import subprocess

    from compatcheck.config.model import CommandTarget

    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        return f"--base-command: cannot split it: {exc}"
    if not argv:
        return "--base-command is empty"
    if scratch.workspace is None:
        raise UnavailableError("--base-command: no workspace to run it in")  # internal misuse
    target = CommandTarget(
        role="base",
        label="--base-command",
        command=argv,
        env={"COMPATCHECK_DATABASE_URL": "{database_url}"},
    )
    try:
        running = scratch.workspace.launch(target, database_url=url, name="base-command")
    except UnavailableError as exc:
        return f"--base-command: {exc}"
    try:
        code = running.process.wait(timeout=BASE_COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"--base-command did not finish within {BASE_COMMAND_TIMEOUT} s"
    finally:
        scratch.workspace.stop(running)
    if code != 0:
        lines = [ln for ln in running.log_tail(lines=20).splitlines() if ln.strip()]
        last = mask(lines[-1].strip()) if lines else "no output"
        return f"--base-command exited with code {code}: {last}"
    return None
