"""The report: rated findings, the verdict, and everything a reporter needs to render them.

Reporters are pure functions of a :class:`Report`; only the CLI turns it into an exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compatcheck import __version__
from compatcheck.catalogue import SEVERITY_RANK
from compatcheck.checks.availability import UNAVAILABLE_KINDS
from compatcheck.model import Finding
from compatcheck.policy import Waiver

if TYPE_CHECKING:
    from compatcheck.artifact.section import ArtifactSection
    from compatcheck.migrations.section import MigrationsSection, Plan
    from compatcheck.verify.section import VerifySection

REPORT_SCHEMA = "compatcheck.report/v1"


@dataclass(frozen=True)
class RatedFinding:
    """A finding with what policy and the rollback plans made of it."""

    finding: Finding
    severity: str
    waiver: Waiver | None = None
    #: False when the finding concerns a rollback plan that is not needed because another plan
    #: is safe (e.g. a destructive downgrade when the code-only plan is safe).
    blocking: bool = True

    @property
    def waived(self) -> bool:
        return self.waiver is not None

    def counts_against(self, fail_on: str) -> bool:
        return (
            self.blocking
            and not self.waived
            and self.severity != "off"
            and SEVERITY_RANK[self.severity] >= SEVERITY_RANK[fail_on]
        )

    def to_json(self) -> dict[str, Any]:
        f = self.finding.to_json()
        out: dict[str, Any] = {
            "kind": f["kind"],
            "severity": self.severity,
            "subject": f["subject"],
            "message": f["message"],
            "fingerprint": f["fingerprint"],
            "waived": self.waived,
            "blocking": self.blocking,
            "consumers": f["consumers"],
            "evidence": f["evidence"],
        }
        if self.waiver is not None:
            out["waiver"] = {
                "reason": self.waiver.reason,
                "expires": self.waiver.expires.isoformat(),
                "source": self.waiver.source,
            }
        return out


@dataclass(frozen=True)
class VersionInfo:
    """The header of one side of the comparison."""

    label: str
    source: str
    build: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "source": self.source, "build": dict(self.build)}


@dataclass(frozen=True)
class Report:
    """Everything one evaluation decided. ``findings`` are in deterministic order."""

    verdict: str  # "go" | "no-go"
    direction: str  # "rollback" | "deploy"
    old: VersionInfo
    new: VersionInfo
    findings: tuple[RatedFinding, ...]
    fail_on: str = "error"
    #: What the migrations inspection found, when migrations were inspected.
    migrations: MigrationsSection | None = None
    #: What post-rollback verification saw (``compatcheck verify``); None for a pre-flight.
    verify: VerifySection | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    expired_waivers: tuple[Waiver, ...] = ()
    unused_waivers: tuple[Waiver, ...] = ()
    #: What was verified about OLD's artifact, and the rollback command.
    artifact: ArtifactSection | None = None
    #: Extra sections other layers add (bridge rewrites...), rendered as-is.
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: The file a finding without a location of its own points at (the config, NEW's exposition
    #: or snapshot): code scanning and workflow annotations need a file for every result.
    anchor: str = ""
    #: What a person must read before the findings (e.g. one capture is a small fraction of the
    #: other): the text and Markdown reports' first line, ``notes`` in JSON.
    notes: tuple[str, ...] = ()
    #: The compatcheck command line as it ran (URLs masked): the header, and the base of the
    #: commands a fix suggests (``--emit-bridge-rules``). ``invocation`` in JSON when known.
    invocation: str = ""
    #: The repository root file paths in ``github`` and ``sarif`` output are relative to
    #: (``GITHUB_WORKSPACE``, else the git top level, else the working directory); set by the
    #: CLI, not part of the JSON.
    workspace: str = ""

    @property
    def plans(self) -> tuple[Plan, ...]:
        """The rollback plans, as judged for this report's direction (none without migrations).

        The JSON carries them twice (top-level ``plans`` and ``migrations.plans``, both pinned),
        written from this one fact.
        """
        return self.migrations.plans if self.migrations is not None else ()

    @property
    def go(self) -> bool:
        return self.verdict == "go"

    @property
    def counts(self) -> dict[str, int]:
        """Unwaived findings per severity (``off`` excluded): what the verdict line shows."""
        out = {"error": 0, "warning": 0, "info": 0}
        for rf in self.findings:
            if not rf.waived and rf.severity in out:
                out[rf.severity] += 1
        return out

    def cannot_tell(self) -> list[RatedFinding]:
        """The findings saying something could not be evaluated (neither waived nor off).

        The one definition of "unavailable": the CLI prints these and exits 3, the hook answers
        "cannot tell yet" with the first, SARIF marks the run unsuccessful.
        """
        return [
            rf
            for rf in self.findings
            if rf.finding.kind in UNAVAILABLE_KINDS and not rf.waived and rf.severity != "off"
        ]

    @property
    def unavailable(self) -> bool:
        """True when something could not be evaluated (the CLI exits 3)."""
        return bool(self.cannot_tell())

    def visible(self) -> list[RatedFinding]:
        """Findings a person should see: everything not switched off."""
        return [rf for rf in self.findings if rf.severity != "off"]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "tool_version": __version__,
            "verdict": self.verdict,
            "go": self.go,
            "direction": self.direction,
            "fail_on": self.fail_on,
            "old": self.old.to_json(),
            "new": self.new.to_json(),
            "counts": self.counts,
            "findings": [rf.to_json() for rf in self.visible()],
            "plans": [p.to_json() for p in self.plans],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "waivers": {
                "expired": [w.to_json() for w in self.expired_waivers],
                "unused": [w.to_json() for w in self.unused_waivers],
            },
        }
        if self.migrations is not None:
            out["migrations"] = self.migrations.to_json()
        if self.verify is not None:
            out["verify"] = self.verify.to_json()
        if self.notes:
            out["notes"] = list(self.notes)
        if self.invocation:
            out["invocation"] = self.invocation
        if self.artifact is not None:
            out["artifact"] = self.artifact.to_json()
        out.update(self.extras)
        return out
