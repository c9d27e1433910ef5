"""The ``--python`` Alembic helper's start and the project it is given, light on purpose.

``compatcheck migrations --python APP_PYTHON`` runs Alembic in the application's interpreter
through a helper child (:mod:`compatcheck.migrations.sources.alembic.remote`). Its start-up (the
interpreter, Alembic, SQLAlchemy, whatever the application preloads: 0.25-0.7 s) used to begin
only after compatcheck's own imports (SQLAlchemy, Alembic: ~0.4 s), and the run waited for both
one after the other. This module imports neither (nor :mod:`compatcheck.config`), so the CLI
starts the helper right after parsing its arguments (:func:`early_helper`), the two start-ups
overlap on two cores, and the helper pool takes that child (:func:`claim`) instead of starting
its own.

The early child is started as every child is (:func:`compatcheck.targets.spawn`: its own
session, death with compatcheck, owner mark, default SIGINT/SIGTERM), with both signals held
around the spawn so that it is recorded before an interrupt unwinds, and it is stopped on every
way out of the command whoever holds it then: an interrupt, a usage error found later, a pool
that needs another interpreter, a run that never needed it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from compatcheck.errors import InputError, UnavailableError, UsageError
from compatcheck.interrupts import deferred, pause_point, shielded
from compatcheck.targets import spawn, stop_groups

#: The helper, run by path with the application's interpreter.
HELPER = Path(__file__).parent / "migrations" / "sources" / "alembic" / "helper.py"
#: Seconds the helper gets to leave after ``quit`` (or SIGTERM) before its group is killed.
QUIT_GRACE = 5.0


@dataclass(frozen=True)
class AlembicProject:
    """What ``alembic`` would be given: an ini (and section, ``-x``) or a script location."""

    script_location: Path | None = None
    config_file: Path | None = None
    name: str = "alembic"
    x: tuple[str, ...] = ()
    #: The application's interpreter; None: compatcheck's own.
    python: str | None = None

    def __post_init__(self) -> None:
        if (self.script_location is None) == (self.config_file is None):
            raise InputError("give either --script-location or --config, not both or neither")

    def spec(self) -> dict[str, Any]:
        """The project as the helper takes it (JSON for the ``--python`` subprocess)."""
        return {
            "config_file": None if self.config_file is None else str(self.config_file.absolute()),
            "name": self.name,
            "script_location": None if self.script_location is None else str(self.script_location),
            "x": list(self.x),
        }

    @property
    def shown(self) -> str:
        """How messages name the project."""
        if self.config_file is not None:
            section = f" [{self.name}]" if self.name != "alembic" else ""
            return f"{self.config_file}{section}"
        return str(self.script_location)


@dataclass
class Started:
    """A helper child given its project (and the requests sent ahead, replies not read yet)."""

    project: AlembicProject
    process: subprocess.Popen[str]
    #: Its stderr, for the last line when it dies (a file: a pipe nobody reads could fill up).
    stderr: IO[bytes]
    ahead: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    def send(self, message: dict[str, Any]) -> None:
        """One request line; ``BrokenPipeError``/``ValueError`` when the helper is gone."""
        stdin = cast(IO[str], self.process.stdin)
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()

    def stop(self) -> None:
        """Stop its process group (its leader may be gone already, the application's children
        not) and close its streams; once: after that the group's id may name another group."""
        if self.stopped:
            return
        self.stopped = True
        stop_groups([self.process], QUIT_GRACE)
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            with contextlib.suppress(OSError, ValueError):  # unsent bytes to a dead helper
                if stream is not None:
                    stream.close()


def project_of(args: argparse.Namespace) -> AlembicProject:
    """What ``alembic`` would be given, from ``compatcheck migrations``' flags: ``--config``
    (+ ``--name``, ``-x``) or ``--script-location``, and ``--python``, the interpreter the
    revisions run in. Here rather than in the CLI: the project is built before the heavy
    imports, and the early helper is started with its :meth:`~AlembicProject.spec`."""
    python = None
    if args.python is not None:
        python = shutil.which(args.python)
        if python is None:
            raise UsageError(f"--python {args.python}: no such executable")
    if args.config is None and (args.name != "alembic" or args.x):
        raise UsageError("--name and -x need --config (the alembic.ini they apply to)")
    return AlembicProject(
        script_location=None if args.script_location is None else Path(args.script_location),
        config_file=None if args.config is None else Path(args.config),
        name=args.name,
        x=tuple(args.x),
        python=python,
    )


def start_helper(
    project: AlembicProject, url: str | None, ahead: Sequence[dict[str, Any]] = ()
) -> Started:
    """Start the helper for ``project``, give it its project and ``url``, and send ``ahead``
    (requests it works on at once; their replies are read when they are asked for).

    A helper that dies at once is still returned: its first request then says why, with its
    last line on stderr (:class:`~compatcheck.migrations.sources.alembic.remote.HelperDied`).
    """
    assert project.python is not None
    stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by Started.stop)
    try:
        process = spawn(
            [project.python, str(HELPER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
        )
    except OSError as exc:
        stderr.close()
        raise UnavailableError(
            f"--python {project.python}: cannot start it: {exc.strerror or exc}"
        ) from None
    started = Started(project, process, stderr)
    with contextlib.suppress(BrokenPipeError, ValueError):
        started.send({"project": project.spec(), "url": url})
        for message in ahead:
            started.send(message)
            started.ahead.append(message)
    return started


#: The helper :func:`early_helper` started, until a pool claims it (one run per process).
_EARLY: list[Started] = []
_LOCK = threading.Lock()


@contextlib.contextmanager
def early_helper(project: AlembicProject, *, static: bool = False) -> Iterator[None]:
    """Start the helper ``project`` will need now, for the block's helper pool to
    :func:`claim`; stop it when the block ends, whoever holds it then.

    None is started without ``--python``, nor when nothing will ask it anything (``--static``
    on a bare script location: no ini to read); with an ini the helper is sent ``locations``
    at once, the pool's first question. A helper that cannot start is not reported here: the
    pool starts its own, and that one's error is the one the run reports, as before.
    """
    if project.python is None or (static and project.config_file is None):
        yield
        return
    ahead = [{"op": "locations"}] if project.config_file is not None else []
    started: list[Started] = []
    try:
        with deferred():  # an interrupt comes before the spawn or after its record, not between
            with contextlib.suppress(UnavailableError):
                started.append(start_helper(project, None, ahead))
            pause_point("early-helper:started")
        with _LOCK:
            _EARLY[:] = started
        pause_point("early-helper:after")
        yield
    finally:
        with _LOCK:
            _EARLY.clear()
        with shielded():  # a second Ctrl-C must not leave it running
            for helper in started:
                helper.stop()


def claim(project: AlembicProject) -> Started | None:
    """The helper :func:`early_helper` started, for a pool of ``project``; None when there is
    none. One started for another project (another interpreter, ini or section) is stopped:
    nothing else would use it."""
    with _LOCK:
        started = _EARLY.pop() if _EARLY else None
    if started is not None and started.project != project:
        started.stop()
        return None
    return started
