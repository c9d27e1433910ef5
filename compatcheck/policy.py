"""Policy: severities per kind and waivers, layered over the catalogue's defaults.

Checks emit kinds; policy decides how much each matters (pint and oasdiff work the same way). A
policy file looks like::

    severity:
      metrics/help-changed: info
      metrics/family-removed: {severity: error, without_consumers: warning}
    waivers:
      - kind: metrics/family-removed
        subject: "legacy_*"          # glob over the subject, or `fingerprint: 3f1c0a9b2e77`
        reason: "dashboards migrated in PLAT-123"
        expires: 2026-12-31

Unknown kinds and keys are errors with ``file:line``: a typo in a waiver must not silently let a
breaking rollback through. Waivers must say why and must expire, so that they get revisited.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compatcheck.catalogue import SEVERITIES, load_catalogue, normalize_severity
from compatcheck.errors import UsageError
from compatcheck.model import Finding
from compatcheck.yamlfile import LineDict, LineList, load_yaml_file

_TOP_KEYS = ("severity", "waivers")
_SEVERITY_KEYS = ("severity", "without_consumers")
_WAIVER_KEYS = ("kind", "subject", "fingerprint", "reason", "expires")


@dataclass(frozen=True)
class Waiver:
    """Accept one known finding (kind + subject glob, or fingerprint) until ``expires``."""

    kind: str
    reason: str
    expires: dt.date
    source: str
    subject: str | None = None
    fingerprint: str | None = None

    def matches(self, finding: Finding) -> bool:
        if finding.kind != self.kind:
            return False
        if self.fingerprint is not None and finding.fingerprint != self.fingerprint:
            return False
        return self.subject is None or fnmatch.fnmatchcase(finding.subject, self.subject)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "fingerprint": self.fingerprint,
            "reason": self.reason,
            "expires": self.expires.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True)
class Policy:
    """Effective severities (catalogue + overlays) and the waivers of every policy file."""

    severities: Mapping[str, str]
    without_consumers: Mapping[str, str | None]
    waivers: tuple[Waiver, ...] = ()
    sources: tuple[str, ...] = ()

    def severity_of(self, finding: Finding, *, consumers_known: bool) -> str:
        """Severity for ``finding``; ``consumers_known`` says whether consumer files were given.

        Only when consumers were given does "nobody uses it" mean anything, so only then does the
        ``without_consumers`` severity apply.
        """
        sev = self.severities[finding.kind]
        if consumers_known and not finding.consumers:
            alt = self.without_consumers.get(finding.kind)
            if alt is not None:
                return alt
        return sev


def default_policy() -> Policy:
    cat = load_catalogue()
    return Policy(
        severities={k: r.severity for k, r in cat.items()},
        without_consumers={k: r.without_consumers for k, r in cat.items()},
    )


def _unknown_keys(data: LineDict, allowed: Sequence[str], name: str, where: str) -> None:
    for key in data:
        if key not in allowed:
            raise UsageError(
                f"{name}:{data.line_of(key)}: unknown key `{key}` in {where} "
                f"(expected one of: {', '.join(allowed)})"
            )


def _parse_date(value: Any, name: str, line: int) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(
            f"{name}:{line}: `expires` must be a date (YYYY-MM-DD), got {value!r}"
        ) from None


def _check_kind(kind: Any, name: str, line: int) -> str:
    if not isinstance(kind, str) or kind not in load_catalogue():
        raise UsageError(f"{name}:{line}: unknown finding kind `{kind}` (see `compatcheck rules`)")
    return kind


def load_policy(paths: Iterable[str | Path], base: Policy | None = None) -> Policy:
    """Overlay each policy file, in order, on ``base`` (default: the catalogue)."""
    pol = base or default_policy()
    severities = dict(pol.severities)
    without = dict(pol.without_consumers)
    waivers = list(pol.waivers)
    sources = list(pol.sources)
    for path in paths:
        name = str(path)
        data = load_yaml_file(path, "policy file")
        if data is None:
            continue
        if not isinstance(data, LineDict):
            raise UsageError(f"{name}:1: a policy file must be a mapping with `severity`/`waivers`")
        _unknown_keys(data, _TOP_KEYS, name, "policy")
        sev = data.get("severity")
        if sev is None:
            sev = LineDict()
            sev.line, sev.key_lines = data.line, {}
        if not isinstance(sev, LineDict):
            raise UsageError(f"{name}:{data.line_of('severity')}: `severity` must be a mapping")
        for kind, value in sev.items():
            line = sev.line_of(kind)
            _check_kind(kind, name, line)
            if isinstance(value, LineDict):
                _unknown_keys(value, _SEVERITY_KEYS, name, f"severity of `{kind}`")
                main = normalize_severity(value.get("severity", severities[kind]))
                alt = normalize_severity(value.get("without_consumers"))
            else:
                main, alt = normalize_severity(value), without[kind]
            for s in (main, alt):
                if s is not None and s not in SEVERITIES:
                    raise UsageError(
                        f"{name}:{line}: severity of `{kind}` must be one of "
                        f"{', '.join(SEVERITIES)}, got {s!r}"
                    )
            severities[kind], without[kind] = main, alt
        raw_waivers = data.get("waivers")
        if raw_waivers is None:
            raw_waivers = LineList()
            raw_waivers.line, raw_waivers.item_lines = data.line, []
        if not isinstance(raw_waivers, LineList):
            raise UsageError(f"{name}:{data.line_of('waivers')}: `waivers` must be a list")
        for item, line in zip(raw_waivers, raw_waivers.item_lines, strict=True):
            if not isinstance(item, LineDict):
                raise UsageError(f"{name}:{line}: a waiver must be a mapping")
            _unknown_keys(item, _WAIVER_KEYS, name, "waiver")
            for required in ("kind", "reason", "expires"):
                if not item.get(required):
                    raise UsageError(f"{name}:{line}: waiver needs `{required}`")
            if not item.get("subject") and not item.get("fingerprint"):
                raise UsageError(f"{name}:{line}: waiver needs `subject` (a glob) or `fingerprint`")
            waivers.append(
                Waiver(
                    kind=_check_kind(item["kind"], name, item.line_of("kind")),
                    reason=str(item["reason"]),
                    expires=_parse_date(item["expires"], name, item.line_of("expires")),
                    source=f"{name}:{line}",
                    subject=str(item["subject"]) if item.get("subject") else None,
                    fingerprint=str(item["fingerprint"]) if item.get("fingerprint") else None,
                )
            )
        sources.append(name)
    return Policy(severities, without, tuple(waivers), tuple(sources))


@dataclass(frozen=True)
class Rating:
    """What policy decided for one finding."""

    severity: str
    waiver: Waiver | None = None


@dataclass(frozen=True)
class PolicyOutcome:
    ratings: list[Rating]
    expired_waivers: list[Waiver] = field(default_factory=list)
    unused_waivers: list[Waiver] = field(default_factory=list)


def rate_findings(
    findings: Sequence[Finding],
    policy: Policy,
    *,
    consumers_known: bool,
    today: dt.date | None = None,
) -> PolicyOutcome:
    """Give each finding its severity and its waiver, and report expired and unused waivers.

    An expired waiver stops matching (the finding counts again) and is reported, so that the
    person who wrote it gets a clear nudge rather than a mysterious no-go.
    """
    day = today or dt.date.today()
    active = [w for w in policy.waivers if w.expires >= day]
    expired = [w for w in policy.waivers if w.expires < day]
    used: set[int] = set()
    ratings = []
    for f in findings:
        waiver = None
        for i, w in enumerate(active):
            if w.matches(f):
                waiver = w
                used.add(i)
                break
        ratings.append(Rating(policy.severity_of(f, consumers_known=consumers_known), waiver))
    unused = [w for i, w in enumerate(active) if i not in used]
    return PolicyOutcome(ratings, expired, unused)
