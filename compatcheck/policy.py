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
from typing import TYPE_CHECKING, Any

from compatcheck.catalogue import SEVERITIES, load_catalogue, normalize_severity, suggest_kind
from compatcheck.model import Finding
from compatcheck.records import record_json

if TYPE_CHECKING:
    # Imported where a policy file is read: PyYAML's import is most of a snapshot gate's budget,
    # and a gate without --policy never reads YAML.
    from compatcheck.yamlfile import YamlDocument

_TOP_KEYS = ("severity", "waivers")
_SEVERITY_KEYS = ("severity", "without_consumers")
_WAIVER_KEYS = ("kind", "subject", "fingerprint", "reason", "expires")


@dataclass(frozen=True, kw_only=True)
class Waiver:
    """Accept one known finding (kind + subject glob, or fingerprint) until ``expires``; its JSON
    is its fields in this order."""

    kind: str
    subject: str | None = None
    fingerprint: str | None = None
    reason: str
    expires: dt.date
    source: str

    def matches(self, finding: Finding) -> bool:
        if finding.kind != self.kind:
            return False
        if self.fingerprint is not None and finding.fingerprint != self.fingerprint:
            return False
        return self.subject is None or fnmatch.fnmatchcase(finding.subject, self.subject)

    def to_json(self) -> dict[str, Any]:
        return record_json(self, expires=dt.date.isoformat)


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


Where = tuple[Any, ...]


def _unknown_keys(
    doc: YamlDocument, data: dict[str, Any], allowed: Sequence[str], where: Where, what: str
) -> None:
    for key in data:
        if key not in allowed:
            raise doc.error(
                (*where, key),
                f"unknown key `{key}` in {what} (expected one of: {', '.join(allowed)})",
            )


def _parse_date(doc: YamlDocument, value: Any, where: Where) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise doc.error(where, f"`expires` must be a date (YYYY-MM-DD), got {value!r}") from None


def _check_kind(doc: YamlDocument, kind: Any, where: Where) -> str:
    if not isinstance(kind, str) or kind not in load_catalogue():
        hint = suggest_kind(str(kind))
        did = f"did you mean `{hint}`? " if hint else ""
        raise doc.error(where, f"unknown finding kind `{kind}` ({did}see `compatcheck rules`)")
    return kind


def _check_severity(doc: YamlDocument, value: Any, kind: str, where: Where) -> Any:
    sev = normalize_severity(value)
    if sev is not None and sev not in SEVERITIES:
        raise doc.error(
            where, f"severity of `{kind}` must be one of {', '.join(SEVERITIES)}, got {sev!r}"
        )
    return sev


def load_policy(paths: Iterable[str | Path], base: Policy | None = None) -> Policy:
    """Overlay each policy file, in order, on ``base`` (default: the catalogue)."""
    paths = list(paths)
    if not paths:  # the usual gate: no YAML to read, so none of PyYAML's import either
        return _overlay([], base)
    from compatcheck.yamlfile import load_yaml_file

    # A policy has no use for aliases; refusing them keeps a bomb out of the hook too.
    return _overlay([load_yaml_file(p, "policy file", aliases=False) for p in paths], base)


def parse_policies(texts: Iterable[tuple[str, str]], base: Policy | None = None) -> Policy:
    """:func:`load_policy` from ``(path, text)`` pairs already read: the hook judges with exactly
    the bytes it hashed into its cache key, not with whatever the file holds a moment later."""
    from compatcheck.yamlfile import parse_yaml

    return _overlay([parse_yaml(t, Path(p), aliases=False) for p, t in texts], base)


def _overlay(docs: Iterable[YamlDocument], base: Policy | None) -> Policy:
    pol = base or default_policy()
    severities = dict(pol.severities)
    without = dict(pol.without_consumers)
    waivers = list(pol.waivers)
    sources = list(pol.sources)
    for doc in docs:
        data = doc.data
        if data is None:
            continue
        if not isinstance(data, dict):
            raise doc.error((), "a policy file must be a mapping with `severity`/`waivers`")
        _unknown_keys(doc, data, _TOP_KEYS, (), "policy")
        sev = data.get("severity") or {}
        if not isinstance(sev, dict):
            raise doc.error(("severity",), "`severity` must be a mapping")
        for kind, value in sev.items():
            where: Where = ("severity", kind)
            _check_kind(doc, kind, where)
            if isinstance(value, dict):
                _unknown_keys(doc, value, _SEVERITY_KEYS, where, f"severity of `{kind}`")
                main = _check_severity(doc, value.get("severity", severities[kind]), kind, where)
                alt = _check_severity(doc, value.get("without_consumers"), kind, where)
            else:
                main, alt = _check_severity(doc, value, kind, where), without[kind]
            if main is None:
                raise doc.error(
                    where, f"severity of `{kind}` must be one of {', '.join(SEVERITIES)}"
                )
            severities[kind], without[kind] = main, alt
        raw_waivers = data.get("waivers") or []
        if not isinstance(raw_waivers, list):
            raise doc.error(("waivers",), "`waivers` must be a list")
        for i, item in enumerate(raw_waivers):
            at: Where = ("waivers", i)
            waivers.append(_waiver(doc, item, at))
        sources.append(str(doc.path))
    return Policy(severities, without, tuple(waivers), tuple(sources))


def _waiver(doc: YamlDocument, item: Any, at: Where) -> Waiver:
    if not isinstance(item, dict):
        raise doc.error(at, "a waiver must be a mapping")
    _unknown_keys(doc, item, _WAIVER_KEYS, at, "waiver")
    for required in ("kind", "reason", "expires"):
        if not item.get(required):
            raise doc.error(at, f"waiver needs `{required}`")
    if not item.get("subject") and not item.get("fingerprint"):
        raise doc.error(at, "waiver needs `subject` (a glob) or `fingerprint`")
    return Waiver(
        kind=_check_kind(doc, item["kind"], (*at, "kind")),
        reason=str(item["reason"]),
        expires=_parse_date(doc, item["expires"], (*at, "expires")),
        source=f"{doc.path}:{doc.line_of(at)}",
        subject=str(item["subject"]) if item.get("subject") else None,
        fingerprint=str(item["fingerprint"]) if item.get("fingerprint") else None,
    )


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
