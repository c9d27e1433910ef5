"""Stage-by-stage progress on stderr, so a person waiting on a pre-flight sees what it waits for.

Plain lines (``compatcheck: [old v1] ready in 1.20 s``) always: they read well in CI logs and in a
terminal alike. On a TTY the time since start is prefixed, dimmed. ``quiet`` silences everything.
OLD and NEW report from two threads, so writes are serialised.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

from compatcheck.masking import mask_secrets


class Progress:
    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self._lock = threading.Lock()
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False

    def step(self, who: str | None, message: str) -> None:
        """One line: ``who`` is ``old v1`` / ``new v2`` or ``None`` for the whole run."""
        if self.quiet:
            return
        prefix = f"[{who}] " if who else ""
        line = mask_secrets(f"compatcheck: {prefix}{message}")
        if self.tty:
            line = f"\x1b[2m{time.monotonic() - self.started:6.2f}s\x1b[0m {line}"
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken stderr must not fail the check

    def __call__(self, message: str) -> None:
        """Callable form for libraries that take ``progress: Callable[[str], None]``."""
        self.step(None, message)


#: A progress sink that prints nothing (library use, tests).
QUIET = Progress(quiet=True)


#: A wait longer than this says, every as many seconds, what it waits for and the last answer.
HEARTBEAT_S = 5.0


@contextlib.contextmanager
def heartbeat(
    say: Callable[[str], None],
    what: str,
    last: Callable[[], str] | None = None,
    *,
    limit: float | None = None,
    every: float = HEARTBEAT_S,
) -> Iterator[None]:
    """While the body runs, say ``{what}: {last()} (N s[ of LIMIT s])`` every ``every`` seconds.

    Why: a pre-flight that prints nothing for half a minute looks hung, and the operator cannot
    tell a slow migration from a dead database. Nothing is said when the body ends sooner. The
    beat comes from a daemon thread (the body is usually one blocking call: a child process's
    answer, an HTTP request), so ``say`` and ``last`` must be safe to call from another thread;
    :class:`Progress` serialises its writes, and ``last`` should only read a value.
    """
    stop = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            elapsed = f"{time.monotonic() - start:.0f} s" + (f" of {limit:g} s" if limit else "")
            with contextlib.suppress(Exception):  # a heartbeat must never fail the run
                answer = last() if last is not None else ""
                say(f"{what}: {answer} ({elapsed})" if answer else f"{what} ({elapsed})")

    thread = threading.Thread(target=beat, name="compatcheck-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
