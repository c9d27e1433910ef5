"""What the consumer readers collect: expressions with their provenance, and problems per file.

Each reader (rule files, Grafana dashboards, text lists) reads one file through a :class:`Source`,
which adds what it finds to the run's :class:`Collector`; :mod:`~compatcheck.consumers.load` then
gives every consumer its subject and parses its expressions. Problems are kept per file so that a
broken file is one ``consumers/parse-error`` finding (its first problem, and how many more), not
one finding per broken rule.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from compatcheck.checks.consumers import PARSE_ERROR
from compatcheck.consumers.promql import Need
from compatcheck.model import Consumer, Finding

#: Threads inside :func:`gc_paused`, and whether the collector was on when the first came in.
_PAUSE_LOCK = threading.Lock()
_paused = 0
_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while loading or judging consumers.

    Both build tens of thousands of small objects that live on (decoded dashboards, reduced
    trees, problems) and none that form cycles: each collection the allocations trigger walks the
    survivors again for nothing (about a tenth of the CPU time of a 5,000-expression set).
    Reference counting still frees everything.

    Trap: the switch is the process's, and the hook loads and judges in several threads at once.
    Each thread remembering ``gc.isenabled()`` for itself races: a thread that enters while
    another has it off remembers "off", and if the other leaves between that look and its own
    ``gc.disable()``, nobody turns the collector on again, for good. So the threads inside are
    counted under a lock: the first one in turns it off (remembering whether it was on), the last
    one out turns it back on.
    """
    global _paused, _was_enabled
    with _PAUSE_LOCK:
        if not _paused:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _paused -= 1
            if not _paused and _was_enabled:
                gc.enable()


@dataclass(frozen=True)
class RawExpression:
    """One expression as a reader found it, before its consumer gets its final subject."""

    #: The subject before de-duplication (``alert:X``, ``panel:Dashboard/Title``...).
    base: str
    consumer: Consumer
    #: The file's name in subjects (relative to the folder given).
    rel: str
    text: str
    line: int | None
    #: Grafana syntax (``$var``, ``[[var]]``, ``$__interval``) is allowed in the text.
    grafana: bool
    #: Labels the consumer needs from the expression's result (alert templates, ``label_values``).
    root_needs: frozenset[Need] = frozenset()
    #: The name a recording rule writes.
    record: str | None = None
    #: Where in the consumer: ``expr``, ``target A``, ``query``...
    where: str = "expr"


@dataclass
class Collector:
    """Everything the readers found in one run, in file order."""

    raws: list[RawExpression] = field(default_factory=list)
    #: rel path → (file, line, reason) of each problem: one finding per file (subject ``file:rel``)
    file_errors: dict[str, list[tuple[str, int | None, str]]] = field(default_factory=dict)

    def parse_error(self, file: str, rel: str, line: int | None, reason: str) -> None:
        self.file_errors.setdefault(rel, []).append((file, line, reason))

    def error_findings(self) -> list[Finding]:
        out: list[Finding] = []
        for rel, errors in self.file_errors.items():
            file, line, reason = errors[0]
            where = f"{file}:{line}" if line else file
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            out.append(
                Finding(
                    PARSE_ERROR,
                    f"file:{rel}",
                    f"`{where}` cannot be read as a consumer: {reason}{more}.",
                    {
                        "file": file,
                        "line": line,
                        "error": reason,
                        "errors": [{"line": n, "error": r} for _, n, r in errors],
                    },
                )
            )
        return out


@dataclass(frozen=True)
class Source:
    """One file being read: ``file`` is the path as given (consumers name it), ``rel`` names it
    in subjects; what a reader finds in it goes to ``collector``."""

    file: str
    rel: str
    collector: Collector

    def parse_error(self, line: int | None, reason: str) -> None:
        self.collector.parse_error(self.file, self.rel, line, reason)

    def error_count(self) -> int:
        """Problems recorded for this file so far."""
        return len(self.collector.file_errors.get(self.rel, ()))

    def add(
        self,
        base: str,
        consumer: Consumer,
        text: str,
        line: int | None,
        *,
        grafana: bool,
        root_needs: frozenset[Need] = frozenset(),
        record: str | None = None,
        where: str = "expr",
    ) -> None:
        """Add one expression of ``consumer`` (see :class:`RawExpression`)."""
        raw = RawExpression(
            base, consumer, self.rel, text, line, grafana, root_needs, record, where
        )
        self.collector.raws.append(raw)
