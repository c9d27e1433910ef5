"""SARIF 2.1.0, for code-scanning dashboards (GitHub code scanning, GitLab, Azure DevOps).

Rules come from the catalogue (only the kinds present, so the file stays small); results carry the
finding's fingerprint as a partial fingerprint so that a dashboard tracks one finding across runs.
A finding about an alert or panel points at its file and line; every other finding names its
subject as a logical location (a metric family or a revision has no file in the repository).
Waived findings stay in the log as suppressed results, with the waiver's reason as justification.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from compatcheck import __version__
from compatcheck.catalogue import load_catalogue
from compatcheck.model import Consumer
from compatcheck.report import RatedFinding, Report
from compatcheck.reporters._common import (
    area_of,
    consumer_text,
    finding_location,
    plan_statuses,
    repo_path,
)
from compatcheck.reporters.causes import build_causes, summary_line

SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://compatcheck.dev"
FINGERPRINT_KEY = "compatcheck/v1"

#: compatcheck severity → SARIF level (``off`` findings are never rendered; rules may be off).
LEVELS = {"error": "error", "warning": "warning", "info": "note", "off": "none"}

#: What a subject is, per area: SARIF's logicalLocation ``kind``.
_LOGICAL_KINDS = {
    "metrics": "metric",
    "readiness": "endpoint",
    "migrations": "revision",
    "artifact": "artifact",
    "check": "check",
}


def _uri(path: str) -> str:
    """A relative file path as a URI reference (forward slashes, percent-encoded)."""
    posix = PureWindowsPath(path).as_posix() if "\\" in path else path
    if PurePosixPath(posix).is_absolute():
        return "file://" + quote(posix)
    return quote(posix)


def _consumer_location(c: Consumer, report: Report) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(repo_path(c.file, report))}}
    if c.line is not None and c.line >= 1:
        physical["region"] = {"startLine": c.line}
    logical: dict[str, Any] = {"name": c.name, "kind": c.type}
    if c.dashboard or c.group:
        logical["fullyQualifiedName"] = f"{c.dashboard or c.group}/{c.name}"
    return {
        "physicalLocation": physical,
        "logicalLocations": [logical],
        "message": {"text": consumer_text(c)},
    }


def _locations(rf: RatedFinding, report: Report) -> list[dict[str, Any]]:
    f = rf.finding
    if f.consumers:
        return [_consumer_location(c, report) for c in f.consumers]
    kind = _LOGICAL_KINDS.get(area_of(f.kind), "resource")
    location: dict[str, Any] = {"logicalLocations": [{"name": f.subject, "kind": kind}]}
    # Trap: GitHub code scanning rejects a result without a physical location
    # ("locationFromSarifResult: expected at least one location"), so point at a file.
    where = finding_location(rf, report)
    if where is not None:
        uri = _uri(repo_path(where[0], report))
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
        if where[1] is not None:
            physical["region"] = {"startLine": where[1]}
        location["physicalLocation"] = physical
    return [location]


def _result(rf: RatedFinding, rule_index: int, report: Report) -> dict[str, Any]:
    f = rf.finding
    result: dict[str, Any] = {
        "ruleId": f.kind,
        "ruleIndex": rule_index,
        "level": LEVELS[rf.severity],
        "message": {"text": f.message},
        "locations": _locations(rf, report),
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
        "properties": {
            "subject": f.subject,
            "severity": rf.severity,
            "blocking": rf.blocking,
            "evidence": f.to_json()["evidence"],
        },
    }
    if rf.waiver is not None:
        w = rf.waiver
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"{w.reason} (until {w.expires.isoformat()}, {w.source})",
            }
        ]
    return result


def _rule(kind: str) -> dict[str, Any]:
    rule = load_catalogue().get(kind)
    if rule is None:
        # A kind missing from the catalogue is a bug elsewhere; still describe it, never crash.
        return {"id": kind, "shortDescription": {"text": kind}}
    return {
        "id": kind,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {
            "text": f"{rule.why}\nFix: {rule.fix}",
            "markdown": f"{rule.why}\n\n**Fix:** {rule.fix}",
        },
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"area": rule.area, "example": rule.example},
    }


def sarif_log(report: Report) -> dict[str, Any]:
    """The SARIF log as a dict (what :func:`render_sarif` serialises)."""
    visible = report.visible()
    # The causes-first summary every human format ends with, so dashboards say the same.
    summary = summary_line(report, build_causes(report))
    kinds = sorted({rf.finding.kind for rf in visible})
    index = {k: i for i, k in enumerate(kinds)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "compatcheck",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(k) for k in kinds],
            }
        },
        "invocations": [
            {
                # False when a check could not run: the results are then incomplete.
                "executionSuccessful": not report.unavailable,
                "properties": {"verdict": report.verdict, "summary": summary},
            }
        ],
        "results": [_result(rf, index[rf.finding.kind], report) for rf in visible],
        "properties": {
            "direction": report.direction,
            "old": report.old.to_json(),
            "new": report.new.to_json(),
            "fail_on": report.fail_on,
        },
    }
    statuses = plan_statuses(report)
    if statuses:
        run["properties"]["plans"] = [{"plan": t, "status": s} for t, s in statuses]
    if report.verify is not None:
        run["properties"]["verify"] = report.verify.to_json()
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(report: Report, *, color: bool = False) -> str:
    """SARIF 2.1.0 JSON plus a newline; ``color`` is ignored."""
    return json.dumps(sarif_log(report), indent=2) + "\n"
