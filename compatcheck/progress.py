"""Stage-by-stage progress on stderr, so a person waiting on a pre-flight sees what it waits for.

Plain lines (``compatcheck: [old v1] ready in 1.20 s``) always: they read well in CI logs and in a
terminal alike. On a TTY the time since start is prefixed, dimmed. ``quiet`` silences everything.
OLD and NEW report from two threads, so writes are serialised.
"""

from __future__ import annotations

import sys
import threading
import time
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
