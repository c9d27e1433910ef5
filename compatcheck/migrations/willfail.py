"""Static "will fail" against what the round trip saw: the prediction
(:func:`compatcheck.migrations.checks.predicted_failures`, ``downgrade-will-fail``) stands where
nothing ran the downgrade (a ``--static`` run, a round trip that could not run or did not reach
the revision); once the round trip ran a revision's downgrade, what happened there is the
answer: a failure it observed carries the prediction as evidence, and a prediction the engine
did not bear out is dropped.
"""

from __future__ import annotations

from compatcheck.checks.migrations import DOWNGRADE_FAILED, DOWNGRADE_WILL_FAIL
from compatcheck.migrations.findings import FindingSet
from compatcheck.migrations.graph import DowngradePath
from compatcheck.migrations.section import RoundTrip


def ran_downgrades(trip: RoundTrip | None, path: DowngradePath, *, walked: bool = True) -> set[str]:
    """Revisions of the path whose downgrade the round trip (and its walk) ran. ``walked``:
    whether the walk after a failed downgrade could run at all (not on a database the user gave,
    ``--use-existing-empty``); without it nothing after the first failure is claimed."""
    if trip is None or not trip.ran:
        return set()
    return _reached(trip, path, walked=walked) - set(trip.passed_over)


def _reached(trip: RoundTrip, path: DowngradePath, *, walked: bool) -> set[str]:
    """The revisions of the path the round trip and its walk got past (run or passed over)."""
    revs = list(path.revisions)
    if trip.status in ("completed", "reupgrade-failed"):
        return set(revs)
    if trip.status != "downgrade-failed" or trip.failure is None:
        return set()  # the upgrades failed: no downgrade ran
    reached: str | None = None
    for failure in (trip.failure, *trip.later_failures):
        if failure.stage != "downgrade" or failure.revision not in revs:
            # The walk stopped here: a fresh database could not be upgraded, or no step is
            # named (the helper died, env.py raised before any step), so none to go on after.
            break
        reached = failure.revision
        if not walked:
            break
    else:
        return set(revs)  # the walk went on to the end of the path
    return set(revs[: revs.index(reached) + 1]) if reached is not None else set()


def reconcile(
    found: FindingSet, trip: RoundTrip | None, path: DowngradePath, *, walked: bool = True
) -> None:
    """Predictions the round trip answered: kept as evidence of the failure it observed, gone
    where the downgrade ran through."""
    ran = ran_downgrades(trip, path, walked=walked)
    for f in [f for f in found.findings() if f.kind == DOWNGRADE_WILL_FAIL and f.subject in ran]:
        found.drop(f.kind, f.subject)
        if found.has(DOWNGRADE_FAILED, f.subject):
            found.add(DOWNGRADE_FAILED, f.subject, "", {"predicted": f.evidence["reasons"]})
