"""The report's ``migrations`` section as types: what the inspection found, JSON only at the edge.

Everything the engine, the reporters and capture read about migrations is an attribute of
:class:`MigrationsSection`; :meth:`MigrationsSection.to_json` writes the ``compatcheck.report/v1``
keys (the public contract pins ``old_head``, ``new_head``, ``downgrade_path``, ``plans``,
``framework``) in a fixed order, and :meth:`MigrationsSection.from_json` reads them back. A key
a section did not carry (one written by hand, or by an older compatcheck) stays absent on the
way back out: an optional field left at None is not written.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from compatcheck.records import Record, record_from_json

R = TypeVar("R")

#: ``RoundTrip.status`` values that mean nothing was executed.
SKIPPED = "skipped"
UNAVAILABLE = "unavailable"
#: Suffix of a ``new_data_removed`` key counting rows deleted from a table that survives.
ERA_ROWS = " (NEW-era rows)"


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Write ``key`` unless ``value`` is None (the key was not recorded)."""
    if value is not None:
        out[key] = value


def _strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def _records(read: Callable[[Any], R]) -> Callable[[Iterable[Any]], tuple[R, ...]]:
    """Reads a JSON list of records back as a tuple, ``read`` reading each."""
    return lambda items: tuple(read(item) for item in items)


@dataclass(frozen=True)
class SchemaDifference(Record):
    """One way two schemas differ: ``orders.note`` → ``column missing``."""

    #: A table, ``table.column``, ``table indexes`` (an aspect of a table) or an enum type.
    object: str
    #: ``column missing``, ``type INTEGER -> BIGINT``, ``added ix_x(a) unique``...
    change: str


@dataclass(frozen=True)
class StepFailure(Record):
    """A phase of the round trip that failed: ``stage``, the revision in progress, one line."""

    stage: str
    revision: str | None
    error: str


@dataclass(frozen=True)
class RoundTrip:
    """What running the history on a scratch database showed (or why it did not run).

    ``skipped`` carries ``why``, ``unavailable`` carries ``error``; every other status
    (``completed``, ``upgrade-failed``, ``downgrade-failed``, ``reupgrade-failed``) carries
    the observations.
    """

    status: str
    why: str | None = None
    error: str | None = None
    failure: StepFailure | None = None
    schema_differences: tuple[SchemaDifference, ...] = ()
    reupgrade_differences: tuple[SchemaDifference, ...] = ()
    #: OLD-era values lost per object (``table`` → rows, ``table.column`` → values).
    old_data_lost: Mapping[str, int] = field(default_factory=dict)
    #: NEW-era data the downgrade removed, same keys (``table`` + :data:`ERA_ROWS` for rows
    #: deleted from a table the downgrade keeps).
    new_data_removed: Mapping[str, int] = field(default_factory=dict)
    seeded: Mapping[str, int] = field(default_factory=dict)
    #: OLD's tables that got no generated rows, and why (the data check's coverage).
    seed_errors: Mapping[str, str] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    #: Failures after the first: once a downgrade fails, the walk goes on from a fresh scratch
    #: database upgraded to the revisions below it, so every broken downgrade is named.
    later_failures: tuple[StepFailure, ...] = ()
    #: Downgrades the walk passed over without running them, and why (a revision that
    #: certainly defines none: running it could only fail): not claimed as run.
    passed_over: Mapping[str, str] = field(default_factory=dict)
    #: NEW-era rows or values that could not be written, per table (not part of OLD's coverage).
    new_seed_errors: Mapping[str, str] = field(default_factory=dict)
    #: Why the round trip ran without any generated rows (no data check), or None.
    unseeded: str | None = None

    @property
    def ran(self) -> bool:
        return self.status not in (SKIPPED, UNAVAILABLE)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        _put(out, "why", self.why)
        _put(out, "error", self.error)
        if self.ran:
            out.update(
                failure=None if self.failure is None else self.failure.to_json(),
                schema_differences=[d.to_json() for d in self.schema_differences],
                reupgrade_differences=[d.to_json() for d in self.reupgrade_differences],
                old_data_lost=dict(self.old_data_lost),
                new_data_removed=dict(self.new_data_removed),
                seeded=dict(self.seeded),
                seed_errors=dict(self.seed_errors),
                timings=dict(self.timings),
            )
            if self.later_failures:
                out["later_failures"] = [f.to_json() for f in self.later_failures]
            if self.passed_over:
                out["passed_over"] = dict(self.passed_over)
            if self.new_seed_errors:
                out["new_seed_errors"] = dict(self.new_seed_errors)
            _put(out, "unseeded", self.unseeded)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoundTrip:
        return record_from_json(
            cls,
            data,
            failure=StepFailure.from_json,
            schema_differences=_records(SchemaDifference.from_json),
            reupgrade_differences=_records(SchemaDifference.from_json),
            later_failures=_records(StepFailure.from_json),
        )


