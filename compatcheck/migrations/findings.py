"""Findings from what the round trip and the live database showed, attributed to revisions.

The static checks (:mod:`.checks`) name a revision from its code; what the round trip observes
(a schema difference, lost rows) names only a table or column. :func:`attributor` finds the
revision on the path whose code touches that object, downgrade first; :class:`FindingSet` keeps
one finding per (kind, subject), merging the evidence of the static and the observed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from compatcheck.checks.availability import UNAVAILABLE
from compatcheck.checks.migrations import (
    DATA_LOST,
    DOWNGRADE_DESTRUCTIVE,
    DOWNGRADE_FAILED,
    DOWNGRADE_MISSING,
    DOWNGRADE_NOT_IMPLEMENTED,
    ROUNDTRIP_MISMATCH,
)
from compatcheck.migrations.checks import path_touches
from compatcheck.migrations.graph import DowngradePath, History
from compatcheck.migrations.section import RoundTrip, SchemaDifference, StepFailure
from compatcheck.model import Finding


class FindingSet:
    """Findings keyed by (kind, subject): one finding per revision, evidence merged."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.items: dict[tuple[str, str], Finding] = {(f.kind, f.subject): f for f in findings}
        self.order = [(f.kind, f.subject) for f in findings]

    def add(self, kind: str, subject: str, message: str, evidence: Mapping[str, Any]) -> None:
        """Add a finding, or merge ``evidence`` into the one already there (lists and mappings
        extended, other keys kept as first given; the first message stays)."""
        key = (kind, subject)
        if key in self.items:
            old = self.items[key]
            merged = dict(old.evidence)
            for k, v in evidence.items():
                if isinstance(v, list) and isinstance(merged.get(k), list):
                    merged[k] = [*merged[k], *v]
                elif isinstance(v, dict) and isinstance(merged.get(k), dict):
                    merged[k] = {**merged[k], **v}
                else:
                    merged.setdefault(k, v)
            self.items[key] = replace(old, evidence=merged)
            return
        self.items[key] = Finding(kind, subject, message, evidence)
        self.order.append(key)

    def has(self, kind: str, subject: str) -> bool:
        return (kind, subject) in self.items

    def drop(self, kind: str, subject: str) -> None:
        """Take a finding back (a prediction the round trip answered)."""
        if self.items.pop((kind, subject), None) is not None:
            self.order.remove((kind, subject))

    def findings(self) -> list[Finding]:
        return [self.items[k] for k in self.order]


def attributor(
    history: History, path: DowngradePath, schemas: frozenset[str] = frozenset()
) -> Callable[[str, str], str]:
    """``attribute(obj, extra)``: the revision on the path whose code touches ``obj`` (downgrade
    first), else NEW's head. What each revision touches is computed once per round trip.
    ``schemas``: database schemas whose tables the round trip keys ``schema.table``; the steps
    name them bare (``ALTER TABLE goiardi.nodes`` touches ``nodes``), so the prefix goes."""
    touches = path_touches(history, path.revisions)

    def attribute(obj: str, extra: str = "") -> str:
        head = obj.split(" ")[0].lower()
        if head.split(".")[0] in schemas and head.count(".") >= 1:
            head = head.split(".", 1)[1]
        words = [head, *re.findall(r"[A-Za-z_][\w.]*", extra.lower())]
        table = words[0].split(".")[0]
        for candidates in (words, [table]):
            for side in ("down", "up"):
                for rev in path.revisions:
                    if any(w in touches[rev][side] for w in candidates):
                        return rev
        return path.revisions[0]

    return attribute


def _failure(found: FindingSet, trip: RoundTrip, engine: str) -> None:
    """Every phase that failed: the first, then those the walk met after it."""
    for failure in (trip.failure, *trip.later_failures):
        if failure is not None:
            _one_failure(found, failure, engine)


