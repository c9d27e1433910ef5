"""An Alembic versions folder as a :class:`~compatcheck.migrations.graph.History`.

Ordering uses Alembic's own :class:`~alembic.script.revision.RevisionMap`, fed with revisions read
as source (:mod:`.revisions`) in the order Alembic loads the files, so the downgrade path is the
order Alembic runs downgrades in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic.script.revision import Revision, RevisionError, RevisionMap

from compatcheck.errors import InputError
from compatcheck.migrations.graph import History, UnknownRevision
from compatcheck.migrations.sources.alembic.revisions import list_revision_files, read_revision_file
from compatcheck.migrations.steps import Step, Wording

#: How Alembic's users name things, for the core's finding messages.
WORDING = Wording(
    step="Revision",
    up="`upgrade()`",
    down="`downgrade()`",
    upgrade_all="`alembic upgrade head`",
)


def _ids(ref: str | None) -> tuple[str, ...]:
    return tuple(r for r in (ref or "").split(",") if r)


class AlembicOrder:
    """The :class:`~compatcheck.migrations.graph.Ordering` of a history, from Alembic's map."""

    def __init__(self, revision_map: RevisionMap) -> None:
        self.revision_map = revision_map

    def downgrade_order(self, new: str) -> Sequence[str]:
        revs = self.revision_map.iterate_revisions(_ids(new), None, select_for_downgrade=True)
        return [r.revision for r in revs]

    def plain_downgrade(self, new: str, old: str | None) -> Sequence[str] | None:
        """What ``alembic downgrade OLD`` runs from a database at NEW's heads, in its order (the
        call ``alembic.command.downgrade`` makes through ``ScriptDirectory._downgrade_revs``)."""
        if len(_ids(old)) > 1:
            return None  # `alembic downgrade` takes one target: several are several commands
        try:
            revs = self.revision_map.iterate_revisions(_ids(new), old, select_for_downgrade=True)
            return [r.revision for r in revs]
        except RevisionError:
            return None

    def find(self, ref: str) -> str:
        try:
            found = self.revision_map.get_revisions(ref)
        except RevisionError as exc:
            raise UnknownRevision(ref) from exc
        ids = sorted(r.revision for r in found if r is not None and not isinstance(r, str))
        if not ids:
            raise UnknownRevision(ref)
        return ",".join(ids)

    def branch_labels(self, rev: str) -> frozenset[str]:
        found = self.revision_map.get_revision(rev)
        return frozenset(found.branch_labels) if found is not None else frozenset()


def load_history(versions: Path, more: Sequence[Path] = (), *, recursive: bool = False) -> History:
    """Read every revision file in ``versions`` and the ``more`` version locations (never
    importing one), in Alembic's load order, and build the graph."""
    steps: dict[str, Step] = {}
    seen: set[Path] = set()
    files: list[Path] = []
    for folder in (versions, *more):
        if not folder.is_dir():
            continue  # Alembic skips a version location that does not exist
        for path in list_revision_files(folder, recursive):
            if path.resolve() not in seen:  # Alembic loads a file named twice once
                seen.add(path.resolve())
                files.append(path)
    where = versions if not more else f"{versions} (and {len(more)} more version locations)"
    for path in files:
        step = read_revision_file(path)
        if step is None:
            continue
        if step.id in steps:
            raise InputError(
                f"{where}: revision `{step.id}` is defined twice "
                f"({steps[step.id].path.name}, {path.name})"
            )
        steps[step.id] = step
    if not steps:
        raise InputError(f"{where}: no Alembic revision file found")
    labels = {label for s in steps.values() for label in s.labels}
    for step in steps.values():
        for down in step.parents:
            if down not in steps:
                raise InputError(
                    f"{step.path}: `down_revision` names `{down}`, which no file in {where} defines"
                )
        for dep in step.depends_on:
            # Alembic's map would raise a bare KeyError on first use.
            if dep not in steps and dep not in labels:
                raise InputError(
                    f"{step.path}: `depends_on` names `{dep}`, which is neither a revision nor a "
                    f"branch label of {where}; add its version folder to `version_locations`"
                )

    def generate() -> list[Revision]:
        return [
            Revision(
                s.id,
                s.parents or None,
                dependencies=s.depends_on or None,
                branch_labels=s.labels or None,
            )
            for s in steps.values()
        ]

    rmap = RevisionMap(generate)
    try:
        heads = tuple(rmap.heads)
    except RevisionError as exc:
        raise InputError(f"{where}: invalid revision graph: {exc}") from exc
    return History(
        location=versions, steps=steps, heads=heads, order=AlembicOrder(rmap), wording=WORDING
    )