@dataclass(frozen=True)
class Removal(Record):
    """NEW-era data a downgrade removes: ``refunds`` (2 rows)."""

    #: ``table`` or ``table.column``.
    object: str
    #: ``rows``, ``values`` or ``NEW-era rows`` (deleted from a table the downgrade keeps).
    unit: str
    #: How many the round trip removed; None when nothing counted it (static analysis).
    count: int | None


@dataclass(frozen=True)
class Plan:
    """One way to roll back (``code-only`` or ``downgrade``) and how it was judged."""

    name: str
    safe: bool
    reasons: tuple[str, ...] = ()
    #: Code-only, with a trial: OLD's code was exercised on NEW's schema and judged.
    verified: bool | None = None
    #: Why the trial could not be judged.
    verification: str | None = None
    #: ``runtime``, ``roundtrip`` or ``static``; ``basis_reason`` says why a verdict is static.
    basis: str | None = None
    basis_reason: str | None = None
    #: What following the plan removes of the data written since NEW was deployed.
    removes_new_data: tuple[Removal, ...] = ()
    #: ``--live-db-url`` counts of what the plan destroys, one line per object.
    live_data_at_risk: tuple[str, ...] = ()
    #: The line every format prints (``safe; removes NEW-era data: ...``).
    status: str | None = None
    #: In deploy direction: what the plan is for (``this deploy``, ``a later rollback``).
    applies_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        _put(out, "verified", self.verified)
        _put(out, "verification", self.verification)
        out.update(safe=self.safe, reasons=list(self.reasons))
        _put(out, "basis", self.basis)
        _put(out, "basis_reason", self.basis_reason)
        if self.removes_new_data:
            out["removes_new_data"] = [r.to_json() for r in self.removes_new_data]
        if self.live_data_at_risk:
            out["live_data_at_risk"] = list(self.live_data_at_risk)
        _put(out, "status", self.status)
        _put(out, "applies_to", self.applies_to)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return record_from_json(cls, data, removes_new_data=_records(Removal.from_json))


@dataclass(frozen=True)
class Exchange:
    """One replayed warm-up request and what came back (``status`` None: no HTTP answer)."""

    method: str
    path: str
    status: int | None
    error: str | None = None
    #: The error line OLD logged while serving this request (the exception, not the traceback).
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def broken(self) -> bool:
        """A server-side failure: 5xx or no HTTP answer. A 4xx is OLD's own judgement."""
        return self.status is None or self.status >= 500

    @property
    def outcome(self) -> str:
        if self.status is not None:
            return str(self.status)
        error = self.error or "no answer"
        if "disconnected without sending a response" in error or "closed the connection" in error:
            return "connection closed without a response"
        return f"no response: {error}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path, "status": self.status}
        if self.error:
            out["error"] = self.error
        if self.log:
            out["log"] = self.log
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exchange:
        return cls(
            str(data["method"]),
            str(data["path"]),
            data.get("status"),
            data.get("error"),
            str(data.get("log", "")),
        )


@dataclass(frozen=True)
class TrialSetup:
    """How the code-only trial's database was prepared and how long each part took."""

    #: ``sqlite`` or ``server``.
    database: str | None = None
    #: ``copy of NEW's migrated database`` / ``migrated with NEW's scripts``.
    prepared: str | None = None
    #: The scratch database's name on a server (never its URL: that may hold credentials).
    database_name: str | None = None
    #: Seconds to get that database to NEW's head, for OLD to become ready on it, in all.
    prepare_seconds: float | None = None
    ready_seconds: float | None = None
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            _put(out, f.name, getattr(self, f.name))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialSetup:
        return record_from_json(cls, data)


