"""Static "will fail": a downgrade that drops what does not exist at that point, or a table
before the tables that reference it, predicted from the revisions' own operations.

The prediction is :func:`compatcheck.migrations.simulate.failing_downgrades` fed with the path as
the round trip runs it: every upgrade from the first revision to NEW's heads (they only teach
what exists), then the path's downgrades (judged). It stands where nothing ran the downgrade (a
``--static`` run, a round trip that could not run or did not reach the revision); once the round
trip ran a revision's downgrade, what happened there is the answer: a failure it observed carries
the prediction as evidence, and a prediction the engine did not bear out is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from compatcheck.checks.migrations import DOWNGRADE_FAILED, DOWNGRADE_WILL_FAIL
from compatcheck.migrations.findings import FindingSet
from compatcheck.migrations.graph import DowngradePath, History
from compatcheck.migrations.section import RoundTrip
from compatcheck.migrations.simulate import DOWNGRADE, failing_downgrades
from compatcheck.migrations.steps import Op
from compatcheck.model import Finding


def predicted_failures(history: History, path: DowngradePath, dialect: str) -> list[Finding]:
    """One finding per revision of the path whose downgrade the simulation says fails."""
    upgrades = list(reversed(history.order.downgrade_order(path.new)))
    replay: list[tuple[str, str, Iterable[Op]]] = []
    for rev in upgrades:
        up = history.steps[rev].up
        replay.append((rev, "upgrade", up.ops if up is not None else ()))
    for rev in path.revisions:
        down = history.steps[rev].down
        replay.append((rev, DOWNGRADE, down.ops if down is not None else ()))
    # SQLite (its default PRAGMA foreign_keys=OFF) drops a referenced table without a word.
    failures = failing_downgrades(replay, foreign_keys=dialect != "sqlite")
    by_rev: dict[str, list[str]] = {}
    for rev, _op, reason in failures:
        by_rev.setdefault(rev, []).append(reason)
    w = history.wording
    out = []
    for rev in path.revisions:
        reasons = by_rev.get(rev)
        if not reasons:
            continue
        message = (
            f"The {w.down} of `{rev}` will fail: {reasons[0]}"
            + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else "")
            + "."
        )
        where = history.steps[rev].path
        evidence = {"file": where.name, "path": str(where), "reasons": reasons, "dialect": dialect}
        out.append(Finding(DOWNGRADE_WILL_FAIL, rev, message, evidence))
    return out


def ran_downgrades(trip: RoundTrip | None, path: DowngradePath) -> set[str]:
    """Revisions of the path whose downgrade the round trip (and its walk) ran."""
    if trip is None or not trip.ran:
        return set()
    revs = list(path.revisions)
    if trip.status in ("completed", "reupgrade-failed"):
        return set(revs)
    if trip.status != "downgrade-failed" or trip.failure is None:
        return set()  # the upgrades failed: no downgrade ran
    reached = trip.failure.revision
    for later in trip.later_failures:
        if later.stage != "downgrade":
            return set(revs[: revs.index(reached) + 1]) if reached in revs else set()
        reached = later.revision
    return set(revs)  # the walk went on to the end of the path


def reconcile(found: FindingSet, trip: RoundTrip | None, path: DowngradePath) -> None:
    """Predictions the round trip answered: kept as evidence of the failure it observed, gone
    where the downgrade ran through."""
    ran = ran_downgrades(trip, path)
    for f in [f for f in found.findings() if f.kind == DOWNGRADE_WILL_FAIL and f.subject in ran]:
        found.remove(f.kind, f.subject)
        if found.has(DOWNGRADE_FAILED, f.subject):
            found.add(DOWNGRADE_FAILED, f.subject, "", {"predicted": f.evidence["reasons"]})
