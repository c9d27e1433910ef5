"""What one direction of a SQL migration does, read without running it: the one place that
turns statements into the core's :class:`~compatcheck.migrations.steps.Code`.

Today the regex reader :func:`compatcheck.migrations.sql.parse_sql` reads each statement (a
dollar-quoted function body blanked out first: its statements are the function's, not the
migration's); what it does not recognise yields no op, and it names nothing as unreadable. A
real SQL parser replaces :func:`read` here, and only here: it returns the same :class:`Reading`,
with the statements it could not parse in ``unknown`` (the source names each ``file:line``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from compatcheck.migrations.sources.sqlfiles.splitting import blank_bodies
from compatcheck.migrations.sqlstatic import analyse
from compatcheck.migrations.steps import Code


@dataclass(frozen=True)
class Reading:
    """A direction's ops, and the statements whose effect the reader cannot tell."""

    code: Code
    #: ``(line, why)`` per statement the reader could not read: its effect is unknown.
    unknown: tuple[tuple[int, str], ...] = ()


def code_of(statements: Sequence[tuple[str, int]], dialect: str) -> Code:
    """The ops of ``(statement text, line)`` pairs for ``dialect`` (``sqlite``, ``postgresql``,
    ``mysql``); no statement at all is an empty direction."""
    code = analyse([(blank_bodies(text), line) for text, line in statements], dialect)
    first = statements[0][1] if statements else 0
    return Code(empty=not statements, raises=False, ops=code.ops, line=first, unknown=code.unknown)


def read(statements: Sequence[tuple[str, int]], dialect: str) -> Reading:
    """The one entry point the sources call."""
    return Reading(code_of(statements, dialect))
