"""The graph of a migration history, and the downgrade path in it (framework-neutral).

A source builds the :class:`History`: its steps, its heads, and an :class:`Ordering` that knows
the order the framework runs downgrades in (Alembic's own revision map for Alembic), so that the
path here is the order the framework runs — never a docstring's ``Revises:`` line nor file dates.

Trap: ``alembic downgrade OLD`` from a merge only undoes revisions that are not ancestors of OLD
*along OLD's own line*; a branch merged in after OLD (reached only through the merge's second
parent) stays applied. The rollback target is OLD's schema, so the path here is every ancestor of
NEW that is not an ancestor of OLD — the branch included — and
:attr:`DowngradePath.skipped_by_framework` lists what the framework's own downgrade would leave.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from compatcheck.errors import InputError
from compatcheck.migrations.steps import Step, Wording


class UnknownRevision(LookupError):
    """A revision reference matches no revision of the history."""


class Ordering(Protocol):
    """What only the framework knows about its graph."""

    def downgrade_order(self, new: str) -> Sequence[str]:
        """Every ancestor of ``new`` (itself included), in the order a downgrade runs them."""
        ...

    def plain_downgrade(self, new: str, old: str | None) -> Collection[str] | None:
        """What the framework's own downgrade from ``new`` to ``old`` runs; None when it
        refuses to say."""
        ...

    def find(self, ref: str) -> str | None:
        """A reference only the framework understands (``branch@head``, a SQL tool's ``001``
        for ``1``) → its step id, None for "before the first step" (a SQL tool's ``0``);
        :class:`UnknownRevision` when it names nothing."""
        ...


@dataclass(frozen=True)
class History:
    """Every step of one migrations folder, keyed by id, in the order the framework loads them."""

    location: Path
    steps: Mapping[str, Step]
    heads: tuple[str, ...]
    order: Ordering
    wording: Wording


@dataclass(frozen=True)
class DowngradePath:
    """Revisions a rollback from ``new`` to ``old`` undoes, in the order a downgrade runs them."""

    new: str
    old: str | None
    revisions: tuple[str, ...]
    #: Revisions on the path that the framework's own downgrade to OLD would not run (branches
    #: merged in after OLD).
    skipped_by_framework: tuple[str, ...] = ()


def resolve(history: History, ref: str | None) -> str | None:
    """A revision id from an id, a unique prefix, ``head``, ``branch@head`` or ``base`` (None).

    Raises :class:`UnknownRevision` for a reference that matches nothing (a finding, not a crash:
    OLD's head may simply not be in NEW's history) and :class:`InputError` for an ambiguous prefix
    or ``head`` when there are several heads.
    """
    if ref is None or ref == "base":
        return None
    if ref in history.steps:
        return ref
    if ref in ("head", "heads"):
        if len(history.heads) != 1:
            raise InputError(
                f"`{ref}` is ambiguous: the history has {len(history.heads)} heads "
                f"({', '.join(sorted(history.heads))}); name the revision"
            )
        return history.heads[0]
    matches = [r for r in history.steps if r.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(f"revision prefix `{ref}` is ambiguous: {', '.join(sorted(matches))}")
    return history.order.find(ref)


def ancestors(history: History, rev: str | None) -> set[str]:
    """``rev`` and everything it builds on (parents and ``depends_on``), inclusive."""
    if rev is None:
        return set()
    seen: set[str] = set()
    todo = [rev]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        step = history.steps[cur]
        todo.extend(step.parents)
        for dep in step.depends_on:
            try:
                todo.append(resolve(history, dep) or "")
            except (UnknownRevision, InputError):
                continue
    seen.discard("")
    return seen


def downgrade_path(history: History, new: str, old: str | None) -> DowngradePath | None:
    """The revisions a rollback undoes, newest first; None when ``old`` is not under ``new``."""
    below_new = ancestors(history, new)
    if old is not None and old not in below_new:
        return None
    wanted = below_new - ancestors(history, old)
    path = [r for r in history.order.downgrade_order(new) if r in wanted]
    path += sorted(wanted - set(path))  # defensive: a dependency the framework does not walk
    plain = history.order.plain_downgrade(new, old)
    if plain is None:
        plain = set(path)
    return DowngradePath(
        new=new,
        old=old,
        revisions=tuple(path),
        skipped_by_framework=tuple(r for r in path if r not in plain),
    )
