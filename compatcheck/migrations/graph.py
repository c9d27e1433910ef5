"""The revision graph of an Alembic history, built from source, and the downgrade path in it.

Ordering uses Alembic's own :class:`~alembic.script.revision.RevisionMap`, fed with revisions read
by :mod:`compatcheck.migrations.static` in the order Alembic loads the files, so the path is the
order Alembic runs downgrades in — never the docstring's ``Revises:`` line nor file dates.

Trap: ``alembic downgrade OLD`` from a merge only undoes revisions that are not ancestors of OLD
*along OLD's own line*; a branch merged in after OLD (reached only through the merge's second
parent) stays applied. The rollback target is OLD's schema, so the path here is every ancestor of
NEW that is not an ancestor of OLD — the branch included — and
:attr:`DowngradePath.skipped_by_alembic` lists what a plain ``alembic downgrade OLD`` would leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.script.revision import Revision, RevisionError, RevisionMap

from compatcheck.errors import InputError
from compatcheck.migrations.static import RevisionFile, list_revision_files, read_revision_file


@dataclass(frozen=True)
class History:
    """Every revision file of one versions folder, keyed by revision id, in load order."""

    versions_dir: Path
    revisions: dict[str, RevisionFile]
    heads: tuple[str, ...]
    revision_map: RevisionMap


@dataclass(frozen=True)
class DowngradePath:
    """Revisions a rollback from ``new`` to ``old`` undoes, in the order a downgrade runs them."""

    new: str
    old: str | None
    revisions: tuple[str, ...]
    #: Revisions on the path that ``alembic downgrade OLD`` would not run (merged-in branches).
    skipped_by_alembic: tuple[str, ...] = ()


class UnknownRevision(LookupError):
    """A revision reference matches no revision of the history."""


def load_history(versions: Path, recursive: bool = False) -> History:
    """Read every revision file under ``versions`` (never importing one) and build the graph."""
    files: dict[str, RevisionFile] = {}
    for path in list_revision_files(versions, recursive):
        rev = read_revision_file(path)
        if rev is None:
            continue
        if rev.revision in files:
            raise InputError(
                f"{versions}: revision `{rev.revision}` is defined twice "
                f"({files[rev.revision].path.name}, {path.name})"
            )
        files[rev.revision] = rev
    if not files:
        raise InputError(f"{versions}: no Alembic revision file found")
    for rev in files.values():
        for down in rev.down_revisions:
            if down not in files:
                raise InputError(
                    f"{rev.path}: `down_revision` names `{down}`, "
                    f"which no file in {versions} defines"
                )

    def generate() -> list[Revision]:
        return [
            Revision(
                r.revision,
                r.down_revisions or None,
                dependencies=r.depends_on or None,
                branch_labels=r.branch_labels or None,
            )
            for r in files.values()
        ]

    rmap = RevisionMap(generate)
    try:
        heads = tuple(rmap.heads)
    except RevisionError as exc:
        raise InputError(f"{versions}: invalid revision graph: {exc}") from exc
    return History(versions_dir=versions, revisions=files, heads=heads, revision_map=rmap)


def resolve(history: History, ref: str | None) -> str | None:
    """A revision id from an id, a unique prefix, ``head``, ``branch@head`` or ``base`` (None).

    Raises :class:`UnknownRevision` for a reference that matches nothing (a finding, not a crash:
    OLD's head may simply not be in NEW's history) and :class:`InputError` for an ambiguous prefix
    or ``head`` when there are several heads.
    """
    if ref is None or ref == "base":
        return None
    if ref in history.revisions:
        return ref
    if ref in ("head", "heads"):
        if len(history.heads) != 1:
            raise InputError(
                f"`{ref}` is ambiguous: the history has {len(history.heads)} heads "
                f"({', '.join(sorted(history.heads))}); name the revision"
            )
        return history.heads[0]
    matches = [r for r in history.revisions if r.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(f"revision prefix `{ref}` is ambiguous: {', '.join(sorted(matches))}")
    try:
        found = history.revision_map.get_revision(ref)
    except RevisionError as exc:
        raise UnknownRevision(ref) from exc
    if found is None:
        raise UnknownRevision(ref)
    return found.revision


def ancestors(history: History, rev: str | None) -> set[str]:
    """``rev`` and everything it builds on (down revisions and ``depends_on``), inclusive."""
    if rev is None:
        return set()
    seen: set[str] = set()
    todo = [rev]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        node = history.revisions[cur]
        todo.extend(node.down_revisions)
        for dep in node.depends_on:
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
    keep = ancestors(history, old)
    wanted = below_new - keep
    rmap = history.revision_map
    order = [r.revision for r in rmap.iterate_revisions(new, None, select_for_downgrade=True)]
    path = [r for r in order if r in wanted]
    path += sorted(wanted - set(path))  # defensive: a dependency Alembic does not walk
    try:
        plain = {r.revision for r in rmap.iterate_revisions(new, old, select_for_downgrade=True)}
    except RevisionError:
        plain = set(path)
    return DowngradePath(
        new=new,
        old=old,
        revisions=tuple(path),
        skipped_by_alembic=tuple(r for r in path if r not in plain),
    )
