"""The walk after a failed downgrade: a fresh scratch database (a copy of the round trip's at OLD,
:mod:`.template`) upgraded to the revisions below the broken one, then the rest of the path,
until it ends, so one run names every broken downgrade of the window (``alembic downgrade`` and
pytest-alembic stop at the first)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from compatcheck.migrations.graph import DowngradePath, History, ancestors
from compatcheck.migrations.roundtrip import RunnerUnavailable
from compatcheck.migrations.scratch import one_line
from compatcheck.migrations.section import StepFailure
from compatcheck.migrations.sources import Source
from compatcheck.migrations.starting import StartingSchema, make_base
from compatcheck.migrations.template import FRESH_FAILURES, FreshDatabases

#: The stage of a walk that could not go on (no fresh database, no runner for it).
WALK = "walk"
#: Why a downgrade was passed over: running it can only fail.
NO_DOWNGRADE = "not run: the revision defines no downgrade(), so Alembic can only fail there"


def _certainly_failing(history: History, rest: Sequence[str]) -> list[str]:
    """The revisions at the start of ``rest`` whose downgrade certainly does not exist."""
    out = []
    for rev in rest:
        if not history.steps[rev].down_absent:
            break
        out.append(rev)
    return out


def heads_after(history: History, path: DowngradePath, undone: Sequence[str]) -> tuple[str, ...]:
    """The heads a database has once ``undone`` (the start of the path) is downgraded."""
    gone = set(undone)
    applied = set(ancestors(history, path.new)) - gone
    below = {a for r in applied for a in ancestors(history, r) if a != r}
    return tuple(sorted(applied - below))


def walk_on(
    source: Source,
    history: History,
    path: DowngradePath,
    failed: str | None,
    fresh: FreshDatabases,
    start: StartingSchema,
    say: Callable[[str], None],
    passed_over: dict[str, str],
) -> list[StepFailure]:
    """After a downgrade fails, go on: a fresh scratch database upgraded to the revisions below
    the broken one, then the rest of the path, until it ends; so one run names every broken
    downgrade of the window (``alembic downgrade`` and pytest-alembic stop at the first). A
    fresh database that is a copy at OLD has its starting schema already.

    Revisions next in line that certainly define no downgrade are passed over, not run (each
    would fail at once and cost a fresh database): they go into ``passed_over`` with why."""
    failures: list[StepFailure] = []
    rest = list(path.revisions)
    while failed is not None and failed in rest:
        done = path.revisions[: path.revisions.index(failed) + 1]
        rest = list(path.revisions[len(done) :])
        absent = _certainly_failing(history, rest)
        if absent:
            passed_over.update(dict.fromkeys(absent, NO_DOWNGRADE))
            say(f"passing over {', '.join(f'`{r}`' for r in absent)}: {NO_DOWNGRADE}")
            done, rest = (*done, *absent), rest[len(absent) :]
        if not rest:
            break
        heads = heads_after(history, path, done)
        say(f"continuing after `{failed}` on a fresh database at {', '.join(heads)}")
        try:
            step = _go_on(source, fresh, start, heads, rest)
        except FRESH_FAILURES as exc:
            # What the round trip saw stands; only the rest of the path goes unchecked.
            why = str(exc) if isinstance(exc, RunnerUnavailable) else one_line(exc)
            failures.append(StepFailure(WALK, None, f"could not go on after `{failed}`: {why}"))
            break
        if step is None:
            break
        failures.append(step)
        if step.stage != "downgrade":
            break
        failed = step.revision
    return failures


def _go_on(
    source: Source,
    fresh: FreshDatabases,
    start: StartingSchema,
    heads: Sequence[str],
    rest: Sequence[str],
) -> StepFailure | None:
    """On a fresh database at ``heads``, the downgrades of ``rest``: the failure that stopped
    them (a downgrade's, or the way there), or None when they all ran."""
    with fresh.open(source) as db:
        runner = db.runner
        if start and not db.at_old:
            error = make_base(start, db.scratch, db.conn, runner)()
            if error is not None:
                return StepFailure("starting schema", None, error)
        target = heads[0] if len(heads) == 1 else ",".join(heads)
        up = runner.upgrade(target)
        if up is not None:
            return StepFailure("upgrade to continue", up.revision, up.error)
        down = runner.downgrade(rest)
    return None if down is None else StepFailure("downgrade", down.revision, down.error)
