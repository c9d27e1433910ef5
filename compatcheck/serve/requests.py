"""The hook's requests: what ``/v1/check``, ``/v1/checks`` and Flagger send, validated.

A body that is not a request is a :class:`~compatcheck.errors.UsageError` naming the key, and a
URL target on a server that does not allow them is a :class:`~compatcheck.errors.RefusedError`;
the web layer answers them as HTTP (:mod:`compatcheck.serve.app`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compatcheck.errors import RefusedError, UsageError
from compatcheck.store import validate_name

_REQUEST_KEYS = ("service", "old", "new", "direction")
_TARGET_KEYS = ("version", "url")


@dataclass(frozen=True)
class Target:
    """One side of a check: a stored version, or (when allowed) a metrics URL to scrape."""

    version: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class CheckRequest:
    service: str
    old: Target
    new: Target
    direction: str = "rollback"


def _target(value: object, role: str, allow_url: bool) -> Target:
    if not isinstance(value, dict):
        raise UsageError(f'`{role}` must be an object like {{"version": "v1"}}')
    unknown = sorted(set(value) - set(_TARGET_KEYS))
    if unknown:
        raise UsageError(f"unknown key `{unknown[0]}` in `{role}` (expected version or url)")
    if ("version" in value) == ("url" in value):
        raise UsageError(f"`{role}` needs exactly one of `version` or `url`")
    if "version" in value:
        return Target(version=validate_name(value["version"], f"{role} version"))
    url = value["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise UsageError(f"`{role}.url` must be an http(s) URL")
    if not allow_url:
        raise RefusedError(
            "url targets are disabled on this server (the operator can enable --allow-url-targets)"
        )
    return Target(url=url)


def parse_check_request(body: object, *, allow_url: bool) -> CheckRequest:
    """Validate a ``/v1/check`` body; unknown keys are errors (a typo must not pass silently)."""
    if not isinstance(body, dict):
        raise UsageError("request body must be a JSON object")
    unknown = sorted(set(body) - set(_REQUEST_KEYS))
    if unknown:
        raise UsageError(
            f"unknown key `{unknown[0]}` in request (expected: {', '.join(_REQUEST_KEYS)})"
        )
    for key in ("service", "old", "new"):
        if key not in body:
            raise UsageError(f"request needs `{key}`")
    service = validate_name(body["service"], "service")
    direction = body.get("direction", "rollback")
    if direction not in ("rollback", "deploy"):
        raise UsageError("`direction` must be rollback or deploy")
    return CheckRequest(
        service,
        _target(body["old"], "old", allow_url),
        _target(body["new"], "new", allow_url),
        direction,
    )


def parse_flagger_request(body: object) -> CheckRequest:
    """Flagger's webhook payload: ``name``, ``namespace``, ``phase``, ``metadata`` (strings).

    The service is ``metadata.service`` or else the canary's ``name``; ``metadata.old`` and
    ``metadata.new`` name the stored versions. Other keys Flagger sends (``checksum``, ``type``)
    are ignored: Flagger's payload grows between releases.
    """
    if not isinstance(body, dict):
        raise UsageError("request body must be a JSON object")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise UsageError("flagger payload needs `metadata` with `old` and `new` versions")
    service = meta.get("service") or body.get("name")
    if not service:
        raise UsageError("flagger payload needs `name` (or `metadata.service`)")
    for key in ("old", "new"):
        if not meta.get(key):
            raise UsageError(f"flagger payload needs `metadata.{key}` (a stored version)")
    check: dict[str, Any] = {
        "service": service,
        "old": {"version": meta["old"]},
        "new": {"version": meta["new"]},
    }
    if "direction" in meta:
        check["direction"] = meta["direction"]
    return parse_check_request(check, allow_url=False)