@dataclass(frozen=True)
class TrialRecord:
    """The report's ``code_only_trial``: OLD's code started on a database at NEW's head."""

    verified: bool
    safe: bool | None = None
    replayed: int | None = None
    note: str | None = None
    failures: tuple[str, ...] | None = None
    setup: TrialSetup = field(default_factory=TrialSetup)
    #: Every replayed warm-up request (None: nothing was replayed, or not recorded).
    requests: tuple[Exchange, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verified": self.verified}
        _put(out, "safe", self.safe)
        _put(out, "replayed", self.replayed)
        _put(out, "note", self.note)
        _put(out, "failures", None if self.failures is None else list(self.failures))
        out.update(self.setup.to_json())
        if self.requests is not None:
            out["requests"] = [r.to_json() for r in self.requests]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialRecord:
        requests = data.get("requests")
        return cls(
            verified=bool(data["verified"]),
            safe=data.get("safe"),
            replayed=data.get("replayed"),
            note=data.get("note"),
            failures=_strings(data.get("failures")),
            setup=TrialSetup.from_json(data),
            requests=None if requests is None else _records(Exchange.from_json)(requests),
        )


@dataclass(frozen=True)
class OnlineOnly(Record):
    """A revision the offline (``--sql``) rendering could not show: it needs a database."""

    revision: str
    #: Why it could not be rendered (what it asked of the database), one line.
    error: str


class Absent(enum.Enum):
    """A key the recorded section did not carry: distinct from a JSON ``null``."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


@dataclass(frozen=True)
class MigrationsSection:
    """The report's ``migrations`` section: the path, the plans, and what the round trip saw."""

    old_head: str | None
    new_head: str | None
    #: Revisions a downgrade runs, in order; None when no path leads from NEW to OLD.
    downgrade_path: tuple[str, ...] | None = ()
    plans: tuple[Plan, ...] = ()
    #: The framework whose files were read (``alembic``).
    framework: str = "alembic"
    heads: tuple[str, ...] | None = None
    #: ``static`` (nothing executed: ``static_reason`` says why) or ``roundtrip``.
    mode: str | None = None
    static_reason: str | None = None
    #: Revisions on the path the framework's own downgrade to OLD would leave applied.
    skipped_by_framework: tuple[str, ...] | None = None
    #: The scratch database's dialect, and how to name the database without credentials.
    engine: str | None = None
    database: str | None = None
    roundtrip: RoundTrip | None = None
    #: The downgrade rendered as SQL, and the revisions that could not be rendered offline.
    offline_sql: str | None = None
    online_only: tuple[OnlineOnly, ...] | None = None
    #: ``--live-db-url`` counts of what destructive downgrades remove there, one line each.
    data_at_risk: tuple[str, ...] | None = None
    #: The plan to follow (None: none is safe); :data:`ABSENT` when the section was written
    #: without one (readers then take the first safe plan).
    recommended: str | Absent | None = ABSENT
    code_only_trial: TrialRecord | None = None

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        path = None if self.downgrade_path is None else list(self.downgrade_path)
        out: dict[str, Any] = {
            "framework": self.framework,
            "old_head": self.old_head,
            "new_head": self.new_head,
            "downgrade_path": path,
            "plans": [p.to_json() for p in self.plans],
        }
        _put(out, "heads", None if self.heads is None else list(self.heads))
        _put(out, "mode", self.mode)
        _put(out, "static_reason", self.static_reason)
        # Trap: key order is part of the output; a static inspection records why nothing ran
        # right after saying so, a round trip after the database it ran on.
        roundtrip = None if self.roundtrip is None else self.roundtrip.to_json()
        if self.static_reason is not None:
            _put(out, "roundtrip", roundtrip)
        skipped = self.skipped_by_framework
        _put(out, "skipped_by_alembic", None if skipped is None else list(skipped))
        _put(out, "engine", self.engine)
        _put(out, "database", self.database)
        if self.static_reason is None:
            _put(out, "roundtrip", roundtrip)
        _put(out, "offline_sql", self.offline_sql)
        online = self.online_only
        _put(out, "online_only", None if online is None else [o.to_json() for o in online])
        _put(out, "data_at_risk", None if self.data_at_risk is None else list(self.data_at_risk))
        if self.recommended is not ABSENT:
            out["recommended"] = self.recommended
        if self.code_only_trial is not None:
            out["code_only_trial"] = self.code_only_trial.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MigrationsSection:
        roundtrip, trial, online = (
            data.get("roundtrip"),
            data.get("code_only_trial"),
            data.get("online_only"),
        )
        return cls(
            framework=str(data.get("framework", "alembic")),
            old_head=data.get("old_head"),
            new_head=data.get("new_head"),
            downgrade_path=_strings(data.get("downgrade_path")),
            plans=tuple(Plan.from_json(p) for p in data.get("plans", ())),
            heads=_strings(data.get("heads")),
            mode=data.get("mode"),
            static_reason=data.get("static_reason"),
            skipped_by_framework=_strings(data.get("skipped_by_alembic")),
            engine=data.get("engine"),
            database=data.get("database"),
            roundtrip=None if roundtrip is None else RoundTrip.from_json(roundtrip),
            offline_sql=data.get("offline_sql"),
            online_only=None if online is None else tuple(OnlineOnly.from_json(o) for o in online),
            data_at_risk=_strings(data.get("data_at_risk")),
            recommended=data.get("recommended", ABSENT),
            code_only_trial=None if trial is None else TrialRecord.from_json(trial),
        )
