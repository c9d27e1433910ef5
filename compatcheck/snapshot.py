"""Snapshots: the recorded contract of one release (``compatcheck.snapshot/v1``).

A snapshot is what a release pipeline stores so that a rollback during an incident compares two
JSON files instead of starting two services. Slots that a capture did not fill stay ``None`` (not
captured) rather than empty (captured, found nothing): the checks must tell the two apart.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compatcheck import __version__
from compatcheck.errors import InputError
from compatcheck.jsondoc import MAX_DEPTH, JsonError, check_depth, parse_json
from compatcheck.masking import mask_secrets
from compatcheck.model import MetricsSchema
from compatcheck.records import record_json

SNAPSHOT_SCHEMA = "compatcheck.snapshot/v1"
_SNAPSHOT_FAMILY = "compatcheck.snapshot/"
#: The keys whose values the snapshot schema leaves free (any JSON): the schema bounds the depth
#: of everything else, so a document it accepts needs its nesting checked only under these.
FREE_KEYS = ("readiness", "artifact")


def capture_time() -> str:
    """``captured_at`` for a snapshot recorded now (UTC, whole seconds)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ReadinessExpectation:
    """The readiness contract the config declared, recorded beside what the probe saw, so a
    stored snapshot is judged against the contract it was recorded under."""

    #: Statuses the endpoint must answer with (empty: any).
    status: tuple[int, ...] = ()
    #: Values the JSON body must hold (leaf by leaf); None: no body expectation.
    json: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.status:
            out["status"] = list(self.status)
        if self.json is not None:
            out["json"] = self.json
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "expect") -> ReadinessExpectation | None:
        """None when ``data`` declares nothing; ``ValueError`` naming ``where`` when malformed."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        status = data.get("status") or []
        if not isinstance(status, list) or not all(_is_int(s) for s in status):
            raise ValueError(f"{where}/status: expected a list of HTTP statuses")
        expectation = cls(tuple(status), data.get("json"))
        return expectation if expectation.to_json() else None


@dataclass(frozen=True)
class ProbeRecord:
    """One probed endpoint as a snapshot records it (``Snapshot.readiness``, keyed by path).

    ``role`` is ``readiness`` (the readiness probe, waited for) or ``health`` (a livenessProbe's
    path, probed as it is). The endpoint is probed twice, around the warm-up and scrapes, and
    ``volatile`` lists the JSON pointers whose value changed between the two calls (timestamps,
    uptimes): checks ignore them. The readiness role also records ``ready`` (2xx within the
    timeout), ``time_to_ready`` (seconds from launch; None when never ready) and ``waited``;
    for the health role they are None and absent from the JSON.
    """

    role: str = "readiness"
    #: Last HTTP status; None when no HTTP answer came (``error`` says why).
    status: int | None = None
    error: str | None = None
    #: The decoded body when it was JSON, else None.
    json: Any = None
    volatile: tuple[str, ...] = ()
    ready: bool | None = None
    time_to_ready: float | None = None
    waited: float | None = None
    expect: ReadinessExpectation | None = None

    def to_json(self) -> dict[str, Any]:
        out = record_json(self, expect=lambda e: None if e is None else e.to_json())
        # The readiness role's three keys, and an expectation, are written only when recorded.
        if self.ready is None:
            for key in ("ready", "time_to_ready", "waited"):
                del out[key]
        if self.expect is None:
            del out["expect"]
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "readiness") -> ProbeRecord:
        """Read one entry; ``ValueError`` naming ``where`` (``readiness/<path>``) if malformed.

        Missing members take their defaults (a stored snapshot written by hand may be partial).
        """
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        for key, (fits, wanted) in _MEMBERS.items():
            value = data.get(key)
            if value is not None and not fits(value):
                raise ValueError(f"{where}/{key}: expected {wanted}")
        volatile = data.get("volatile") or []
        if not isinstance(volatile, list) or not all(isinstance(v, str) for v in volatile):
            raise ValueError(f"{where}/volatile: expected a list of JSON pointers")
        return cls(
            role=data.get("role") or "readiness",
            status=data.get("status"),
            error=data.get("error"),
            json=data.get("json"),
            volatile=tuple(volatile),
            ready=data.get("ready"),
            time_to_ready=data.get("time_to_ready"),
            waited=data.get("waited"),
            expect=ReadinessExpectation.from_json(data.get("expect"), f"{where}/expect"),
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: What each scalar member of a :class:`ProbeRecord` must be when present (the schema leaves
#: readiness entries open): a predicate and the words for the error.
_MEMBERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "role": (lambda v: isinstance(v, str), "a string"),
    "status": (_is_int, "an HTTP status"),
    "error": (lambda v: isinstance(v, str), "a string"),
    "ready": (lambda v: isinstance(v, bool), "true or false"),
    "time_to_ready": (_is_number, "a number of seconds"),
    "waited": (_is_number, "a number of seconds"),
}


def readiness_from_json(data: Any) -> dict[str, ProbeRecord] | None:
    """``Snapshot.readiness`` from its JSON form (None: not captured)."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("readiness: expected an object")
    return {path: ProbeRecord.from_json(entry, f"readiness/{path}") for path, entry in data.items()}


