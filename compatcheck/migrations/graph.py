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
        """Every ancestor of ``new`` (itself included; several heads comma-joined), in the order a
        downgrade runs them."""
        ...

    def plain_downgrade(self, new: str, old: str | None) -> Collection[str] | None:
        """What the framework's own downgrade from ``new`` to ``old`` (None: base) runs, in its
        order when it is a sequence; None when it refuses to say."""
        ...

    def find(self, ref: str) -> str | None:
        """A reference only the framework understands (``branch@head``, a branch label, a SQL
        tool's ``001`` for ``1``) → its step id (several comma-joined), None for "before the
        first step" (a SQL tool's ``0``); :class:`UnknownRevision` when it names nothing."""
        ...


def branch_labels(history: History, rev: str) -> frozenset[str]:
    """The branch labels ``rev`` is on (its own and inherited), for an ordering that knows
    them (``branch_labels(rev)``); none otherwise."""
    labels = getattr(history.order, "branch_labels", None)
    return frozenset(labels(rev)) if labels is not None else frozenset()


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
    """Revisions a rollback from ``new`` to ``old`` undoes, in the order a downgrade runs them.

    ``new`` and ``old`` are what the runner is given: one revision id, or several heads joined
    with commas (a history with branches by design); ``old`` None is the empty database."""

    new: str
    old: str | None
    revisions: tuple[str, ...]
    #: Revisions on the path that the framework's own downgrade to OLD would not run (branches
    #: merged in after OLD).
    skipped_by_framework: tuple[str, ...] = ()


def heads_of(ref: str | None) -> tuple[str, ...]:
    """The revision ids of a resolved ``new``/``old`` (comma-joined), () for None."""
    return tuple(r for r in (ref or "").split(",") if r)


def _resolve_one(history: History, ref: str) -> tuple[str, ...]:
    if ref in history.steps:
        return (ref,)
    if ref == "heads":
        return tuple(history.heads)
    if ref == "head":
        if len(history.heads) != 1:
            raise InputError(
                f"`{ref}` is ambiguous: the history has {len(history.heads)} heads "
                f"({', '.join(sorted(history.heads))}); name the revision, `heads` or "
                "`label@head`"
            )
        return (history.heads[0],)
    matches = [r for r in history.steps if r.startswith(ref)]
    if len(matches) == 1:
        return (matches[0],)
    if len(matches) > 1:
        raise InputError(f"revision prefix `{ref}` is ambiguous: {', '.join(sorted(matches))}")
    return heads_of(history.order.find(ref))


def resolve_set(history: History, ref: str | None) -> str | None:
    """``ref`` as the revision ids it names, comma-joined and sorted (None: ``base``).

    ``ref`` is an id, a unique prefix, ``head``, ``heads``, ``label@head``, a branch label, or a
    comma-separated set of those (as ``alembic upgrade a,b`` takes). Revisions of the set that
    are ancestors of another member are dropped (the set's heads are what a database records).
    Raises :class:`UnknownRevision` for a part that matches nothing and :class:`InputError` for
    an ambiguous one.
    """
    if ref is None or ref.strip() in ("", "base"):
        return None
    found: set[str] = set()
    for part in (p.strip() for p in ref.split(",")):
        if part and part != "base":
            found.update(_resolve_one(history, part))
    # Down-revision ancestry only: a revision another member merely depends on stays a head of
    # its own branch (the version table records both).
    below = {a for r in found for a in _down_ancestors(history, r) if a != r}
    return ",".join(sorted(found - below)) or None


def _down_ancestors(history: History, rev: str) -> set[str]:
    seen: set[str] = set()
    todo = [rev]
    while todo:
        cur = todo.pop()
        if cur not in seen:
            seen.add(cur)
            todo.extend(history.steps[cur].parents)
    return seen


def resolve(history: History, ref: str | None) -> str | None:
    """One revision id from an id, a unique prefix, ``head``, ``branch@head`` or ``base`` (None).

    Raises :class:`UnknownRevision` for a reference that matches nothing (a finding, not a crash:
    OLD's head may simply not be in NEW's history) and :class:`InputError` for an ambiguous prefix,
    or a reference naming several heads.
    """
    found = resolve_set(history, ref)
    if found is not None and "," in found:
        raise InputError(f"`{ref}` names several revisions ({found}); name one")
    return found


def ancestors(history: History, rev: str | None) -> set[str]:
    """The revisions ``rev`` names (comma-joined heads) and everything they build on (parents
    and ``depends_on``), inclusive."""
    seen: set[str] = set()
    todo = list(heads_of(rev))
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        step = history.steps[cur]
        todo.extend(step.parents)
        for dep in step.depends_on:
            if dep in history.steps:
                todo.append(dep)
                continue
            try:
                todo.extend(heads_of(history.order.find(dep)))
            except (UnknownRevision, InputError):
                continue
    return seen


def downgrade_path(history: History, new: str, old: str | None) -> DowngradePath | None:
    """The revisions a rollback undoes, newest first; None when ``old`` is not under ``new``.

    When the framework's own downgrade undoes exactly these revisions, its order is the path's
    (``alembic downgrade OLD`` from NEW's heads); otherwise (a branch merged in after OLD) the
    framework's order of NEW's ancestry, filtered."""
    below_new = ancestors(history, new)
    if any(o not in below_new for o in heads_of(old)):
        return None
    wanted = below_new - ancestors(history, old)
    plain = history.order.plain_downgrade(new, old)
    if isinstance(plain, Sequence) and set(plain) == wanted:
        path = list(plain)
    else:
        path = [r for r in history.order.downgrade_order(new) if r in wanted]
        path += sorted(wanted - set(path))  # defensive: a dependency the framework does not walk
    done = set(path) if plain is None else set(plain)
    return DowngradePath(
        new=new,
        old=old,
        revisions=tuple(path),
        skipped_by_framework=tuple(r for r in path if r not in done),
    )


def unexplained_heads(history: History) -> tuple[str, ...]:
    """Heads no branch label explains: a head is explained when it is on a branch label no other
    head is on (``expand@head`` and ``contract@head`` are two heads by design; two heads of one
    labelled branch, or of an unlabelled history, must be merged)."""
    if len(history.heads) < 2:
        return ()
    labels = {h: branch_labels(history, h) for h in history.heads}
    out = []
    for head in history.heads:
        others: set[str] = set().union(*(labels[h] for h in history.heads if h != head))
        if not labels[head] - others:
            out.append(head)
    # One head without a label of its own beside labelled branches is the main line, told apart
    # by elimination (`alembic upgrade main_rev` and `label@head`): still by design.
    return tuple(sorted(out)) if len(out) >= 2 else ()
