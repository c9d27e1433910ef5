"""The data model shared by every layer: metric schemas, snapshots and findings.

Everything here is a frozen dataclass so that the pure layers (compare, checks, policy) cannot
mutate what capture produced; a layer that enriches a value returns a new one with
``dataclasses.replace``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compatcheck.records import record_json

#: Metric types as they appear in ``# TYPE`` lines (Prometheus text 0.0.4 and OpenMetrics 1.0).
METRIC_TYPES = (
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "untyped",
    "unknown",
)

#: Cap on distinct values recorded per label; past it the label is marked high-cardinality and its
#: values are no longer compared (they are request ids, user ids... not a contract).
LABEL_VALUE_CAP = 64


def format_bound(value: float) -> str:
    """Render a bucket bound or quantile the way Prometheus does (``+Inf``, ``0.5``, ``1``).

    Trap: ``le="1"``, ``le="1.0"`` and ``le="1e0"`` are the same bound, so bounds are compared as
    floats and rendered canonically; never compare the label strings.
    """
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def parse_bound(text: str) -> float:
    """Inverse of :func:`format_bound`; accepts every spelling Prometheus accepts for a float."""
    t = text.strip()
    low = t.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low == "nan":
        return math.nan
    return float(t)


def _bounds_json(bounds: tuple[float, ...]) -> list[str]:
    return [format_bound(b) for b in bounds]


def _label_values_json(values: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in sorted(values.items())}


@dataclass(frozen=True)
class MetricFamily:
    """What a consumer of one metric family depends on, with the samples' values dropped.

    ``name`` is the name PromQL selects: a counter keeps ``_total`` when the exposition has it, a
    histogram or summary is its base name (``_bucket``/``_sum``/``_count`` folded in).
    """

    name: str
    type: str = "untyped"
    unit: str = ""
    help: str = ""
    #: Label keys seen on any series of the family, sorted; ``le`` and ``quantile`` are kept apart.
    labels: tuple[str, ...] = ()
    #: Distinct values seen per label (sorted), for labels under the cardinality cap.
    label_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Labels whose distinct values exceeded :data:`LABEL_VALUE_CAP`.
    high_cardinality: tuple[str, ...] = ()
    #: Histogram bucket upper bounds (``le``), sorted, ``+Inf`` included when exposed.
    buckets: tuple[float, ...] = ()
    #: Summary quantiles, sorted.
    quantiles: tuple[float, ...] = ()
    #: Number of distinct series (label sets, ignoring ``le``/``quantile`` and sample suffixes).
    series: int = 0
    #: False when the family had only ``# HELP``/``# TYPE`` metadata and no sample.
    has_samples: bool = False
    #: Label keys (or ``label=value`` pairs) seen only in some of several merged scrapes.
    intermittent: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return record_json(
            self, label_values=_label_values_json, buckets=_bounds_json, quantiles=_bounds_json
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricFamily:
        return cls(
            name=data["name"],
            type=data.get("type", "untyped"),
            unit=data.get("unit", ""),
            help=data.get("help", ""),
            labels=tuple(data.get("labels", ())),
            label_values={k: tuple(v) for k, v in data.get("label_values", {}).items()},
            high_cardinality=tuple(data.get("high_cardinality", ())),
            buckets=tuple(parse_bound(b) for b in data.get("buckets", ())),
            quantiles=tuple(parse_bound(q) for q in data.get("quantiles", ())),
            series=int(data.get("series", 0)),
            has_samples=bool(data.get("has_samples", False)),
            intermittent=tuple(data.get("intermittent", ())),
        )


@dataclass(frozen=True)
class MetricsSchema:
    """All families of one exposition, keyed by PromQL name, plus how it was obtained."""

    families: Mapping[str, MetricFamily] = field(default_factory=dict)
    #: Negotiated Content-Type (``text/plain; version=0.0.4`` or ``application/openmetrics-text``).
    content_type: str = ""
    #: One-line parse errors (``line N: what``); non-empty means ``metrics/exposition-invalid``.
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "errors": list(self.errors),
            "families": [self.families[k].to_json() for k in sorted(self.families)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricsSchema:
        fams = [MetricFamily.from_json(f) for f in data.get("families", ())]
        return cls(
            families={f.name: f for f in fams},
            content_type=data.get("content_type", ""),
            errors=tuple(data.get("errors", ())),
        )


@dataclass(frozen=True)
class Consumer:
    """Something outside the service that reads its metrics: an alert, a record, a panel..."""

    type: str  # alert | record | panel | variable | query
    name: str
    file: str
    line: int | None = None
    id: int | str | None = None
    group: str | None = None
    dashboard: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "name": self.name,
            "id": self.id,
            "file": self.file,
            "line": self.line,
        }
        if self.group is not None:
            out["group"] = self.group
        if self.dashboard is not None:
            out["dashboard"] = self.dashboard
        return out


@dataclass(frozen=True)
class Finding:
    """One difference that matters to a rollback. Carries no severity: policy decides that.

    ``kind`` is a public id from ``rules/default.yaml``; ``subject`` names the object the way its
    users do (a PromQL family name, ``family{label}``, a revision id...).
    """

    kind: str
    subject: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    consumers: tuple[Consumer, ...] = ()

    @property
    def fingerprint(self) -> str:
        """Stable id for waivers and CI de-duplication: depends on kind and subject only.

        Messages and evidence may be reworded or grow between releases of compatcheck; a waiver
        written against a fingerprint must keep matching.
        """
        return hashlib.sha256(f"{self.kind}\x00{self.subject}".encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "fingerprint": self.fingerprint,
            "consumers": [c.to_json() for c in self.consumers],
            "evidence": json.loads(json.dumps(self.evidence, default=str)),
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Deterministic order for every output: by kind, then subject, then message."""
    return sorted(findings, key=lambda f: (f.kind, f.subject, f.message))
