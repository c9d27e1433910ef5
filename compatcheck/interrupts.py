"""The one signal strategy: how Ctrl-C and SIGTERM unwind a run, and what they may not interrupt.

- SIGINT raises ``KeyboardInterrupt`` (Python's default); SIGTERM raises :class:`Terminated` (a
  ``KeyboardInterrupt`` carrying the signal) inside :func:`sigterm_as_interrupt`, which the CLI
  enters around every command and a :class:`~compatcheck.targets.Workspace` around the run it
  owns (for API users): either way every ``with`` on the stack releases what it holds, and
  :func:`exit_status` gives the one exit code and line per signal (:data:`EXITS`: 130
  ``interrupted``, 143 ``terminated``), for every command. ``compatcheck serve`` keeps its own
  graceful drain (uvicorn's handlers while it serves; SIGTERM then exits 0);
- :func:`deferred` holds both signals across a critical section (creating a scratch database and
  recording that it exists) and delivers them when it ends: an interrupt can come before or after
  such a step, never in the middle of it;
- :func:`shielded` ignores them while cleaning up, so a second Ctrl-C cannot stop a cleanup
  half-way;
- :func:`pause_point` lets the timing tests and ``bench/interrupts.py`` stop a run at a named
  moment (right before or after ``CREATE DATABASE``, right after the ``--python`` helper's early
  start) and signal it there, on purpose rather than by luck;
- :func:`default_signals_in_child` gives every child the default dispositions back.

Signal handlers only run in the main thread, so all of this is a no-op in worker threads: a worker
is never interrupted; the main thread stops it by closing the workspace it works in. A blocking
wait in the main thread (an event, a lock, a future) is interrupted by a signal on POSIX, and the
handler's exception raised there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: ``COMPATCHECK_PAUSE_AT=name[,name]``: pause points to stop at (timing tests only).
PAUSE_ENV = "COMPATCHECK_PAUSE_AT"
#: How long a pause point holds the run (seconds, default 1).
PAUSE_SECONDS_ENV = "COMPATCHECK_PAUSE_SECONDS"


#: Exit code and word for a run a signal ended: 128 + the signal, as a shell reports a process
#: killed by it, so a caller sees the same status whether compatcheck unwound or died.
EXITS: dict[int, tuple[int, str]] = {
    signal.SIGINT: (128 + signal.SIGINT, "interrupted"),
    signal.SIGTERM: (128 + signal.SIGTERM, "terminated"),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C; ``signum`` makes the exit 143 rather than 130."""

    signum = signal.SIGTERM


def exit_status(exc: KeyboardInterrupt) -> tuple[int, str]:
    """The exit code and the stderr line for a run ended by ``exc`` (SIGINT unless it says)."""
    code, word = EXITS[int(getattr(exc, "signum", signal.SIGINT))]
    return code, f"compatcheck: {word}"


class Cancelled(BaseException):
    """The run is closing: a worker stops between two steps instead of finishing its job.

    A ``BaseException``, so the ``except Exception`` that turns a failing migration into a
    finding does not turn a shutdown into one.
    """


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler while a run owns something."""
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` so ``finally`` blocks run (the default skips them).

    Nests (the inner block restores the outer one's handler); a SIGTERM the process ignores
    stays ignored; a no-op outside the main thread.
    """
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up, so a second Ctrl-C cannot leave anything."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then act on the first one as it would have.

    Trap: an interrupt raised inside ``conn.execute("CREATE DATABASE ...")`` leaves the
    statement running on the server while the client gives up; the drop that follows finds
    nothing (the database is not committed yet) and the CREATE then completes: a leak. Deferring
    the signal lets the statement and its bookkeeping finish first. A signal the process ignores
    stays ignored.
    """
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
        if caught:  # also when the block failed: the interrupt still wins
            _deliver(caught[0], previous.get(caught[0]))


def _deliver(signum: int, handler: Any) -> None:
    """Act on a held signal as the handler in place before :func:`deferred` would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


def pause_point(name: str) -> None:
    """Stop here for a moment when ``COMPATCHECK_PAUSE_AT`` names this point (tests only).

    Prints ``compatcheck: paused at NAME (pid N)`` on stderr, so a test knows when to send its
    signal, then sleeps ``COMPATCHECK_PAUSE_SECONDS`` (default 1 s). In the main thread the sleep
    is where the signal lands; in a worker it holds the worker at this point while the main
    thread handles the signal. Costs one environment lookup when unset.
    """
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or name not in wanted.split(","):
        return
    try:
        seconds = float(os.environ.get(PAUSE_SECONDS_ENV, "1"))
    except ValueError:
        seconds = 1.0
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"compatcheck: paused at {name} (pid {os.getpid()})\n")
        sys.stderr.flush()
    time.sleep(seconds)


def default_signals_in_child() -> Callable[[], None]:
    """A ``preexec_fn`` that gives a child the default SIGINT/SIGTERM dispositions.

    Trap: an ignored signal stays ignored across ``exec``. A shell starts a background job
    (``cmd &``, CI runners, ``nohup``) with SIGINT ignored, and a Python started that way never
    installs its ``KeyboardInterrupt`` handler; every child would then shrug off Ctrl-C.
    """

    def reset() -> None:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    return reset
