"""The ``compatcheck`` console script and ``python -m compatcheck``: :func:`compatcheck.cli.main`,
then leave without the interpreter's teardown.

Freeing what SQLAlchemy, Alembic and a report made took 0.1 s after a migrations report was
written, time a person waits for the prompt and a CI step for the exit code. Nothing the
teardown would do for compatcheck is skipped: threads that are not daemons are waited for, the
cleanups registered with :mod:`atexit` run (logging's flush among them), and stdout and stderr
are flushed, before ``os._exit``. One difference, on purpose: stdout that cannot be flushed
(a reader that went away) keeps the command's exit code, as a broken pipe during the command
does (:func:`compatcheck.cli.run`), where the interpreter would exit 120. In-process callers
(tests, other tools) call ``main`` instead, which returns.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

from compatcheck.interrupts import shielded


def exit_code(code: object) -> int:
    """What the interpreter makes of ``SystemExit(code)``: None is 0, an int is itself, anything
    else is printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave(code: int) -> NoReturn:
    """End the process with ``code`` as the interpreter's exit would, minus freeing memory.

    Under a profiler or a tracer (``python -m cProfile -o``, a debugger) the interpreter's own
    exit is kept: the tool writes its results after the program returns."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        raise SystemExit(code)
    # What the interpreter does first, with the very function it calls (in the stdlib's
    # threading.py, so on PyPy too): the threads' exit hooks (executors stop their workers),
    # then every thread that is not a daemon is waited for. As in the interpreter's exit, a
    # Ctrl-C there stops the wait, not the cleanups.
    with contextlib.suppress(KeyboardInterrupt):
        threading._shutdown()  # type: ignore[attr-defined]
    with shielded():  # a Ctrl-C now cannot cut the cleanups short
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            # A closed pipe or stream: nothing more can reach it.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(code)


def entry() -> NoReturn:
    from compatcheck.cli import main

    try:
        code = main()
    except SystemExit as exc:  # --help and usage errors: argparse's own exit
        code = exit_code(exc.code)
    leave(code)
