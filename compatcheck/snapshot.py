"""Snapshots: the recorded contract of one release (``compatcheck.snapshot/v1``).

A snapshot is what a release pipeline stores so that a rollback during an incident compares two
JSON files instead of starting two services. Slots that a capture did not fill stay ``None`` (not
captured) rather than empty (captured, found nothing): the checks must tell the two apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compatcheck import __version__
from compatcheck.errors import InputError
from compatcheck.jsondoc import JsonError, parse_json
from compatcheck.masking import mask_secrets
from compatcheck.model import MetricsSchema

SNAPSHOT_SCHEMA = "compatcheck.snapshot/v1"
_SNAPSHOT_FAMILY = "compatcheck.snapshot/"


@dataclass(frozen=True)
class Snapshot:
    """One version's contract: metrics schema plus readiness, build info, Alembic head, artifact."""

    label: str = ""
    source: str = ""
    captured_at: str = ""
    tool_version: str = __version__
    metrics: MetricsSchema | None = None
    #: Probe results keyed by path: ``{"/readyz": {"status": 200, "json": {...}, "ready": true}}``.
    readiness: Mapping[str, Any] | None = None
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
            "readiness": self.readiness,
            "build": dict(self.build),
            "alembic_head": self.alembic_head,
            "artifact": self.artifact,
            "unavailable": {k: mask_secrets(v) for k, v in self.unavailable.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        metrics = data.get("metrics")
        return cls(
            label=data.get("label", ""),
            source=data.get("source", ""),
            captured_at=data.get("captured_at", ""),
            tool_version=data.get("tool_version", ""),
            metrics=MetricsSchema.from_json(metrics) if metrics is not None else None,
            readiness=data.get("readiness"),
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
    breaks, or that it nests too deeply: see :func:`~compatcheck.jsondoc.parse_json`)."""
    try:
        return parse_json(text)
    except JsonError as exc:
        raise InputError(f"{name}: {exc}") from None


def parse_snapshot(text: str, name: str) -> Snapshot:
    """Parse and validate a snapshot document; errors name the input and the problem."""
    return snapshot_from_document(decode_json(text, name), name)


def snapshot_from_document(data: Any, name: str) -> Snapshot:
    """Validate an already decoded snapshot document (so a caller that sniffed it decodes once)."""
    from compatcheck.schemas import validate

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
    problem = validate(data, "snapshot")
    if problem:
        raise InputError(f"{name}: invalid snapshot: {problem}")
    return Snapshot.from_json(data)


def load_snapshot(path: str | Path) -> Snapshot:
    from compatcheck.files import read_text

    return parse_snapshot(read_text(path, "snapshot file"), str(path))
