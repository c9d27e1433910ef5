"""The report's ``verify`` section: what each verification check saw on the last poll.

A frozen type rather than a dict because three layers read it (the polling loop writes it, the
report carries it into JSON, every reporter renders it); ``from_json`` reads back exactly what
``to_json`` wrote, so a stored report can be rendered again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatcheck.records import record_json

#: The checks, in the order they run and are shown.
CHECK_NAMES = ("build", "targets", "series", "error-rate", "alerts")

#: ``ok``: holds on the last poll. ``failing``: does not (yet). ``skipped``: nothing to check
#: (the contract names no build, no consumer needs a family...), said in ``summary``.
#: ``unknown``: Prometheus could not be asked on the last poll.
STATUSES = ("ok", "failing", "skipped", "unknown")


@dataclass(frozen=True)
class VerifyCheck:
    """One check after the last poll. ``value`` is what it measured last (an error ratio, a
    number of targets, of series), ``details`` one line per object that fails or was seen."""

    name: str
    status: str
    summary: str
    query: str = ""
    value: float | None = None
    #: When it was last evaluated, and since when it has held without interruption (ISO 8601).
    checked_at: str = ""
    ok_since: str | None = None
    details: tuple[str, ...] = ()

    @property
    def holds(self) -> bool:
        return self.status in ("ok", "skipped")

    def to_json(self) -> dict[str, Any]:
        return record_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerifyCheck:
        value = data.get("value")
        return cls(
            name=str(data["name"]),
            status=str(data["status"]),
            summary=str(data.get("summary", "")),
            query=str(data.get("query", "")),
            value=float(value) if isinstance(value, int | float) else None,
            checked_at=str(data.get("checked_at", "")),
            ok_since=data.get("ok_since"),
            details=tuple(str(d) for d in data.get("details", ())),
        )


@dataclass(frozen=True)
class VerifySection:
    """Where and how long verification looked, and each check's last state."""

    prometheus: str
    selector: str
    #: The label of the release that should now run (the ``--expect`` contract).
    expect: str
    window_seconds: float
    interval_seconds: float
    started_at: str
    finished_at: str
    polls: int
    #: Every check held on the last poll (policy may still waive a finding; the verdict decides).
    verified: bool
    checks: tuple[VerifyCheck, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return record_json(self, checks=lambda checks: [c.to_json() for c in checks])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerifySection:
        return cls(
            prometheus=str(data["prometheus"]),
            selector=str(data["selector"]),
            expect=str(data.get("expect", "")),
            window_seconds=float(data.get("window_seconds", 0)),
            interval_seconds=float(data.get("interval_seconds", 0)),
            started_at=str(data.get("started_at", "")),
            finished_at=str(data.get("finished_at", "")),
            polls=int(data.get("polls", 0)),
            verified=bool(data.get("verified", False)),
            checks=tuple(VerifyCheck.from_json(c) for c in data.get("checks", ())),
        )