def _one_failure(found: FindingSet, failure: StepFailure, engine: str) -> None:
    """A phase that failed: a downgrade (the revision's), a re-upgrade, anything else."""
    stage, rev, err = failure.stage, failure.revision, failure.error
    if stage == "downgrade" and rev is not None:
        # A downgrade the static check already names as missing or always raising: the run's
        # error is its evidence, not a second finding.
        named = [k for k in (DOWNGRADE_NOT_IMPLEMENTED, DOWNGRADE_MISSING) if found.has(k, rev)]
        if named:
            found.add(named[0], rev, "", {"error": err, "engine": engine})
        else:
            message = f"The downgrade of `{rev}` failed on {engine}: {err}"
            evidence = {"error": err, "engine": engine}
            found.add(DOWNGRADE_FAILED, rev, message, evidence)
    elif stage == "re-upgrade" and rev is not None:
        message = f"Upgrading `{rev}` again after the downgrade failed on {engine}: {err}"
        found.add(
            ROUNDTRIP_MISMATCH,
            rev,
            message,
            {"reupgrade_error": err, "engine": engine},
        )
    elif stage == "walk":
        message = (
            f"The walk past the failed downgrade stopped on {engine}: {err}; the downgrades "
            "after it were not run"
        )
        found.add(
            UNAVAILABLE, "migrations", message, {"stage": stage, "error": err, "engine": engine}
        )
    else:
        at = f" at `{rev}`" if rev else ""
        message = f"The migration round trip could not run on {engine}: {stage} failed{at}: {err}"
        evidence = {"stage": stage, "error": err, "engine": engine}
        found.add(UNAVAILABLE, rev or "migrations", message, evidence)


def _ticks(counts: Mapping[str, int]) -> str:
    return ", ".join(f"`{k}`: {v}" for k, v in sorted(counts.items()))


def roundtrip_findings(
    found: FindingSet, history: History, path: DowngradePath, trip: RoundTrip, engine: str
) -> None:
    """Add what the round trip observed on ``engine``, each attributed to a revision."""
    _failure(found, trip, engine)
    # Tables outside the default schema are keyed ``schema.table`` (see schema.inspect_schema).
    schemas = frozenset(t.split(".")[0] for t in (*trip.seeded, *trip.seed_errors) if "." in t)
    attribute = attributor(history, path, schemas)
    # Before the downgrade vs after it (OLD's schema), then NEW's vs after upgrading again.
    compared = (
        (trip.schema_differences, "differences", f"After the downgrade the schema differs from "
         f"OLD's on {engine}"),
        (trip.reupgrade_differences, "reupgrade_differences", "Upgrading again after the "
         f"downgrade gives a schema that differs from NEW's on {engine}"),
    )  # fmt: skip
    for diffs, key, what in compared:
        by_rev: dict[str, list[SchemaDifference]] = {}
        for diff in diffs:
            by_rev.setdefault(attribute(diff.object, diff.change), []).append(diff)
        for rev, items in by_rev.items():
            listed = "; ".join(f"`{d.object}` {d.change}" for d in items)
            evidence = {key: [d.to_json() for d in items], "engine": engine}
            found.add(ROUNDTRIP_MISMATCH, rev, f"{what}: {listed}.", evidence)
    for rev, lost in _by_revision(trip.old_data_lost, attribute).items():
        found.add(
            DATA_LOST,
            rev,
            f"The downgrade lost data OLD wrote (rows or values changed or gone): {_ticks(lost)}.",
            {"lost": lost, "engine": engine},
        )
    for rev, removed in _by_revision(trip.new_data_removed, attribute).items():
        found.add(
            DOWNGRADE_DESTRUCTIVE,
            rev,
            f"The downgrade of `{rev}` removed data written since: {_ticks(removed)}.",
            {"removed_in_roundtrip": removed},
        )


def _by_revision(
    counts: Mapping[str, int], attribute: Callable[[str, str], str]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for obj, n in counts.items():
        out.setdefault(attribute(obj, ""), {})[obj] = n
    return out