@dataclass(frozen=True)
class Snapshot:
    """One version's contract: metrics schema plus readiness, build info, Alembic head, artifact."""

    label: str = ""
    source: str = ""
    captured_at: str = ""
    tool_version: str = __version__
    metrics: MetricsSchema | None = None
    #: Probe results keyed by endpoint path (``/readyz``); None when not captured.
    readiness: Mapping[str, ProbeRecord] | None = None
    #: ``version``/``revision``/... labels of ``*_build_info`` or ``target_info``.
    build: Mapping[str, str] = field(default_factory=dict)
    alembic_head: str | None = None
    #: Image reference, digest and OCI labels, or a release path and its sha256.
    artifact: Mapping[str, Any] | None = None
    #: Why a part could not be captured (``{"metrics": "connection refused"}``): becomes
    #: ``check/unavailable`` instead of a silent pass.
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The document form. Label, source and the reasons a part was not captured are masked:
        they are where a URL given on the command line ends up, and a token must never be stored
        in a snapshot file."""
        return {
            "schema": SNAPSHOT_SCHEMA,
            "label": mask_secrets(self.label),
            "source": mask_secrets(self.source),
            "captured_at": self.captured_at,
            "tool_version": self.tool_version,
            "metrics": self.metrics.to_json() if self.metrics is not None else None,
            "readiness": (
                {path: entry.to_json() for path, entry in self.readiness.items()}
                if self.readiness is not None
                else None
            ),
            "build": dict(self.build),
            "alembic_head": self.alembic_head,
            "artifact": self.artifact,
            "unavailable": {k: mask_secrets(v) for k, v in self.unavailable.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Read a document already validated against the schema; ``ValueError`` names a part
        the schema leaves open (a readiness entry) that is malformed."""
        metrics = data.get("metrics")
        return cls(
            label=data.get("label", ""),
            source=data.get("source", ""),
            captured_at=data.get("captured_at", ""),
            tool_version=data.get("tool_version", ""),
            metrics=MetricsSchema.from_json(metrics) if metrics is not None else None,
            readiness=readiness_from_json(data.get("readiness")),
            build=dict(data.get("build") or {}),
            alembic_head=data.get("alembic_head"),
            artifact=data.get("artifact"),
            unavailable=dict(data.get("unavailable") or {}),
        )


def dump_snapshot(snapshot: Snapshot) -> str:
    """Serialise deterministically (sorted keys) so stored snapshots diff cleanly in git."""
    return json.dumps(snapshot.to_json(), indent=2, sort_keys=True) + "\n"


def is_snapshot_document(data: object) -> bool:
    return isinstance(data, dict) and data.get("schema") == SNAPSHOT_SCHEMA


def claims_to_be_snapshot(data: object) -> bool:
    """A snapshot of any format version (``compatcheck.snapshot/v...``), readable or not."""
    schema = data.get("schema") if isinstance(data, dict) else None
    return isinstance(schema, str) and schema.startswith(_SNAPSHOT_FAMILY)


def decode_json(text: str, name: str) -> Any:
    """Decode a document with a one-line error naming the input and the problem (where the JSON
    breaks, or that it nests too deeply: see :func:`~compatcheck.jsondoc.parse_json`).

    A current snapshot's nesting is checked by :func:`snapshot_from_document`, which needs to
    walk only its free keys once the schema accepts it: the full walk was a third of the time
    to read a 13 MB snapshot. Equal strings in lists are one object (label values repeat across
    families): a decoded 13 MB snapshot holds 5 MB instead of 30.
    """
    try:
        data = parse_json(text, max_depth=None, shared_strings=True)
        if not is_snapshot_document(data) and isinstance(data, dict | list):
            check_depth(data, MAX_DEPTH)
    except JsonError as exc:
        raise InputError(f"{name}: {exc}") from None
    return data


def parse_snapshot(text: str, name: str) -> Snapshot:
    """Parse and validate a snapshot document; errors name the input and the problem."""
    return snapshot_from_document(decode_json(text, name), name)


def _check_nesting(data: dict[str, Any], name: str, *, accepted: bool) -> None:
    """The nesting limit of :func:`~compatcheck.jsondoc.parse_json`, on a snapshot document:
    only under :data:`FREE_KEYS` when the schema ``accepted`` it, else everywhere (so that a deep
    document is named as such before the schema's message is worded)."""
    try:
        if not accepted:
            check_depth(data, MAX_DEPTH)
            return
        for key in FREE_KEYS:
            value = data.get(key)
            if isinstance(value, dict | list):
                check_depth(value, MAX_DEPTH - 1)  # one level below the document's
    except JsonError:
        raise InputError(f"{name}: nested deeper than {MAX_DEPTH} levels") from None


def snapshot_from_document(data: Any, name: str) -> Snapshot:
    """Validate an already decoded snapshot document (so a caller that sniffed it decodes once)."""
    from compatcheck.schemas import accepts, validate

    if not is_snapshot_document(data):
        if claims_to_be_snapshot(data):
            assert isinstance(data, dict)
            schema = data["schema"]
            # Recorded by another compatcheck release: say so, it is not a corrupt file.
            raise InputError(
                f"{name}: snapshot format {schema!r} is not one this compatcheck "
                f"({__version__}) reads ({SNAPSHOT_SCHEMA!r}): record it again with this "
                "release, or compare it with the release that wrote it"
            )
        raise InputError(
            f"{name}: not a compatcheck snapshot (expected schema {SNAPSHOT_SCHEMA!r})"
        )
    accepted = accepts(data, "snapshot")
    _check_nesting(data, name, accepted=accepted)
    problem = None if accepted else validate(data, "snapshot")
    if problem:
        raise InputError(f"{name}: invalid snapshot: {problem}")
    try:
        return Snapshot.from_json(data)
    except ValueError as exc:
        raise InputError(f"{name}: invalid snapshot: at {exc}") from None


def load_snapshot(path: str | Path) -> Snapshot:
    from compatcheck.files import read_text

    return parse_snapshot(read_text(path, "snapshot file"), str(path))
